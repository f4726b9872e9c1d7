"""Streaming segmentation: boundary decisions for shots as they arrive.

The context model scores shot ``i`` from the window of shots ``i - W/2 .. i + W/2``
(``W`` odd, ``W/2`` meaning ``W // 2``), so the decision for shot ``i`` can be made as
soon as shot ``i + W/2`` has arrived: a fixed lookahead of ``W/2`` shots. In time, a
decision comes ``W/2`` shot durations after the end of the shot it is about (8 shots of
2.67 s, the MovieNet median, = about 21 s for ``W = 17``), plus the compute time of one
window. :meth:`StreamingSegmenter.flush` decides the last ``W/2`` shots at the end of a
stream, with the windows zero-padded past the end as offline prediction pads them, so a
stream's decisions equal those of :meth:`SceneModel.predict` on the whole video.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import torch

from ..model import SceneModel
from .windows import Scorer, as_scorer

MOVIENET_MEDIAN_SHOT_SECONDS = 2.67


@dataclass(frozen=True)
class BoundaryDecision:
    """The model's decision about one shot of a stream.

    Attributes:
        shot: index of the shot in the stream (0-based).
        probability: P(the shot is the last shot of a scene).
        is_boundary: ``probability >= threshold``: a scene ends at ``time``.
        time: end time of the shot (seconds), where its scene would end.
        latency: stream seconds between the shot's end and the decision (the end of the
            last shot received when it was made): the lookahead in seconds.
    """

    shot: int
    probability: float
    is_boundary: bool
    time: float
    latency: float


class StreamingSegmenter:
    """Push shots one at a time, get each shot's decision ``W/2`` shots later.

    >>> stream = StreamingSegmenter(model)            # doctest: +SKIP
    >>> for shot in shots:                            # doctest: +SKIP
    ...     decision = stream.push(shot.keyframes, shot.start, shot.end)
    ...     if decision and decision.is_boundary:
    ...         print("scene ends at", decision.time)
    >>> remaining = stream.flush()                    # doctest: +SKIP

    ``model`` is a :class:`SceneModel` or any scorer (:mod:`sseg.deploy.windows`), e.g. an
    exported program from :func:`sseg.deploy.export.load_scorer`. After :meth:`flush` the
    segmenter is ready for a new stream.
    """

    def __init__(self, model: SceneModel | Scorer, threshold: float = 0.5):
        self.scorer = as_scorer(model)
        self.threshold = threshold
        self.window = int(self.scorer.window)
        self.lookahead = self.window // 2
        device = self.scorer.device
        self._real = torch.ones(1, dtype=torch.bool, device=device)
        self._padding = torch.zeros(1, dtype=torch.bool, device=device)
        self.reset()

    def reset(self) -> None:
        """Forget the current stream."""
        self._keyframes: torch.Tensor | None = None  # (W, K, D): the last W shots
        self._valid = torch.zeros(self.window, dtype=torch.bool, device=self.scorer.device)
        self._ends: deque[float] = deque()  # end times of received, undecided shots
        self._received = 0
        self._last_start = -math.inf
        self._last_end = 0.0

    @property
    def received(self) -> int:
        """Shots pushed since the stream started."""
        return self._received

    @property
    def decided(self) -> int:
        """Shots decided so far; always ``max(0, received - lookahead)`` before a flush."""
        return self._received - len(self._ends)

    def lookahead_seconds(self, shot_seconds: float = MOVIENET_MEDIAN_SHOT_SECONDS) -> float:
        """Decision delay for shots of ``shot_seconds`` each: ``lookahead * shot_seconds``."""
        return self.lookahead * shot_seconds

    def _shift(self, keyframes: torch.Tensor | None) -> None:
        """Slide the window one shot: append ``keyframes`` (K, D), or padding if None."""
        assert self._keyframes is not None
        new = torch.zeros_like(self._keyframes[:1]) if keyframes is None else keyframes[None]
        self._keyframes = torch.cat([self._keyframes[1:], new])
        flag = self._real if keyframes is not None else self._padding
        self._valid = torch.cat([self._valid[1:], flag])

    def _decide(self, probabilities: torch.Tensor) -> list[BoundaryDecision]:
        decisions = []
        for p in probabilities.float().cpu().tolist():
            shot = self.decided
            end = self._ends.popleft()
            decisions.append(
                BoundaryDecision(shot, p, p >= self.threshold, end, self._last_end - end)
            )
        return decisions

    def push(self, keyframes: torch.Tensor, start: float, end: float) -> BoundaryDecision | None:
        """Add the next shot, (K, D) keyframe features spanning ``[start, end)`` seconds.

        Returns the decision for shot ``received - 1 - lookahead`` once that shot exists,
        else None.
        """
        if keyframes.ndim != 2:
            raise ValueError(f"shot {self._received}: keyframes must be (K, D), got "
                             f"{tuple(keyframes.shape)}")  # fmt: skip
        if not (math.isfinite(start) and math.isfinite(end) and end > start):
            raise ValueError(f"shot {self._received}: needs finite start < end, got "
                             f"[{start}, {end})")  # fmt: skip
        if start < self._last_start:
            raise ValueError(f"shot {self._received}: starts at {start}, before the previous "
                             f"shot ({self._last_start})")  # fmt: skip
        keyframes = keyframes.to(self.scorer.device, torch.float32)
        if self._keyframes is None:
            self._keyframes = keyframes.new_zeros((self.window, *keyframes.shape))
        elif keyframes.shape != self._keyframes.shape[1:]:
            raise ValueError(f"shot {self._received}: keyframes {tuple(keyframes.shape)}, "
                             f"earlier shots {tuple(self._keyframes.shape[1:])}")  # fmt: skip
        self._shift(keyframes)
        self._received += 1
        self._last_start, self._last_end = start, end
        self._ends.append(end)
        if len(self._ends) <= self.lookahead:
            return None
        with torch.no_grad():
            probability = self.scorer(self._keyframes[None], self._valid[None])
        return self._decide(probability)[0]

    def flush(self) -> list[BoundaryDecision]:
        """End the stream: decide every undecided shot (at most ``lookahead``), then reset."""
        pending = len(self._ends)
        if pending == 0:
            self.reset()
            return []
        windows, valid = [], []
        for step in range(1, self.lookahead + 1):
            self._shift(None)
            if step > self.lookahead - pending:  # an undecided shot is now the centre
                windows.append(self._keyframes)
                valid.append(self._valid)
        decisions = []
        if windows:
            with torch.no_grad():
                decisions = self._decide(self.scorer(torch.stack(windows), torch.stack(valid)))
        self.reset()
        return decisions
