"""Keyframe images -> frozen CLIP image features, on CPU or GPU, in batches.

The backbone comes from :func:`sseg.clip_backbone.load_clip` when that module is
present, otherwise straight from open_clip. ``clip_weights=None`` gives a
randomly initialised ViT-B/32; with ``seed`` set the initialisation is
deterministic (the demo model's backbone).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .errors import InputError

MODEL_NAME = "ViT-B-32"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_SIZE = 224
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


def preprocess(images: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """uint8 (M, H, W, 3) -> normalised float (M, 3, 224, 224): centre crop + resize, as CLIP."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top : top + side, left : left + side]
    if side != IMAGE_SIZE:
        x = torch.nn.functional.interpolate(
            x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bicubic", align_corners=False, antialias=True
        ).clamp_(0, 1)
    mean = torch.tensor(CLIP_MEAN, device=device)[:, None, None]
    std = torch.tensor(CLIP_STD, device=device)[:, None, None]
    return (x - mean) / std


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def load_backbone(
    clip_weights: str | Path | None = None, seed: int | None = None, device: str = "cpu"
):
    """CLIP ViT-B/32 (eval mode, frozen) -> ``(model, tokenizer)``.

    ``clip_weights``: a local open_clip/OpenAI checkpoint file; None = random init.
    """
    if clip_weights is not None and not Path(clip_weights).is_file():
        raise InputError("CLIP weights file not found", clip_weights)
    pretrained = None if clip_weights is None else str(clip_weights)
    import logging
    import warnings

    with _seeded(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
        try:
            try:
                from .clip_backbone import load_clip
            except ImportError:
                load_clip = None
            if load_clip is not None:
                model, _, tokenizer = load_clip(pretrained, model_name=MODEL_NAME, device=device)
            else:
                from ._compat import import_open_clip

                open_clip = import_open_clip()
                model = open_clip.create_model(MODEL_NAME, pretrained=pretrained, device=device)
                tokenizer = open_clip.get_tokenizer(MODEL_NAME)
        except InputError:
            raise
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            raise InputError(f"cannot load CLIP weights ({exc})", clip_weights) from exc
    model.eval().requires_grad_(False)
    return model, tokenizer


@torch.no_grad()
def encode_keyframes(
    model,
    keyframes: np.ndarray,
    device: str = "cpu",
    batch_size: int = 64,
    precision: str = "fp32",
    quiet: bool = True,
) -> torch.Tensor:
    """uint8 keyframes (N, K, H, W, 3) -> float32 CLIP image features (N, K, D) on CPU."""
    from tqdm import tqdm

    n, k = keyframes.shape[:2]
    flat = keyframes.reshape(n * k, *keyframes.shape[2:])
    dtype = PRECISIONS[precision]
    use_autocast = device.startswith("cuda") and dtype != torch.float32
    out = []
    with tqdm(
        total=len(flat), desc="encoding", unit="img", file=sys.stderr, disable=quiet, leave=False
    ) as bar:
        for start in range(0, len(flat), max(1, batch_size)):
            batch = preprocess(flat[start : start + batch_size], device)
            with torch.autocast("cuda", dtype=dtype, enabled=use_autocast):
                feats = model.encode_image(batch)
            out.append(feats.float().cpu())
            bar.update(len(batch))
    features = torch.cat(out) if out else torch.zeros(0, 512)
    return features.reshape(n, k, -1)
