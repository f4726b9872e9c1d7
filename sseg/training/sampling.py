"""Window and anchor sampling for pseudo-boundary pre-training.

A *window* is ``window`` consecutive shots of one video (default 17); a video
shorter than that gives one window of all its shots, padded and masked.
In each window K >= 2 *anchor* shots are drawn; the pseudo-boundary search then
splits the window into K pseudo-scenes, one around each anchor.

Anchor modes (``p_i`` is the probability of shot ``i`` on each draw):

* ``idw`` (default): ``p_i ∝ 1 / d_i`` (short shots are more often anchors),
* ``dw``: ``p_i ∝ d_i``,
* ``uniform``: ``p_i = 1 / W``,
* ``side`` (BaSSL): the window's first and last shot; for K > 2 the other K-2
  anchors are drawn uniformly from the interior shots.

``idw``/``dw``/``uniform`` draw K distinct shots *without replacement* from the
whole window, ends included (successive draws, each renormalised over the shots
not yet drawn), then sort them. The window's ends are not forced to be anchors:
shots before the first anchor join the first pseudo-scene, shots after the last
join the last one. Everything is a pure function of the NumPy generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANCHOR_MODES = ("idw", "dw", "uniform", "side")
MIN_DURATION = 1e-3  # seconds; guards 1/d for zero-length shots


def anchor_probabilities(durations: np.ndarray, mode: str) -> np.ndarray:
    """Per-draw probabilities (W,) of each shot being an anchor under ``mode``."""
    d = np.maximum(np.asarray(durations, dtype=np.float64), MIN_DURATION)
    if mode == "idw":
        w = 1.0 / d
    elif mode == "dw":
        w = d
    elif mode in ("uniform", "side"):
        w = np.ones_like(d)
    else:
        raise ValueError(f"unknown anchor mode {mode!r} (choose from {', '.join(ANCHOR_MODES)})")
    return w / w.sum()


def sample_anchors(
    rng: np.random.Generator, durations: np.ndarray, k: int, mode: str = "idw"
) -> np.ndarray:
    """K sorted, distinct anchor indices (int64) into a window with these shot durations."""
    n = len(durations)
    if k < 2:
        raise ValueError(f"need at least 2 anchors, got {k}")
    if n < k:
        raise ValueError(f"cannot draw {k} distinct anchors from {n} shots")
    if mode == "side":
        inner = rng.choice(np.arange(1, n - 1), size=k - 2, replace=False) if k > 2 else []
        anchors = np.concatenate([[0, n - 1], np.asarray(inner, dtype=np.int64)])
    else:
        p = anchor_probabilities(durations, mode)
        anchors = rng.choice(n, size=k, replace=False, p=p)
    return np.sort(anchors.astype(np.int64))


@dataclass(frozen=True)
class WindowRef:
    """One window: shots ``[start, start + length)`` of video ``video``."""

    video: int
    start: int
    length: int


class WindowIndex:
    """All windows of a corpus, enumerated once, ordered per epoch by a seeded permutation.

    Window starts step by ``stride`` shots; the last window of a video is aligned to its
    end so no shot is left out. Item ``g`` of the global stream lives in epoch
    ``g // len(self)`` and is ``windows[perm(seed, epoch)[g % len(self)]]``; rank ``r``
    of ``world`` takes, at step ``s`` with ``batch`` windows per rank, the items
    ``(s * world + r) * batch + j`` - disjoint across ranks, like DistributedSampler.
    """

    def __init__(self, num_shots: list[int], window: int, min_shots: int = 2, stride: int = 1):
        if window < 1 or stride < 1:
            raise ValueError("window and stride must be >= 1")
        self.window = window
        self.skipped = [i for i, n in enumerate(num_shots) if n < min_shots]
        videos, starts, lengths = [], [], []
        for v, n in enumerate(num_shots):
            if n < min_shots:
                continue
            if n <= window:
                s = np.zeros(1, dtype=np.int64)
            else:
                s = np.arange(0, n - window + 1, stride, dtype=np.int64)
                if s[-1] != n - window:
                    s = np.append(s, n - window)
            videos.append(np.full(len(s), v, dtype=np.int64))
            starts.append(s)
            lengths.append(np.full(len(s), min(n, window), dtype=np.int64))
        if not videos:
            raise ValueError(f"no video has at least {min_shots} shots")
        self.videos = np.concatenate(videos)
        self.starts = np.concatenate(starts)
        self.lengths = np.concatenate(lengths)
        self._perm_cache: tuple[tuple[int, int], np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.videos.shape[0])

    def _perm(self, seed: int, epoch: int) -> np.ndarray:
        if self._perm_cache is None or self._perm_cache[0] != (seed, epoch):
            rng = np.random.default_rng([seed, epoch, 0x5EED])
            self._perm_cache = ((seed, epoch), rng.permutation(len(self)))
        return self._perm_cache[1]

    def item(self, seed: int, position: int) -> WindowRef:
        """The window at global stream ``position``."""
        epoch, offset = divmod(position, len(self))
        i = int(self._perm(seed, epoch)[offset])
        return WindowRef(int(self.videos[i]), int(self.starts[i]), int(self.lengths[i]))

    def batch(self, seed: int, step: int, rank: int, world: int, size: int) -> list[WindowRef]:
        """The ``size`` windows of ``rank`` at ``step``."""
        first = (step * world + rank) * size
        return [self.item(seed, first + j) for j in range(size)]
