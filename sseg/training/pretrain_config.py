"""The ``sseg pretrain`` configuration file: flat keys in JSON or TOML, validated.

Relative paths (``store``, ``out_dir``, ``genre_bank``) are taken relative to the
config file's folder. Every problem is an :class:`InputError` naming the file and key.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..kernels.ag_residual_ref import PHI_CHOICES
from ..modeling.genre_fusion import FUSIONS
from ..ops.pseudo_boundary_checks import MODES
from .sampling import ANCHOR_MODES


@dataclass
class PretrainConfig:
    """All settings of a pre-training run (see docs/pretraining.md for each key)."""

    store: str
    out_dir: str
    # data
    window: int = 17
    anchors: int = 3
    sampling: str = "idw"
    dtw_mode: str = "sum"
    stride: int = 1
    videos: str | None = None  # list file or split.json:key (default: every stored video)
    val_videos: str | None = None  # held-out videos, same forms (default: none)
    val_every: int = 0  # steps between validation losses (0: off)
    val_batches: int = 4  # batches per validation
    prefetch: int = 2  # batches gathered ahead on a background thread (0: off)
    skip_bad_videos: bool = False  # leave out videos with unreadable or non-finite features
    # losses
    con_weight: float = 1.0
    pb_weight: float = 1.0
    temperature: float = 0.1
    proj_dim: int = 128
    gather_negatives: bool = True
    # model
    hidden: int = 768
    heads: int = 8
    layers: int = 2
    dropout: float = 0.1
    genre_fusion: str = "ag_residual"
    phi: str = "identity"
    genre_temperature: float = 1.0
    genre_bank: str | None = None
    # optimisation
    optimizer: str = "adamw"
    lr: float = 3e-4
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.01
    batch_size: int = 64
    steps: int = 10_000
    warmup_steps: int = 500
    clip_grad: float | None = 1.0
    amp: str = "auto"
    seed: int = 0
    checkpoint_every: int = 500
    checkpoint_minutes: float = 10.0  # also checkpoint when this much time passed (0: off)
    log_every: int = 10
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for checkpoint metadata)."""
        return asdict(self)


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,)}
_TYPES["bool"] = (bool,)
_CHOICES = {
    "sampling": ANCHOR_MODES,
    "dtw_mode": tuple(MODES),
    "genre_fusion": FUSIONS,
    "optimizer": ("adamw", "lars"),
    "amp": ("auto", "bf16", "fp16", "off"),
    "phi": PHI_CHOICES,
}
_POSITIVE = {
    "stride", "temperature", "proj_dim", "hidden", "heads", "layers", "lr", "batch_size",
    "steps", "genre_temperature",
}  # fmt: skip
_NON_NEGATIVE = {"con_weight", "pb_weight", "weight_decay", "warmup_steps", "checkpoint_every",
                 "min_lr_ratio", "log_every"}  # fmt: skip
_NON_NEGATIVE |= {"val_every", "prefetch", "checkpoint_minutes"}
_POSITIVE.add("val_batches")
_PATHS = ("store", "out_dir", "genre_bank", "videos", "val_videos")


def _check_type(name: str, annotation: str, value: Any, path: Path) -> None:
    optional = annotation.endswith("| None")
    if value is None:
        if optional:
            return
        raise InputError(f"key {name!r} must not be null", path)
    base = annotation.split("|")[0].strip()
    ok = isinstance(value, _TYPES[base]) and not (base != "bool" and isinstance(value, bool))
    if not ok:
        raise InputError(f"key {name!r} must be {base}, got {type(value).__name__} {value!r}", path)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError("config file not found", path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            try:
                import tomli as tomllib
            except ImportError:
                msg = "TOML configs need Python 3.11+ (or tomli); use JSON"
                raise InputError(msg, path) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"invalid TOML ({exc})", path) from exc
    elif path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc.msg})", path, exc.lineno) from exc
    else:
        raise InputError("config must be a .json or .toml file", path)
    if not isinstance(data, dict):
        raise InputError("config must be a table/object of keys", path)
    return data


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PretrainConfig:
    """Read, type-check and validate a pre-training config file."""
    path = Path(path)
    data = {**_read(path), **(overrides or {})}
    known = {f.name: str(f.type) for f in fields(PretrainConfig)}
    for key in data:
        if key not in known:
            raise InputError(f"unknown key {key!r} (known: {', '.join(sorted(known))})", path)
    for key in ("store", "out_dir"):
        if key not in data:
            raise InputError(f"missing required key {key!r}", path)
    for key, value in data.items():
        _check_type(key, known[key], value, path)
    for key in _PATHS:
        if data.get(key) is not None:
            data[key] = str((path.parent / data[key]).resolve())
    cfg = PretrainConfig(**data)
    for key, choices in _CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise InputError(
                f"key {key!r} must be one of {', '.join(choices)}, got {getattr(cfg, key)!r}", path
            )
    for key in _POSITIVE:
        if getattr(cfg, key) <= 0:
            raise InputError(f"key {key!r} must be > 0, got {getattr(cfg, key)!r}", path)
    for key in _NON_NEGATIVE:
        if getattr(cfg, key) < 0:
            raise InputError(f"key {key!r} must be >= 0, got {getattr(cfg, key)!r}", path)
    if cfg.window < 3 or cfg.window % 2 == 0:
        raise InputError(f"key 'window' must be an odd integer >= 3, got {cfg.window}", path)
    if not 2 <= cfg.anchors <= min(16, cfg.window):
        raise InputError(f"key 'anchors' must be in [2, min(16, window)], got {cfg.anchors}", path)
    if cfg.hidden % cfg.heads:
        raise InputError(f"key 'hidden' ({cfg.hidden}) must be divisible by heads", path)
    if cfg.clip_grad is not None and cfg.clip_grad <= 0:
        raise InputError("key 'clip_grad' must be > 0 or null", path)
    if not 0.0 <= cfg.dropout < 1.0:
        raise InputError(f"key 'dropout' must be in [0, 1), got {cfg.dropout}", path)
    if cfg.min_lr_ratio > 1:
        raise InputError("key 'min_lr_ratio' must be <= 1", path)
    if cfg.device != "auto" and cfg.device != "cpu" and not cfg.device.startswith("cuda"):
        raise InputError(f"key 'device' must be auto, cpu or cuda[:N], got {cfg.device!r}", path)
    return cfg
