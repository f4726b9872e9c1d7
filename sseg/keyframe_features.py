"""Keyframe images -> frozen CLIP image features, on CPU or GPU, in batches.

The backbone comes from :func:`sseg.clip_backbone.load_image_tower` (image side only,
no open_clip: what ``sseg segment`` uses) or :func:`sseg.clip_backbone.load_clip` (the
full model, for callers that need the text tower too); ``clip_weights=None`` gives a
randomly initialised ViT-B/32, deterministic for a given ``seed`` (the demo model's
backbone), with the same weights either way.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .precision import PRECISIONS, resolve_precision

__all__ = [
    "PRECISIONS",
    "encode_keyframes",
    "encode_video_keyframes",
    "load_backbone",
    "resolve_device",
    "resolve_precision",
]

MODEL_NAME = "ViT-B-32"


def resolve_device(device: str | None) -> str:
    """``auto``/None -> cuda if available else cpu; ``cuda`` without a GPU is an error."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available (use cpu)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r} (use auto, cpu or cuda)")
    return device


def load_backbone(
    clip_weights: str | Path | None = None, seed: int | None = None, device: str = "cpu"
):
    """Frozen CLIP ViT-B/32 from :func:`~sseg.clip_backbone.load_clip`: (model, preprocess, tok).

    The full open_clip model (image and text towers); for images only, use the cheaper
    :func:`load_image_backbone`. ``clip_weights``: a local checkpoint file; None = random
    init with ``seed`` (load_clip's default seed when None).
    """
    from .clip_backbone import load_clip

    return _quietly(load_clip, clip_weights, seed, device)


def load_image_backbone(
    clip_weights: str | Path | None = None, seed: int | None = None, device: str = "cpu"
):
    """The image side of :func:`load_backbone` without open_clip: (tower, preprocess).

    Same weights and ``sseg_model_id``; see :func:`sseg.clip_backbone.load_image_tower`.
    """
    from .clip_backbone import load_image_tower

    return _quietly(load_image_tower, clip_weights, seed, device)


def _quietly(loader, clip_weights: str | Path | None, seed: int | None, device: str):
    """``loader(weights, MODEL_NAME, device[, seed])`` without random-init warnings/logs."""
    from .clip_backbone import NotSemanticWarning

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
            return loader(pretrained, MODEL_NAME, device, **kwargs)
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


@torch.no_grad()
def encode_video_keyframes(
    model,
    preprocess,
    video,
    shots: list,
    k: int = 3,
    device: str = "cpu",
    batch_size: int = 64,
    precision: str = "fp32",
    thumbnail_height: int | None = 96,
    quiet: bool = True,
) -> tuple[torch.Tensor, np.ndarray | None]:
    """Decode and encode the keyframes of ``shots`` in one streaming pass.

    Memory stays O(batch_size) images however long the video is. Returns features
    (N, k, D) float32 on CPU and, if ``thumbnail_height``, the middle keyframe of each
    shot as a small uint8 thumbnail (N, 1, h, w, 3) for reports. A keyframe whose frame
    cannot be decoded gets the features of the nearest decoded keyframe.
    """
    from tqdm import tqdm

    from .encoder import preprocess_frames
    from .keyframes import iter_keyframes

    if not shots:
        raise InputError("no shots to take keyframes from", getattr(video, "path", None))
    n = len(shots)
    dtype = PRECISIONS[precision]
    use_autocast = device.startswith("cuda") and dtype != torch.float32
    feats: torch.Tensor | None = None
    done = np.zeros((n, k), dtype=bool)
    thumbs: np.ndarray | None = None
    batch: list[np.ndarray] = []
    batch_slots: list[list[tuple[int, int]]] = []

    def flush() -> None:
        nonlocal feats
        x = preprocess_frames(batch, preprocess).to(device)
        with torch.autocast("cuda", dtype=dtype, enabled=use_autocast):
            out = model.encode_image(x).float().cpu()
        if feats is None:
            feats = torch.zeros(n, k, out.shape[-1])
        for row, slots in zip(out, batch_slots, strict=True):
            for i, j in slots:
                feats[i, j] = row
                done[i, j] = True
        bar.update(sum(len(slots) for slots in batch_slots))  # keyframe slots filled
        batch.clear()
        batch_slots.clear()

    with tqdm(
        total=n * k, desc="keyframes+encoding", unit="img", file=sys.stderr, disable=quiet,
        leave=False,
    ) as bar:  # fmt: skip
        for slots, rgb in iter_keyframes(video, shots, k):
            if thumbnail_height and any(j == k // 2 for _, j in slots):
                small = _thumbnail(rgb, thumbnail_height)
                if thumbs is None:
                    thumbs = np.zeros((n, 1, *small.shape), dtype=np.uint8)
                for i, j in slots:
                    if j == k // 2:
                        thumbs[i, 0] = small
            batch.append(rgb)
            batch_slots.append(slots)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        bar.update(bar.total - bar.n)  # unreadable keyframes get the nearest one below
    if feats is None:
        raise InputError("none of the keyframes could be decoded", getattr(video, "path", None))
    if not done.all():  # unreadable keyframes: copy the nearest decoded one in time
        have = np.argwhere(done)
        order = have[:, 0] * k + have[:, 1]
        for i, j in np.argwhere(~done):
            nearest = have[np.argmin(np.abs(order - (i * k + j)))]
            feats[i, j] = feats[nearest[0], nearest[1]]
    return feats, thumbs


def _thumbnail(rgb: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(rgb)
    width = max(1, round(image.width * height / image.height))
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
