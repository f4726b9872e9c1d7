"""Keyframes: K frames per shot at the centres of the shot's K equal parts.

All keyframes of a video are picked in one decoding pass. With K=3 the
keyframes sit at the centres of the shot's thirds, so test-time splitting of a
long shot into 3 sub-shots can reuse keyframe j for sub-shot j.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..shots import Shot
from .prefetch import prefetched
from .video import Video, open_video

SHORT_SIDE = 224  # keyframes are scaled so their short side is this (CLIP's input size)
PREFETCH_KEYFRAMES = 64  # keyframes decoded ahead while CLIP encodes earlier ones


def keyframe_indices(shots: list[Shot], k: int = 3) -> np.ndarray:
    """(N, k) frame index of each keyframe: centre of each of the shot's k equal parts."""
    if k < 1:
        raise InputError(f"need at least 1 keyframe per shot, got k={k}")
    out = np.zeros((len(shots), k), dtype=np.int64)
    for i, shot in enumerate(shots):
        length = max(shot.end_frame - shot.start_frame, 1)
        centres = shot.start_frame + (np.arange(k) + 0.5) * length / k
        out[i] = np.clip(np.floor(centres), shot.start_frame, shot.start_frame + length - 1)
    return out


def scaled_size(width: int, height: int, short_side: int = SHORT_SIDE) -> tuple[int, int]:
    """(width, height) with the short side scaled to ``short_side`` (even numbers)."""
    scale = short_side / min(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def iter_keyframes(
    video: Video, shots: list[Shot], k: int = 3, short_side: int = SHORT_SIDE
) -> Iterator[tuple[list[tuple[int, int]], np.ndarray]]:
    """Stream keyframes in frame order, one decoding pass, without holding them all.

    Yields ``(slots, rgb)``: the (shot, keyframe) slots that use this frame and the
    frame scaled to short side ``short_side``. Slots whose frame cannot be decoded
    are never yielded; the caller fills them (see :func:`missing_slots`).
    """
    index = keyframe_indices(shots, k)
    slots: dict[int, list[tuple[int, int]]] = {}
    for i in range(index.shape[0]):
        for j in range(k):
            slots.setdefault(int(index[i, j]), []).append((i, j))
    width, height = scaled_size(video.info.width, video.info.height, short_side)
    first, last = int(index.min()), int(index.max()) + 1
    decoded = video.frames(
        size=(width, height), start_frame=first, end_frame=last, wanted=set(slots), keyframe=True
    )
    for frame in prefetched(decoded, PREFETCH_KEYFRAMES):  # decoding overlaps encoding
        yield slots[frame.index], frame.rgb


def keyframes_for_shots(
    video: str | Path | Video,
    shots: list[Shot],
    k: int = 3,
    short_side: int = SHORT_SIDE,
    quiet: bool = True,
) -> np.ndarray:
    """Decode the keyframes of ``shots`` in one pass: uint8 array (N, k, H, W, 3).

    Frames are scaled to short side ``short_side`` keeping the aspect ratio. A
    keyframe whose frame cannot be decoded is replaced by the nearest decoded
    keyframe of the same shot (or of the nearest shot).
    """
    from tqdm import tqdm

    if not isinstance(video, Video):
        video = open_video(video)
    if not shots:
        raise InputError("no shots to take keyframes from", video.path)
    index = keyframe_indices(shots, k)
    wanted = set(index.reshape(-1).tolist())
    width, height = scaled_size(video.info.width, video.info.height, short_side)
    found: dict[int, np.ndarray] = {}
    first = int(index.min())
    last = int(index.max()) + 1
    with tqdm(
        total=len(wanted),
        desc="keyframes",
        unit="frame",
        file=sys.stderr,
        disable=quiet,
        leave=False,
    ) as bar:
        for frame in video.frames(
            size=(width, height), start_frame=first, end_frame=last, wanted=wanted, keyframe=True
        ):
            found[frame.index] = frame.rgb
            bar.update(1)
        bar.update(bar.total - bar.n)  # unreadable keyframes get the nearest one below
    if not found:
        raise InputError("none of the keyframes could be decoded", video.path)
    available = np.array(sorted(found))
    out = np.empty((len(shots), k, height, width, 3), dtype=np.uint8)
    for i in range(len(shots)):
        for j in range(k):
            idx = int(index[i, j])
            if idx not in found:  # unreadable frame: use the closest decoded keyframe
                idx = int(available[np.argmin(np.abs(available - idx))])
            out[i, j] = found[idx]
    return out
