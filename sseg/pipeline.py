"""Video file in, scenes out: ``sseg.segment(path, **options) -> SegmentationResult``.

Stages: decode + shot detection (:mod:`sseg.shot_detect`), keyframes
(:mod:`sseg.keyframes`), frozen CLIP encoding (:mod:`sseg.backbone`), test-time
splitting (:mod:`sseg.splitting`), SceneModel inference, grouping
(:mod:`sseg.scenes`). Each stage's wall time is recorded in ``timings``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .keyframes import keyframes_for_shots
from .shots import Shot
from .timecode import parse_timecode, to_frame
from .video import VideoInfo, open_video

__all__ = [
    "SegmentationResult",
    "IntraShotBoundary",
    "detect_shots",
    "keyframes_for_shots",
]


def detect_shots(
    path: str | Path,
    detector: str = "transnetv2",
    threshold: float | None = None,
    min_shot_frames: int = 15,
    start: str | float | int | None = None,
    end: str | float | int | None = None,
    device: str = "cpu",
    quiet: bool = True,
) -> tuple[list[Shot], float]:
    """Shots of the video at ``path`` and its frame rate: ``(list[Shot], fps)``.

    ``start``/``end`` restrict detection to a sub-range (timecodes, see
    :func:`sseg.timecode.parse_timecode`).
    """
    from .shot_detect import detect_shots as _detect

    video = open_video(path)
    start_frame, end_frame = frame_range(video.info, start, end)
    detection = _detect(
        video,
        detector=detector,
        threshold=threshold,
        min_shot_frames=min_shot_frames,
        start_frame=start_frame,
        end_frame=end_frame,
        device=device,
        quiet=quiet,
    )
    return detection.shots, video.info.fps


def frame_range(
    info: VideoInfo, start: str | float | int | None, end: str | float | int | None
) -> tuple[int, int | None]:
    """Parse ``start``/``end`` timecodes into a half-open frame range."""
    start_frame = 0 if start is None else to_frame(parse_timecode(start, info.fps), info.fps)
    end_frame = None if end is None else to_frame(parse_timecode(end, info.fps), info.fps)
    if end_frame is not None and end_frame <= start_frame:
        raise InputError(f"--end ({end}) must come after --start ({start or 0})", info.path)
    return start_frame, end_frame


@dataclass
class IntraShotBoundary:
    """A scene change found inside a long shot by test-time splitting."""

    shot_index: int
    time: float
    frame: int
    probability: float


@dataclass
class SegmentationResult:
    """Everything ``segment`` found, plus per-stage wall times in seconds."""

    video: VideoInfo
    shots: list[Shot]
    probabilities: np.ndarray  # (N,) P(shot i is the last shot of a scene)
    threshold: float
    scenes: list[Any]  # list[sseg.scenes.Scene]
    intra_shot_boundaries: list[IntraShotBoundary] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    detector: str = "transnetv2"
    model: str = ""
    skipped_frames: int = 0
    keyframes: np.ndarray | None = field(default=None, repr=False)  # (N, K, H, W, 3) uint8

    @property
    def processed_duration(self) -> float:
        """Seconds of video covered by the shots."""
        return self.shots[-1].end_time - self.shots[0].start_time if self.shots else 0.0


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr)
