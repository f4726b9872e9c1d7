"""Model checkpoints as safetensors with a JSON config in the metadata.

No pickle is ever loaded: a checkpoint is tensors plus string metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .atomic import atomic_path
from .errors import InputError

CONFIG_KEY = "sseg_config"


def save_checkpoint(
    path: str | Path, tensors: dict[str, torch.Tensor], config: dict[str, Any] | None = None
) -> None:
    """Atomically save ``tensors`` (made contiguous, on CPU) and a JSON ``config``."""
    flat = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    metadata = {CONFIG_KEY: json.dumps(config or {}, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=metadata)


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load tensors and config saved by :func:`save_checkpoint`.

    Raises:
        InputError: the file is missing or is not a readable safetensors checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint file not found", path)
    try:
        tensors = load_file(str(path), device=str(device))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"not a readable safetensors checkpoint ({exc})", path) from exc
    try:
        config = json.loads(metadata.get(CONFIG_KEY, "{}"))
    except json.JSONDecodeError as exc:
        raise InputError(f"checkpoint config metadata is not valid JSON ({exc})", path) from exc
    return tensors, config
