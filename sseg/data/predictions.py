"""Per-shot boundary probabilities as JSON lines, for scoring external predictions.

Each line: ``{"video": "id", "shot": 3, "prob": 0.82}`` (any line order; ``prob``
in [0, 1]; a shot may appear once).

Which shots a video's lines must cover (:func:`align_predictions`): either

* **every shot**, ``0..N-1`` (what ``sseg evaluate --save-predictions`` writes), or
* **exactly the labelled shots** (label not -100), e.g. ``0..N-2`` for a MovieNet
  ``label318`` file of N-1 lines: BaSSL's layout, which has no prediction for the
  unlabelled last shot.

Any other set of shots is an error naming the video; nothing is padded or cut.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_open
from ..errors import InputError
from ._jsonlines import number_field, read_objects, video_field

UNKNOWN = -100


@dataclass(frozen=True)
class ShotPredictions:
    """One video's predictions: shot indices (sorted, unique) and their probabilities."""

    shots: np.ndarray  # (M,) int64
    probs: np.ndarray  # (M,) float64

    def describe(self) -> str:
        """``"3 shots (0..2)"``-style summary for error messages."""
        if self.shots.size == 0:
            return "no shots"
        first, last = int(self.shots[0]), int(self.shots[-1])
        contiguous = last - first + 1 == self.shots.size
        span = f"{first}..{last}" if contiguous else f"{first}..{last} with gaps"
        return f"{self.shots.size} shot(s) ({span})"


def read_prediction_shots(path: str | Path) -> dict[str, ShotPredictions]:
    """Video id -> :class:`ShotPredictions`, in file order of first appearance."""
    path = Path(path)
    found: dict[str, dict[int, float]] = {}
    for line, obj in read_objects(path):
        vid = video_field(obj, path, line)
        shot = obj.get("shot")
        if isinstance(shot, bool) or not isinstance(shot, int) or shot < 0:
            raise InputError(f"'shot' must be a shot index >= 0, got {shot!r}", path, line)
        prob = number_field(obj, "prob", path, line)
        if not 0.0 <= prob <= 1.0:
            raise InputError(f"'prob' must be in [0, 1], got {prob}", path, line)
        shots = found.setdefault(vid, {})
        if shot in shots:
            raise InputError(f"second prediction for shot {shot} of {vid!r}", path, line)
        shots[shot] = prob
    if not found:
        raise InputError("no predictions in file", path)
    out = {}
    for vid, shots in found.items():
        order = sorted(shots)
        out[vid] = ShotPredictions(
            np.asarray(order, dtype=np.int64), np.asarray([shots[i] for i in order], np.float64)
        )
    return out


def read_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """Video id -> (N,) float64 probabilities; each video's shots must be exactly 0..N-1."""
    out = {}
    for vid, pred in read_prediction_shots(path).items():
        missing = sorted(set(range(pred.shots.size)) - set(pred.shots.tolist()))
        if missing:
            raise InputError(f"video {vid!r} has no prediction for shot {missing[0]}", path)
        out[vid] = pred.probs
    return out


def align_predictions(
    pred: ShotPredictions, labels: np.ndarray, video: str, path: str | Path
) -> np.ndarray:
    """(N,) probabilities for a video of N shots with ``labels``, by the module's rule.

    Predictions given per labelled shot leave the unlabelled shots at 0.0; no metric
    reads them (unknown labels are ignored everywhere).
    """
    labels = np.asarray(labels).reshape(-1)
    n = labels.size
    labelled = np.flatnonzero(labels != UNKNOWN)
    if pred.shots.size == n and (n == 0 or int(pred.shots[-1]) == n - 1):
        return pred.probs.copy()
    if np.array_equal(pred.shots, labelled):
        full = np.zeros(n, dtype=np.float64)
        full[labelled] = pred.probs
        return full
    raise InputError(
        f"video {video!r}: predictions for {pred.describe()}, but it has {n} shots "
        f"(0..{n - 1}) of which {labelled.size} are labelled; give one line per shot "
        "or one per labelled shot",
        path,
    )


def write_predictions(path: str | Path, probs: Mapping[str, np.ndarray]) -> None:
    """Write probabilities in the format :func:`read_predictions` reads (atomically)."""
    with atomic_open(path) as handle:
        for vid, values in probs.items():
            for i, p in enumerate(np.asarray(values, dtype=np.float64).reshape(-1)):
                handle.write(json.dumps({"video": vid, "shot": i, "prob": float(p)}) + "\n")
