"""Keyframes taken during the shot-detection pass, so a video is decoded once.

A shot's keyframes (:func:`sseg.segmentation.keyframes.keyframe_indices`) depend on where the shot
ends, which the detector knows only some frames later. :class:`KeyframeCollector`
therefore keeps every decoded frame (a :class:`~sseg.segmentation.video.KeyframePicture`: keyframe
size, still in the decoder's pixel format) that can still become a keyframe, and
converts to RGB only the keyframes. The detector reports its progress with
:meth:`KeyframeCollector.settle`:
the shot starts it considers final up to a frontier frame. Then

* the keyframes of each shot closed before the frontier go to ``on_keyframes`` (the
  caller encodes them while decoding goes on) and its other frames are dropped;
* in the shot still open at the frontier, frames before ``start + (frontier - start) /
  (2k)`` are dropped: however the shot ends, its first keyframe lies after them.

The detector's final shots decide; :meth:`KeyframeCollector.finish` returns each
final keyframe's picture from what was kept and lists the frames it no longer has
(a settled start that the final detection moved, or a shot too long for
``max_bytes``), which the caller decodes in a second, targeted pass. So the result
equals a separate keyframe pass whatever the detector does; only its speed depends
on the settled starts being right.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..shots import Shot
from .keyframes import keyframe_indices
from .video import KeyframePicture

Picture = KeyframePicture | np.ndarray  # an RGB array is kept as it is

MAX_BYTES = 256 * 2**20  # kept frames beyond this: the open shot's are dropped (second pass)


class KeyframeCollector:
    """Frames that may still become keyframes, kept during a single decoding pass.

    Args:
        k: keyframes per shot.
        on_keyframes: called with ``[(frame index, slot, rgb), ...]`` for the keyframes
            of shots that closed before the detector's frontier (``slot`` in ``0..k-1``:
            the keyframe's place in its shot, as settled).
        max_bytes: most bytes of frames kept; past it, the frames of the open shot that
            the closed shots do not need are dropped and fetched again by the caller.
    """

    def __init__(
        self,
        k: int = 3,
        on_keyframes: Callable[[list[tuple[int, int, np.ndarray]]], None] | None = None,
        max_bytes: int = MAX_BYTES,
    ):
        self.k = k
        self.on_keyframes = on_keyframes
        self.max_bytes = max_bytes
        self.frames: dict[int, Picture] = {}  # frame index -> keyframe-size picture
        self.kept_bytes = 0
        self.peak_bytes = 0
        self.emitted: set[int] = set()
        self.refetch: set[int] = set()  # keyframes finish() found dropped (a second pass)
        self._closed_until = None  # start of the open shot (frame index), None = first frame
        self._first: int | None = None

    def add(self, index: int, picture: Picture) -> None:
        """A decoded frame (keyframe size), in decoding order."""
        if self._first is None:
            self._first = index
        self.frames[index] = picture
        self.kept_bytes += picture.nbytes
        self.peak_bytes = max(self.peak_bytes, self.kept_bytes)
        if self.kept_bytes > self.max_bytes:
            self._shed()

    def settle(self, starts: list[int], frontier: int) -> None:
        """The detector's shot starts (frame indices) that it considers final, all at or
        before ``frontier``; frames up to ``frontier`` are scored and hold no other start.
        """
        if self._first is None:
            return
        open_start = self._closed_until if self._closed_until is not None else self._first
        new = sorted(s for s in starts if open_start < s <= frontier)
        ready: list[tuple[int, int, np.ndarray]] = []
        for start, end in zip([open_start, *new], new, strict=False):  # closed shots
            row = keyframe_indices([Shot(start, end, 0.0, 0.0)], self.k)[0]
            ready += [
                (int(i), j, _rgb(self.frames[int(i)]))
                for j, i in enumerate(row)
                if i in self.frames
            ]
        if new:
            open_start = self._closed_until = new[-1]
        needed = {index for index, _, _ in ready}
        floor = open_start + max(frontier - open_start, 0) // (2 * self.k)
        self._drop([i for i in self.frames if i < floor and i not in needed])
        if ready and self.on_keyframes is not None:
            self.emitted.update(needed)
            self.on_keyframes(ready)
        self._drop(list(needed))

    def finish(self, shots: list[Shot]) -> tuple[dict[int, np.ndarray], set[int]]:
        """Pictures of the final shots' keyframes not yet emitted, and the keyframe
        frames no longer kept (emitted ones excluded): ``(pictures, missing)``."""
        wanted = set(keyframe_indices(shots, self.k).reshape(-1).tolist()) if shots else set()
        pending = wanted - self.emitted
        pictures = {i: _rgb(self.frames[i]) for i in pending if i in self.frames}
        self._drop(list(self.frames))
        self.refetch = pending - set(pictures)
        return pictures, set(self.refetch)

    def _shed(self) -> None:
        """Over budget: drop the oldest frames of the open shot until back under it."""
        for index in sorted(self.frames):
            if self.kept_bytes <= self.max_bytes // 2:
                break
            self._drop([index])

    def _drop(self, indices: list[int]) -> None:
        for index in indices:
            picture = self.frames.pop(index, None)
            if picture is not None:
                self.kept_bytes -= picture.nbytes


def _rgb(picture: Picture) -> np.ndarray:
    return picture if isinstance(picture, np.ndarray) else picture.rgb()
