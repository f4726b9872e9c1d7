"""Shot and scene statistics of a labelled feature store, and the MovieNet-SSeg figures
the proxy benchmark is calibrated to.

Scenes are runs of labelled shots closed by a boundary (``label == 1``), as
:func:`sseg.evaluation.metrics.scenes_from_labels` builds them; shots after a video's last boundary
form no scene. Durations are ``end - start`` in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..evaluation.metrics import UNKNOWN, average_precision
from ..store.features import FeatureStore

# Measured on MovieNet-SSeg's test split (64 movies, 106,041 shots).
MOVIENET_TEST_FIGURES: dict[str, float] = {
    "shot_median_s": 2.67,
    "shot_mean_s": 4.63,
    "shots_over_10s": 0.083,
    "shots_over_30s": 0.010,
    "shots_over_60s": 0.0024,
    "end_shot_median_s": 3.96,
    "end_shot_mean_s": 7.55,
    "other_shot_median_s": 2.63,
    "other_shot_mean_s": 4.25,
    "scene_shots_median": 5.0,
    "scene_shots_mean": 13.0,
    "scene_shots_p10": 1.0,
    "scene_shots_p90": 32.0,
    "scene_median_s": 24.8,
    "scene_mean_s": 57.9,
    "boundary_rate": 0.0765,
}


def _scene_runs(labels: np.ndarray, durations: np.ndarray) -> tuple[list[int], list[float]]:
    shots, seconds = [], []
    count, total = 0, 0.0
    for label, duration in zip(labels, durations, strict=True):
        if label == UNKNOWN:
            continue
        count += 1
        total += duration
        if label == 1:
            shots.append(count)
            seconds.append(total)
            count, total = 0, 0.0
    return shots, seconds


def proxy_statistics(store: FeatureStore | str, video_ids: Sequence[str]) -> dict[str, float]:
    """The calibration figures (keys of :data:`MOVIENET_TEST_FIGURES`) of ``video_ids``,
    plus ``videos``, ``shots`` and ``scenes`` counts.

    Works on any labelled store (a real MovieNet store too); boundary-related figures
    use labelled shots only, duration figures every shot.
    """
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    if not video_ids:
        raise ValueError("no videos given")
    durations, labels = [], []
    for vid in video_ids:
        video = store.load(vid)
        durations.append(video.ends - video.starts)
        labels.append(video.labels if video.labels is not None else np.full(len(video), UNKNOWN))
    return statistics_of(durations, labels)


def statistics_of(
    durations: Sequence[np.ndarray], labels: Sequence[np.ndarray]
) -> dict[str, float]:
    """:func:`proxy_statistics` from per-video shot durations (s) and labels."""
    scene_shots: list[int] = []
    scene_seconds: list[float] = []
    for d, lab in zip(durations, labels, strict=True):
        shots, seconds = _scene_runs(lab, d)
        scene_shots += shots
        scene_seconds += seconds
    d = np.concatenate(durations)
    lab = np.concatenate(labels)
    end, other = d[lab == 1], d[lab == 0]
    known = lab != UNKNOWN

    def stat(fn, x: np.ndarray) -> float:
        return float(fn(x)) if x.size else float("nan")

    return {
        "videos": len(durations),
        "shots": int(d.size),
        "scenes": len(scene_shots),
        "shot_median_s": stat(np.median, d),
        "shot_mean_s": stat(np.mean, d),
        "shots_over_10s": stat(np.mean, d > 10),
        "shots_over_30s": stat(np.mean, d > 30),
        "shots_over_60s": stat(np.mean, d > 60),
        "end_shot_median_s": stat(np.median, end),
        "end_shot_mean_s": stat(np.mean, end),
        "other_shot_median_s": stat(np.median, other),
        "other_shot_mean_s": stat(np.mean, other),
        "scene_shots_median": stat(np.median, np.asarray(scene_shots)),
        "scene_shots_mean": stat(np.mean, np.asarray(scene_shots)),
        "scene_shots_p10": stat(lambda x: np.percentile(x, 10), np.asarray(scene_shots)),
        "scene_shots_p90": stat(lambda x: np.percentile(x, 90), np.asarray(scene_shots)),
        "scene_median_s": stat(np.median, np.asarray(scene_seconds)),
        "scene_mean_s": stat(np.mean, np.asarray(scene_seconds)),
        "boundary_rate": stat(np.mean, lab[known] == 1),
    }


def neighbour_cosine_scores(keyframes: np.ndarray) -> np.ndarray:
    """(N,) baseline boundary scores ``1 - cos(mean keyframe of shot i, of shot i+1)``;
    the last shot scores 0."""
    shots = np.asarray(keyframes, dtype=np.float64).mean(axis=1)
    shots /= np.maximum(np.linalg.norm(shots, axis=1, keepdims=True), 1e-12)
    scores = np.zeros(shots.shape[0])
    scores[:-1] = 1.0 - (shots[:-1] * shots[1:]).sum(1)
    return scores


def context_rule_scores(keyframes: np.ndarray, width: int = 4) -> np.ndarray:
    """(N,) untrained context baseline: ``1 - cos(mean of shots i-width+1..i, mean of shots
    i+1..i+width)`` over unit shot features (mean keyframe); the last shot scores 0."""
    x = np.asarray(keyframes, dtype=np.float64).mean(axis=1)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    csum = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    n = x.shape[0]
    i = np.arange(n - 1)
    left = csum[i + 1] - csum[np.maximum(0, i + 1 - width)]
    right = csum[np.minimum(n, i + 1 + width)] - csum[i + 1]
    cos = (left * right).sum(1) / (np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1))
    scores = np.zeros(n)
    scores[:-1] = 1.0 - cos
    return scores


def neighbour_cosine_ap(store: FeatureStore | str, video_ids: Sequence[str]) -> float:
    """Pooled AP (as :mod:`sseg.evaluation.metrics` computes it) of neighbour-cosine scores."""
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    scores, labels = [], []
    for vid in video_ids:
        video = store.load(vid)
        if video.labels is None:
            continue
        scores.append(neighbour_cosine_scores(video.keyframes))
        labels.append(video.labels)
    if not scores:
        raise ValueError("none of the videos has labels")
    return average_precision(np.concatenate(scores), np.concatenate(labels))
