"""BaSSL-style per-sequence DTW (NumPy, one sequence at a time): a baseline for
benchmarks and an independent check of ``mode="sum"``.

Each valid shot is aligned monotonically to one of the K anchors with cost
``1 - cos`` (shot ``a_k`` pinned to anchor k); minimising the total cost maximises
the summed similarity, i.e. the sum-mode objective. Ties stay on the current
anchor while backtracking, i.e. favour earlier boundaries.
"""

from __future__ import annotations

import numpy as np
import torch


def dtw_boundaries_one(x: np.ndarray, anchors: np.ndarray, n: int) -> np.ndarray:
    """(K-1,) boundaries of one sequence ``x`` (L, D) with valid length ``n``."""
    xv = x[:n].astype(np.float32)
    norm = np.linalg.norm(xv, axis=1) + 1e-8
    cost = 1.0 - (xv @ xv[anchors].T) / (norm[:, None] * norm[anchors][None, :])  # (n, K)
    k = len(anchors)
    pinned = np.full((n, k), False)
    pinned[anchors, :] = True
    pinned[anchors, np.arange(k)] = False
    cost[pinned] = np.inf
    acc = np.full((n, k), np.inf)
    acc[0, 0] = cost[0, 0]
    for i in range(1, n):
        prev = acc[i - 1]
        acc[i, 0] = cost[i, 0] + prev[0]
        acc[i, 1:] = cost[i, 1:] + np.minimum(prev[1:], prev[:-1])
    bounds = np.empty(k - 1, dtype=np.int64)
    j = k - 1
    for i in range(n - 1, 0, -1):
        if j > 0 and acc[i - 1, j - 1] < acc[i - 1, j]:
            bounds[j - 1] = i - 1
            j -= 1
    return bounds


def dtw_boundaries_loop(
    x: torch.Tensor, anchors: torch.Tensor, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """Sum-mode boundaries (B, K-1), one Python DTW per sequence (slow on purpose)."""
    xs = x.detach().float().cpu().numpy()
    an = anchors.cpu().numpy()
    ns = [x.shape[1]] * x.shape[0] if lengths is None else lengths.tolist()
    out = [dtw_boundaries_one(xs[b], an[b], int(ns[b])) for b in range(x.shape[0])]
    return torch.from_numpy(np.stack(out)) if out else torch.empty((0, an.shape[1] - 1))
