"""Keyframe images -> frozen CLIP image features, on CPU or GPU, in batches.

The backbone comes from :func:`sseg.clip_backbone.load_clip`; ``clip_weights=None``
gives a randomly initialised ViT-B/32, deterministic for a given ``seed`` (the
demo model's backbone).
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import InputError

MODEL_NAME = "ViT-B-32"
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | None) -> str:
    """``auto``/None -> cuda if available else cpu; ``cuda`` without a GPU is an error."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available (use cpu)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r} (use auto, cpu or cuda)")
    return device


def resolve_precision(precision: str, device: str) -> tuple[str, str | None]:
    """(precision to use, note for the user or None). Half precision is GPU-only."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision != "fp32" and not device.startswith("cuda"):
        return "fp32", f"--precision {precision} needs a CUDA device; using fp32 on {device}"
    return precision, None


def load_backbone(
    clip_weights: str | Path | None = None, seed: int | None = None, device: str = "cpu"
):
    """Frozen CLIP ViT-B/32 from :func:`~sseg.clip_backbone.load_clip`: (model, preprocess, tok).

    ``clip_weights``: a local checkpoint file; None = random init with ``seed``
    (load_clip's default seed when None).
    """
    from .clip_backbone import NotSemanticWarning, load_clip

    if clip_weights is not None and not Path(clip_weights).is_file():
        raise InputError("CLIP weights file not found", clip_weights)
    kwargs = {} if seed is None or clip_weights is not None else {"seed": int(seed)}
    root = logging.getLogger()  # open_clip logs "no pretrained weights" at WARNING
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotSemanticWarning)
            pretrained = None if clip_weights is None else str(clip_weights)
            return load_clip(pretrained, MODEL_NAME, device, **kwargs)
    finally:
        root.setLevel(level)


@torch.no_grad()
def encode_keyframes(
    model,
    preprocess,
    keyframes: np.ndarray,
    device: str = "cpu",
    batch_size: int = 64,
    precision: str = "fp32",
    quiet: bool = True,
) -> torch.Tensor:
    """uint8 keyframes (N, K, H, W, 3) -> float32 CLIP image features (N, K, D) on CPU.

    Preprocessing and encoding are those of ``sseg extract`` (open_clip's transform,
    :meth:`ShotEncoder.encode_keyframes` math), so features match cached ones.
    """
    from tqdm import tqdm

    from .encoder import preprocess_frames

    n, k = keyframes.shape[:2]
    flat = keyframes.reshape(n * k, *keyframes.shape[2:])
    dtype = PRECISIONS[precision]
    use_autocast = device.startswith("cuda") and dtype != torch.float32
    out = []
    with tqdm(
        total=len(flat), desc="encoding", unit="img", file=sys.stderr, disable=quiet, leave=False
    ) as bar:
        for start in range(0, len(flat), max(1, batch_size)):
            chunk = list(flat[start : start + batch_size])
            batch = preprocess_frames(chunk, preprocess).to(device)
            with torch.autocast("cuda", dtype=dtype, enabled=use_autocast):
                feats = model.encode_image(batch)
            out.append(feats.float().cpu())
            bar.update(len(batch))
    features = torch.cat(out) if out else torch.zeros(0, 512)
    return features.reshape(n, k, -1)
