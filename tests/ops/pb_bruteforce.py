"""Brute-force pseudo-boundary search over every boundary tuple (test helper).

Tuples come from ``itertools.product`` over the allowed ranges, i.e. in
lexicographic order, so the first tuple within the tie tolerance of the best score
is the one the tie rule picks.
"""

from __future__ import annotations

import itertools

import numpy as np

EPS = 1e-8


def cosine_rows(x: np.ndarray, anchors: list[int], n: int) -> np.ndarray:
    """(K, n) float64 cosine of shots [0, n) to each anchor (same eps rule as sseg)."""
    xv = x[:n].astype(np.float64)
    norm = np.sqrt((xv * xv).sum(axis=1))
    dots = xv[anchors] @ xv.T
    return dots / ((norm[None, :] + EPS) * (norm[anchors][:, None] + EPS))


def all_tuples(anchors: list[int]) -> np.ndarray:
    """Every admissible boundary tuple, (T, K-1), in lexicographic order."""
    ranges = [range(anchors[k], anchors[k + 1]) for k in range(len(anchors) - 1)]
    return np.array(list(itertools.product(*ranges)), dtype=np.int64).reshape(-1, len(anchors) - 1)


def tuple_scores(
    sims: np.ndarray, tuples: np.ndarray, n: int, mode: str, anchors: list[int]
) -> np.ndarray:
    """(T,) scores of each tuple; ``sims`` (K, n) in any float dtype (kept)."""
    k = sims.shape[0]
    prefix = np.concatenate([np.zeros((k, 1), sims.dtype), np.cumsum(sims, axis=1)], axis=1)
    edges = np.concatenate(
        [np.full((len(tuples), 1), -1), tuples, np.full((len(tuples), 1), n - 1)], axis=1
    )
    # right to left, like the implementations: seg_0 + (seg_1 + (... + seg_{K-1}))
    total = None
    for kk in range(k - 1, -1, -1):
        lo, hi = edges[:, kk] + 1, edges[:, kk + 1]
        seg = prefix[kk, hi + 1] - prefix[kk, lo]
        if mode == "mean":
            seg = seg / (hi - lo + 1).astype(sims.dtype)
        elif mode == "mean_others":  # the anchor's own similarity left out
            seg = (seg - sims[kk, anchors[kk]]) / np.maximum(hi - lo, 1).astype(sims.dtype)
        total = seg if total is None else (seg + total).astype(sims.dtype)
    return total


def tie_tolerance(n: int, k: int, mode: str) -> float:
    """The implementations' tie tolerance (float32-rounded 1e-5 * (n or K))."""
    return float(np.float32(1e-5 * (n if mode == "sum" else k)))


def pick_within(scores, tol):
    """(index of the first tuple scoring >= max - tol, distance of the nearest score to
    that threshold); tuples come in lexicographic order."""
    best = max(scores)
    threshold = best - tol
    index = next(i for i, v in enumerate(scores) if v >= threshold)
    clearance = min(abs(float(v - threshold)) for v in scores)
    return index, clearance


def brute_force(x: np.ndarray, anchors: list[int], n: int, mode: str):
    """Returns (expected tuple, best score, clearance, margin): the expected tuple follows
    the tie rule and is well defined when ``clearance`` (distance of the nearest score to
    the tie threshold) exceeds float32 noise; ``margin`` is best minus second best."""
    tuples = all_tuples(anchors)
    scores = tuple_scores(cosine_rows(x, anchors, n), tuples, n, mode, anchors)
    index, clearance = pick_within(list(scores), tie_tolerance(n, len(anchors), mode))
    ordered = np.sort(scores)
    margin = float(ordered[-1] - ordered[-2]) if len(ordered) > 1 else np.inf
    return tuple(int(v) for v in tuples[index]), float(ordered[-1]), clearance, margin
