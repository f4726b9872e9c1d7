"""Streaming segmentation: boundary decisions for shots as they arrive.

The context model scores shot ``i`` from the window of shots ``i - W/2 .. i + W/2``
(``W`` odd, ``W/2`` meaning ``W // 2``), so the decision for shot ``i`` can be made as
soon as shot ``i + W/2`` has arrived: a fixed lookahead of ``W/2`` shots. In time, a
decision comes ``W/2`` shot durations after the end of the shot it is about (8 shots of
2.67 s, the MovieNet median, = about 21 s for ``W = 17``), plus the compute time of one
window. :meth:`StreamingSegmenter.flush` decides the last ``W/2`` shots at the end of a
stream, with the windows zero-padded past the end as offline prediction pads them, so a
stream's decisions equal those of :meth:`SceneModel.predict` on the whole video.

With ``tau`` set, shots longer than ``tau`` seconds are split into ``pieces`` sub-shots
as :func:`sseg.evaluation.splitting.split_long_shots` splits them offline (``sseg segment`` does so
by default); every sub-shot is one step of the stream and gets its own decision.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from ..evaluation.splitting import split_long_shots
from ..modeling.model import SceneModel
from ..shots import ShotSequence
from .windows import Scorer, as_scorer

MOVIENET_MEDIAN_SHOT_SECONDS = 2.67


@dataclass(frozen=True)
class BoundaryDecision:
    """The model's decision about one shot (or sub-shot) of a stream.

    Attributes:
        shot: index of the pushed shot (0-based).
        part: index of the sub-shot within the shot (0 unless the shot was split).
        parts: number of sub-shots of the shot (1 unless split).
        probability: P(the (sub-)shot is the last of a scene).
        is_boundary: ``probability >= threshold``: a scene ends at ``time``. For a part
            before the last, that is a scene change inside a long shot.
        time: end time of the (sub-)shot in seconds, where its scene would end.
        latency: stream seconds between ``time`` and the decision (the end of the last
            shot received when it was made): the lookahead in seconds.
    """

    shot: int
    part: int
    parts: int
    probability: float
    is_boundary: bool
    time: float
    latency: float


@dataclass(frozen=True)
class _Step:
    """One undecided step of the stream: a shot or a sub-shot."""

    shot: int
    part: int
    parts: int
    end: float


class StreamingSegmenter:
    """Push shots one at a time, get each shot's decision ``W/2`` steps later.

    >>> stream = StreamingSegmenter(model)            # doctest: +SKIP
    >>> for shot in shots:                            # doctest: +SKIP
    ...     for decision in stream.push(shot.keyframes, shot.start, shot.end):
    ...         if decision.is_boundary:
    ...             print("scene ends at", decision.time)
    >>> remaining = stream.flush()                    # doctest: +SKIP

    ``model`` is a :class:`SceneModel` or any scorer (:mod:`sseg.deploy.windows`), e.g. an
    exported program from :func:`sseg.deploy.export.load_scorer`. ``tau`` (seconds) turns
    on test-time splitting into ``pieces`` sub-shots. After :meth:`flush` the segmenter
    is ready for a new stream.
    """

    def __init__(
        self,
        model: SceneModel | Scorer,
        threshold: float = 0.5,
        tau: float | None = None,
        pieces: int = 3,
    ):
        if tau is not None and not tau > 0:
            raise ValueError(f"tau must be positive seconds or None, got {tau}")
        if pieces < 1:
            raise ValueError(f"pieces must be at least 1, got {pieces}")
        self.scorer = as_scorer(model)
        self.threshold = threshold
        self.tau = tau
        self.pieces = pieces
        self.window = int(self.scorer.window)
        self.lookahead = self.window // 2
        device = self.scorer.device
        self._real = torch.ones(1, dtype=torch.bool, device=device)
        self._padding = torch.zeros(1, dtype=torch.bool, device=device)
        self.reset()

    def reset(self) -> None:
        """Forget the current stream."""
        self._keyframes: torch.Tensor | None = None  # (W, K, D): the last W steps
        self._valid = torch.zeros(self.window, dtype=torch.bool, device=self.scorer.device)
        self._pending: deque[_Step] = deque()  # received, undecided steps
        self._received = 0
        self._steps = 0
        self._last_start = -math.inf
        self._last_end = 0.0

    @property
    def received(self) -> int:
        """Shots pushed since the stream started."""
        return self._received

    @property
    def decided(self) -> int:
        """Steps (shots, or sub-shots of split shots) decided so far in this stream."""
        return self._steps - len(self._pending)

    def lookahead_seconds(self, shot_seconds: float = MOVIENET_MEDIAN_SHOT_SECONDS) -> float:
        """Decision delay for shots of ``shot_seconds`` each: ``lookahead * shot_seconds``."""
        return self.lookahead * shot_seconds

    def _shift(self, keyframes: torch.Tensor | None) -> None:
        """Slide the window one step: append ``keyframes`` (K, D), or padding if None."""
        assert self._keyframes is not None
        new = torch.zeros_like(self._keyframes[:1]) if keyframes is None else keyframes[None]
        self._keyframes = torch.cat([self._keyframes[1:], new])
        flag = self._real if keyframes is not None else self._padding
        self._valid = torch.cat([self._valid[1:], flag])

    def _decide(self, probabilities: torch.Tensor) -> list[BoundaryDecision]:
        decisions = []
        for p in probabilities.float().cpu().tolist():
            step = self._pending.popleft()
            latency = self._last_end - step.end
            decisions.append(
                BoundaryDecision(
                    step.shot, step.part, step.parts, p, p >= self.threshold, step.end, latency
                )
            )
        return decisions

    def _check(self, keyframes: torch.Tensor, start: float, end: float) -> None:
        shot = self._received
        if keyframes.ndim != 2:
            raise ValueError(f"shot {shot}: keyframes must be (K, D), got {tuple(keyframes.shape)}")
        if self._keyframes is not None and keyframes.shape != self._keyframes.shape[1:]:
            raise ValueError(f"shot {shot}: keyframes {tuple(keyframes.shape)}, earlier shots "
                             f"{tuple(self._keyframes.shape[1:])}")  # fmt: skip
        if not (math.isfinite(start) and math.isfinite(end) and end > start):
            raise ValueError(f"shot {shot}: needs finite start < end, got [{start}, {end})")
        if start < self._last_start:
            raise ValueError(f"shot {shot}: starts at {start}, before the previous shot "
                             f"({self._last_start})")  # fmt: skip

    def _split(self, keyframes: torch.Tensor, start: float, end: float):
        """(pieces, K, D) sub-shot keyframes and their end times, as offline splitting."""
        if self.tau is None or end - start <= self.tau:
            return keyframes[None], [end]
        shot = ShotSequence("stream", np.array([start]), np.array([end]))
        plan = split_long_shots(shot, keyframes[None], tau=self.tau, n=self.pieces)
        return plan.keyframes, plan.sequence.ends.tolist()

    def push(self, keyframes: torch.Tensor, start: float, end: float) -> list[BoundaryDecision]:
        """Add the next shot, (K, D) keyframe features spanning ``[start, end)`` seconds.

        Returns the decisions this shot completes the lookahead of, oldest first: one per
        shot once ``W/2`` later steps exist (more when a split shot adds several steps),
        none before.
        """
        self._check(keyframes, start, end)
        keyframes = keyframes.to(self.scorer.device, torch.float32)
        if self._keyframes is None:
            self._keyframes = keyframes.new_zeros((self.window, *keyframes.shape))
        steps, ends = self._split(keyframes, start, end)
        shot = self._received
        self._received += 1
        self._last_start, self._last_end = start, end
        windows, valid = [], []
        for part, (step, step_end) in enumerate(zip(steps, ends, strict=True)):
            self._shift(step)
            self._steps += 1
            self._pending.append(_Step(shot, part, len(ends), step_end))
            if len(self._pending) - len(windows) > self.lookahead:
                windows.append(self._keyframes)
                valid.append(self._valid)
        if not windows:
            return []
        with torch.no_grad():
            return self._decide(self.scorer(torch.stack(windows), torch.stack(valid)))

    def flush(self) -> list[BoundaryDecision]:
        """End the stream: decide every undecided step (at most ``lookahead``), then reset."""
        pending = len(self._pending)
        if pending == 0:
            self.reset()
            return []
        windows, valid = [], []
        for step in range(1, self.lookahead + 1):
            self._shift(None)
            if step > self.lookahead - pending:  # an undecided step is now the centre
                windows.append(self._keyframes)
                valid.append(self._valid)
        with torch.no_grad():
            decisions = self._decide(self.scorer(torch.stack(windows), torch.stack(valid)))
        self.reset()
        return decisions
