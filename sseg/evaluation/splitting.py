"""Test-time shot splitting: long shots become ``n`` equal sub-shots, results map back.

A shot longer than ``tau`` seconds is cut into ``n`` sub-shots of equal length.
Keyframes sit at the centres of a shot's K equal parts (the project's
convention), so sub-shot ``j`` takes the keyframe nearest its own centre, i.e.
the one whose part contains that centre: ``k = floor((j + 0.5) * K / n)``,
which is keyframe ``j`` when ``n == K``.
That single keyframe is repeated K times, so the sub-shot's feature tensor keeps
the (K, D) shape and its mean (what :meth:`SceneModel.shot_features` takes) is
exactly that keyframe. Shots at or below ``tau`` keep all their keyframes.

A shot's boundary probability is that of its last sub-shot (the last sub-shot
ends where the shot ends); probabilities of earlier sub-shots are boundaries
*inside* a long shot (:meth:`SplitPlan.intra_shot_boundaries`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..shots import ShotSequence

UNKNOWN = -100


@dataclass
class SplitPlan:
    """How the shots of one video were split.

    Attributes:
        original: the input sequence.
        sequence: the split sequence (N' sub-shots); labels of non-last sub-shots are -100.
        keyframes: (N', K, D) features of the sub-shots (same dtype as the input).
        origin: (N',) index of the original shot of each sub-shot.
        part: (N',) position of each sub-shot inside its shot (0..pieces-1).
        pieces: (N,) number of sub-shots per original shot.
    """

    original: ShotSequence
    sequence: ShotSequence
    keyframes: torch.Tensor
    origin: np.ndarray
    part: np.ndarray
    pieces: np.ndarray

    @property
    def last(self) -> np.ndarray:
        """(N,) index of each original shot's last sub-shot."""
        return np.cumsum(self.pieces) - 1

    @property
    def n_split(self) -> int:
        """Number of original shots that were split."""
        return int((self.pieces > 1).sum())

    def _check(self, sub_probs) -> np.ndarray:
        probs = np.asarray(sub_probs, dtype=np.float64).reshape(-1)
        if probs.size != self.origin.size:
            raise ValueError(
                f"{probs.size} sub-shot probabilities for {self.origin.size} sub-shots"
            )
        return probs

    def merge(self, sub_probs) -> np.ndarray:
        """(N',) sub-shot probabilities -> (N,) per original shot (its last sub-shot's)."""
        return self._check(sub_probs)[self.last]

    def intra_shot_boundaries(
        self, sub_probs, threshold: float = 0.5
    ) -> list[tuple[int, float, float]]:
        """Boundaries inside long shots: ``(shot_index, time_seconds, prob)``, time order.

        A sub-shot that is not the last of its shot and has ``prob >= threshold``
        marks a scene change at its end time.
        """
        probs = self._check(sub_probs)
        not_last = self.part < self.pieces[self.origin] - 1
        found = np.nonzero(not_last & (probs >= threshold))[0]
        return [(int(self.origin[i]), float(self.sequence.ends[i]), float(probs[i])) for i in found]


def nearest_keyframe(part: int, pieces: int, keyframes: int) -> int:
    """Index of the keyframe nearest the centre of sub-shot ``part`` of ``pieces``."""
    k = int(np.floor((part + 0.5) * keyframes / pieces))  # part of K containing the centre
    return min(max(k, 0), keyframes - 1)


def split_long_shots(
    seq: ShotSequence,
    keyframes: torch.Tensor | np.ndarray,
    tau: float | None = 10.0,
    n: int = 3,
) -> SplitPlan:
    """Split every shot longer than ``tau`` seconds into ``n`` equal sub-shots.

    Args:
        seq: shots of one video (times in seconds).
        keyframes: (N, K, D) keyframe features of those shots.
        tau: duration threshold in seconds; ``None`` turns splitting off.
        n: sub-shots per long shot (>= 1).
    """
    feats = keyframes
    if not isinstance(feats, torch.Tensor):  # e.g. a read-only fp16 memmap: copy it
        feats = torch.from_numpy(np.array(feats))
    if feats.ndim != 3 or feats.shape[0] != len(seq):
        raise ValueError(f"keyframes must be (N={len(seq)}, K, D), got {tuple(feats.shape)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if tau is not None and tau <= 0:
        raise ValueError(f"tau must be positive seconds or None, got {tau}")
    durations = seq.ends - seq.starts
    long = np.zeros(len(seq), bool) if tau is None or n == 1 else durations > tau
    pieces = np.where(long, n, 1).astype(np.int64)
    origin = np.repeat(np.arange(len(seq)), pieces)
    part = np.arange(origin.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    frac = part / pieces[origin]
    starts = seq.starts[origin] + frac * durations[origin]
    ends = seq.starts[origin] + (part + 1) / pieces[origin] * durations[origin]
    last = part == pieces[origin] - 1
    ends[last] = seq.ends[origin[last]]  # exact, no rounding drift

    k = feats.shape[1]
    nearest = np.minimum(np.floor((part + 0.5) * k / pieces[origin]).astype(np.int64), k - 1)
    index = np.where((pieces[origin] > 1)[:, None], nearest[:, None], np.arange(k)[None, :])
    sub_feats = feats[torch.as_tensor(origin)[:, None], torch.as_tensor(index)]

    labels = None
    if seq.labels is not None:
        labels = np.where(last, seq.labels[origin], UNKNOWN)
    sequence = ShotSequence(
        video_id=seq.video_id,
        starts=starts,
        ends=ends,
        labels=labels,
        genres=list(seq.genres),
        fps=seq.fps,
    )
    return SplitPlan(seq, sequence, sub_feats, origin, part, pieces)
