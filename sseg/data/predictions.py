"""Per-shot boundary probabilities as JSON lines, for scoring external predictions.

Each line: ``{"video": "id", "shot": 3, "prob": 0.82}``. A video's shot indices
must be exactly 0..N-1 (any line order); ``prob`` must lie in [0, 1].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..atomic import atomic_open
from ..errors import InputError
from ._jsonlines import number_field, read_objects, video_field


def read_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """Video id -> (N,) float64 probabilities."""
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
    out = {}
    for vid, shots in found.items():
        missing = sorted(set(range(len(shots))) - set(shots))
        if missing:
            raise InputError(f"video {vid!r} has no prediction for shot {missing[0]}", path)
        out[vid] = np.array([shots[i] for i in range(len(shots))], dtype=np.float64)
    if not out:
        raise InputError("no predictions in file", path)
    return out


def write_predictions(path: str | Path, probs: Mapping[str, np.ndarray]) -> None:
    """Write probabilities in the format :func:`read_predictions` reads (atomically)."""
    with atomic_open(path) as handle:
        for vid, values in probs.items():
            for i, p in enumerate(np.asarray(values, dtype=np.float64).reshape(-1)):
                handle.write(json.dumps({"video": vid, "shot": i, "prob": float(p)}) + "\n")
