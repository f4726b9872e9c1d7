"""Plain data types shared by loaders, the video pipeline and inference."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Shot:
    """One shot: half-open frame range [start_frame, end_frame) and its times in seconds."""

    start_frame: int
    end_frame: int
    start_time: float
    end_time: float

    @property
    def duration(self) -> float:
        """Length of the shot in seconds."""
        return self.end_time - self.start_time


@dataclass
class ShotSequence:
    """All shots of one video, with optional per-shot boundary labels and genres.

    ``labels[i] == 1`` means shot ``i`` is the last shot of a scene. The last shot
    of a video carries no label in MovieNet; here it is stored as 1 only if given.
    """

    video_id: str
    starts: np.ndarray  # (N,) float seconds
    ends: np.ndarray  # (N,) float seconds
    labels: np.ndarray | None = None  # (N,) int {0,1}, -100 where unknown
    genres: list[str] = field(default_factory=list)
    fps: float | None = None

    def __post_init__(self) -> None:
        self.starts = np.asarray(self.starts, dtype=np.float64)
        self.ends = np.asarray(self.ends, dtype=np.float64)
        if self.starts.shape != self.ends.shape or self.starts.ndim != 1:
            raise ValueError(f"{self.video_id}: starts and ends must be 1-D of equal length")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64)
            if self.labels.shape != self.starts.shape:
                raise ValueError(f"{self.video_id}: labels must have one entry per shot")

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @property
    def durations(self) -> np.ndarray:
        """Shot durations in seconds, at least a tiny positive value."""
        return np.maximum(self.ends - self.starts, 1e-3)
