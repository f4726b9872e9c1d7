"""Group shots into scenes from per-shot boundary probabilities.

A scene is a run of consecutive shots ending at a boundary shot (probability
>= threshold); the last scene always ends at the last shot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..shots import Shot


@dataclass(frozen=True)
class Scene:
    """Scene ``index`` (0-based) made of shots ``[first_shot, last_shot]`` (inclusive)."""

    index: int
    first_shot: int
    last_shot: int
    start_frame: int
    end_frame: int  # exclusive
    start_time: float
    end_time: float

    @property
    def shot_indices(self) -> list[int]:
        """Indices of the shots in this scene."""
        return list(range(self.first_shot, self.last_shot + 1))

    @property
    def num_frames(self) -> int:
        """Length in frames."""
        return self.end_frame - self.start_frame

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end_time - self.start_time


def boundary_shots(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Indices of shots that end a scene (the last shot always does)."""
    probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if probs.size == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.flatnonzero(probs[:-1] >= threshold)
    return np.append(ends, probs.size - 1).astype(np.int64)


def group_scenes(
    shots: list[Shot], probabilities: np.ndarray, threshold: float = 0.5
) -> list[Scene]:
    """Scenes from shots and their boundary probabilities."""
    probs = np.asarray(probabilities).reshape(-1)
    if len(shots) != probs.size:
        raise ValueError(f"{probs.size} probabilities for {len(shots)} shots")
    scenes = []
    first = 0
    for index, last in enumerate(boundary_shots(probs, threshold).tolist()):
        a, b = shots[first], shots[last]
        scenes.append(
            Scene(index, first, last, a.start_frame, b.end_frame, a.start_time, b.end_time)
        )
        first = last + 1
    return scenes
