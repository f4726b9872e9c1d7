"""Model checkpoints as safetensors with a JSON config in the metadata.

No pickle is ever loaded: a checkpoint is tensors plus string metadata.
:func:`weights_file_kind` tells what a weights file holds from its first bytes, so a
wrong file gets a one-line error that says what it is (never advice to unpickle it).
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .atomic import atomic_path
from .errors import InputError

CONFIG_KEY = "sseg_config"

SAFETENSORS = "safetensors"
TORCH_ZIP = "torch-zip"  # torch.save's default: a zip archive holding a pickle
TORCHSCRIPT = "torchscript"  # torch.jit.save archive (code + weights), e.g. OpenAI's ViT-B-32.pt
PICKLE = "pickle"  # a bare pickle stream (torch.save legacy format, pickle.dump)
UNKNOWN = "unknown"

_KIND_NAMES = {
    TORCH_ZIP: "a PyTorch torch.save checkpoint (a pickle)",
    TORCHSCRIPT: "a TorchScript archive (torch.jit.save: code + weights)",
    PICKLE: "a Python pickle",
}


def weights_file_kind(path: str | Path) -> str:
    """What ``path`` holds, from its first bytes: one of the module's kind constants."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
        size = path.stat().st_size
    except OSError:
        return UNKNOWN
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return UNKNOWN
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return TORCHSCRIPT
        return TORCH_ZIP if any(n.endswith("/data.pkl") for n in names) else UNKNOWN
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return PICKLE
    if len(head) == 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len <= size - 8:
            return SAFETENSORS
    return UNKNOWN


def describe_kind(kind: str) -> str:
    """Words for a kind from :func:`weights_file_kind`."""
    return _KIND_NAMES.get(kind, "not a safetensors file")


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's first line, without terminal escapes, at most ``limit`` characters."""
    text = str(exc).replace("\x1b[1m", "").replace("\x1b[0m", "").strip()
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


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
    kind = weights_file_kind(path)
    if kind in _KIND_NAMES:
        raise InputError(
            f"is {describe_kind(kind)}, not a safetensors checkpoint; sseg loads models only "
            "from .safetensors files and never unpickles",
            path,
        )
    if kind != SAFETENSORS:
        raise InputError("not a safetensors checkpoint (unrecognised or truncated file)", path)
    try:
        tensors = load_file(str(path), device=str(device))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"not a readable safetensors checkpoint ({one_line(exc)})", path) from exc
    try:
        config = json.loads(metadata.get(CONFIG_KEY, "{}"))
    except json.JSONDecodeError as exc:
        raise InputError(f"checkpoint config metadata is not valid JSON ({exc})", path) from exc
    return tensors, config
