"""Video file in, scenes out: ``sseg.segment(path, **options) -> SegmentationResult``.

Stages: decode + shot detection (:mod:`sseg.segmentation.shot_detect`) with the keyframes of settled
shots taken from the same decoded frames (:mod:`sseg.segmentation.keyframe_collector`) and encoded
by frozen CLIP in a worker thread (:mod:`sseg.segmentation.keyframe_features`), test-time splitting
(:mod:`sseg.evaluation.splitting`), SceneModel inference, grouping
(:mod:`sseg.segmentation.scenes`). Decoding starts before the models load (:func:`start_decoding`,
:func:`load_models_in_background`). Each stage's wall time is recorded in ``timings``.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..shots import Shot
from .keyframes import keyframes_for_shots
from .timecode import parse_timecode, to_frame
from .video import VideoInfo, open_video

__all__ = [
    "SegmentationResult",
    "IntraShotBoundary",
    "detect_shots",
    "keyframes_for_shots",
    "segment",
]


def detect_shots(
    path: str | Path,
    detector: str = "transnetv2",
    threshold: float | None = None,
    min_shot_frames: int = 15,
    start: str | float | int | None = None,
    end: str | float | int | None = None,
    device: str = "cpu",
    quiet: bool = True,
    precision: str = "auto",
) -> tuple[list[Shot], float]:
    """Shots of the video at ``path`` and its frame rate: ``(list[Shot], fps)``.

    ``start``/``end`` restrict detection to a sub-range (timecodes, see
    :func:`sseg.segmentation.timecode.parse_timecode`).
    """
    from .shot_detect import detect_shots as _detect

    video = open_video(path)
    detection = _detect(
        video,
        detector=detector,
        threshold=threshold,
        min_shot_frames=min_shot_frames,
        device=device,
        quiet=quiet,
        precision=precision,
        **range_bounds(video.info, start, end),
    )
    return detection.shots, video.info.fps


def frame_range(
    info: VideoInfo, start: str | float | int | None, end: str | float | int | None
) -> tuple[int, int | None]:
    """Parse ``start``/``end`` timecodes into a half-open frame range."""
    start_frame = 0 if start is None else to_frame(parse_timecode(start, info.fps), info.fps)
    end_frame = None if end is None else to_frame(parse_timecode(end, info.fps), info.fps)
    if end_frame is not None and end_frame <= start_frame:
        raise InputError(f"--end ({end}) must come after --start ({start or 0})", info.path)
    return start_frame, end_frame


def range_bounds(
    info: VideoInfo, start: str | float | int | None, end: str | float | int | None
) -> dict[str, Any]:
    """``start``/``end`` timecodes as shot-detection bounds.

    A frame number (``123``) bounds by frame index, any other timecode by the
    frames' stream timestamps (right for variable frame rate):
    ``{start_frame, end_frame, start_time, end_time}``.
    """
    frame_range(info, start, end)  # validates both and their order
    bounds: dict[str, Any] = {"start_frame": 0, "end_frame": None}
    for key, text in (("start", start), ("end", end)):
        if text is None:
            continue
        if _is_frame_number(text):
            bounds[f"{key}_frame"] = int(str(text).strip())
        else:
            bounds[f"{key}_time"] = parse_timecode(text, info.fps)
    return bounds


def _is_frame_number(text: str | float | int) -> bool:
    if isinstance(text, bool):
        return False
    return isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit())


@dataclass
class IntraShotBoundary:
    """A scene change found inside a long shot by test-time splitting."""

    shot_index: int
    time: float
    frame: int
    probability: float


@dataclass
class SegmentationResult:
    """Everything ``segment`` found, plus per-stage wall times in seconds."""

    video: VideoInfo
    shots: list[Shot]
    probabilities: np.ndarray  # (N,) P(shot i is the last shot of a scene)
    threshold: float
    scenes: list[Any]  # list[sseg.segmentation.scenes.Scene]
    intra_shot_boundaries: list[IntraShotBoundary] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    detector: str = "transnetv2"
    model: str = ""
    skipped_frames: int = 0
    # (N, 1, h, w, 3) uint8 thumbnail of each shot's middle keyframe (for reports)
    keyframes: np.ndarray | None = field(default=None, repr=False)

    @property
    def processed_duration(self) -> float:
        """Seconds of video covered by the shots."""
        return self.shots[-1].end_time - self.shots[0].start_time if self.shots else 0.0


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="shot", file=sys.stderr, disable=quiet, leave=False)


# CLIP keyframes per batch by default: large on a GPU; small on a CPU, where the first
# batch then starts while the decoder thread is still reading the video (bench_inference).
GPU_BATCH, CPU_BATCH = 64, 16
KEYFRAMES = 3  # per shot (the method's shot = 3 keyframes)
_BACKBONES: dict[tuple, tuple] = {}


def _backbone(clip_weights: str | None, seed: int | None, device: str, precision: str = "fp32"):
    """Load (and cache per process) the frozen CLIP image tower:
    ``(tower, preprocess, fingerprint)``.

    On a CPU with ``precision`` bf16 the cached tower holds bf16 weights (oneDNN's bf16
    matmuls; the tower casts its input to them), converted tensor by tensor as they are
    read, so no fp32 copy of the tower is ever held. The image-tower fingerprint is taken
    from the fp32 weights on the way.
    """
    from .keyframe_features import load_image_backbone
    from .precision import PRECISIONS

    dtype = PRECISIONS["fp32" if device.startswith("cuda") else precision]
    path = None if clip_weights is None else str(Path(clip_weights).resolve())
    key = (path, seed, device, dtype)
    if key not in _BACKBONES:
        tower, preprocess = load_image_backbone(clip_weights, seed=seed, device=device, dtype=dtype)
        _BACKBONES[key] = (tower, preprocess, tower.weights_fingerprint)
    return _BACKBONES[key]


def _random_init_seed(backbone_id: object) -> int | None:
    """Seed of a random-init backbone id such as ``ViT-B-32:random-seed0`` (else None)."""
    match = re.search(r":random-seed(\d+)$", backbone_id) if isinstance(backbone_id, str) else None
    return None if match is None else int(match.group(1))


def _check_backbone_weights(meta: dict, fingerprint: str, model_name: str) -> None:
    """InputError when the model was trained on features of other CLIP weights."""
    expected = meta.get("backbone_weights")
    if not expected:
        return  # models that record no fingerprint (demo, older checkpoints)
    if fingerprint != expected:
        raise InputError(
            f"the model was trained on features of CLIP weights {meta.get('backbone')!r}; "
            "the CLIP weights given (--clip-weights) are different",
            model_name,
        )


def load_scene_model(model: str | Path | None, device: str, quiet: bool = True):
    """A SceneModel from ``model`` (path), or the cached demo model when None."""
    from ..modeling.model import SceneModel

    if model is None:
        from .demo import ensure_demo_model

        model = ensure_demo_model(quiet=quiet)
    return SceneModel.load(model, device=device).eval(), str(model)


@dataclass
class Models:
    """Everything :func:`segment` loads once: device, precision, SceneModel and CLIP tower."""

    device: str
    precision: str
    scene_model: Any
    model_name: str
    backbone: Any
    preprocess: Any
    load_seconds: float = 0.0


def load_models(
    model: str | Path | None = None,
    clip_weights: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    quiet: bool = True,
    loaded_model: tuple[Any, str] | None = None,
    on_device: Callable[[str, str], None] | None = None,
) -> Models:
    """Resolve the device and precision and load the SceneModel and its CLIP image tower.

    ``clip_weights``: a local file, ``"random"`` (the seeded random init), or None for the
    backbone the model names (the demo model does). A precision note (e.g. fp16 on a CPU)
    goes to stderr. ``on_device(device, precision)`` is called as soon as both are known
    (before the models load). Raises InputError for a model/weights mismatch or a missing
    file.
    """
    from .keyframe_features import resolve_device
    from .precision import resolve_precision

    tick = time.perf_counter()
    device = resolve_device(device)
    precision, note = resolve_precision(precision, device)
    if note:
        print(f"sseg: {note}", file=sys.stderr)
    if on_device is not None:
        on_device(device, precision)
    scene_model, model_name = loaded_model or load_scene_model(model, device, quiet)
    meta = scene_model.meta
    seed = None
    if clip_weights == "random":  # load_clip's seeded random init, as `sseg extract` uses
        clip_weights = None
    elif clip_weights is None:
        seed = meta.get("backbone_seed", _random_init_seed(meta.get("backbone")))
        if seed is None or meta.get("clip_weights"):
            raise InputError(
                "this model needs the CLIP weights its features came from: pass "
                "--clip-weights PATH (or 'random' for a random-init backbone)",
                model_name,
            )
    backbone, preprocess, fingerprint = _backbone(
        None if clip_weights is None else str(clip_weights), seed, device, precision
    )
    _check_backbone_weights(meta, fingerprint, model_name)
    return Models(
        device, precision, scene_model, model_name, backbone, preprocess,
        time.perf_counter() - tick,
    )  # fmt: skip


def load_models_in_background(**options: Any) -> Future:
    """:func:`load_models` in a thread, started now: a Future of :class:`Models`.

    Pass it as ``segment(models=...)``: shot detection starts before the models are
    loaded. The Future's ``device`` attribute is a Future of ``(device, precision)`` that
    resolves once torch is imported and both are known, so TransNetV2 can start while the
    SceneModel and CLIP still load (the content detector does not even wait for that);
    settled keyframes wait for CLIP.
    """
    models: Future = Future()
    device: Future = Future()
    models.device = device

    def load() -> None:
        try:
            loaded = load_models(**options, on_device=lambda *known: device.set_result(known))
        except BaseException as exc:
            if not device.done():
                device.set_exception(exc)
            models.set_exception(exc)
        else:
            models.set_result(loaded)

    threading.Thread(target=load, name="sseg-load", daemon=True).start()
    return models


def segment(
    path: str | Path,
    *,
    detector: str = "transnetv2",
    detector_threshold: float | None = None,
    min_shot_frames: int = 15,
    threshold: float = 0.5,
    tau: float | None = 10.0,
    split: bool = True,
    start: str | float | int | None = None,
    end: str | float | int | None = None,
    model: str | Path | None = None,
    clip_weights: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    precision: str = "auto",
    quiet: bool = True,
    loaded_model: tuple[Any, str] | None = None,
    models: Models | Future | None = None,
    decoding: Decoding | None = None,
) -> SegmentationResult:
    """Segment the video at ``path`` into scenes.

    Args:
        detector: ``transnetv2`` (default) or ``content``; ``detector_threshold``
            overrides its default (0.5 / 27); ``min_shot_frames`` for ``content``.
        threshold: P(shot ends a scene) at or above which a scene ends.
        tau, split: test-time splitting of shots longer than ``tau`` s into 3.
        start, end: timecodes of a sub-range to process.
        model: a SceneModel safetensors file; None = the built-in demo model.
        clip_weights: local CLIP ViT-B/32 weights file, or ``"random"`` for the
            seeded random init; needed unless the model names its backbone (the
            demo model does).
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: of the shot detector and CLIP: ``auto`` (bf16 where the device computes
            it natively, see :mod:`sseg.segmentation.precision`), ``fp32``, ``bf16`` or ``fp16``
            (GPU).
        loaded_model: ``(SceneModel, name)`` from :func:`load_scene_model`, used instead
            of loading ``model`` again (many videos, one load).
        models: :func:`load_models`' result or :func:`load_models_in_background`'s Future
            (then ``model``, ``clip_weights``, ``device``, ``precision`` and
            ``loaded_model`` are not used); None loads them in the background, here.
        decoding: :func:`start_decoding`'s result for this ``path``, ``detector``,
            ``start`` and ``end``, when decoding began earlier (before models loaded).
    """
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"--threshold must be within [0, 1], got {threshold}")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size must be positive, got {batch_size}")
    if split and tau is not None and tau <= 0:
        raise InputError(f"--tau must be positive seconds, got {tau}")
    began = time.perf_counter()
    decoding = decoding or start_decoding(path, detector, start, end)
    try:
        if models is None:
            models = load_models_in_background(
                model=model, clip_weights=clip_weights, device=device, precision=precision,
                quiet=quiet, loaded_model=loaded_model,
            )  # fmt: skip
        return _segment(
            decoding, models, detector, detector_threshold, min_shot_frames, threshold,
            tau if split else None, batch_size, quiet, began,
        )  # fmt: skip
    finally:
        decoding.frames.close()


@dataclass
class Decoding:
    """A video being decoded for :func:`segment` (from :func:`start_decoding`)."""

    video: Any  # sseg.segmentation.video.Video
    bounds: dict[str, Any]
    detector: str
    frames: Any  # sseg.segmentation.prefetch.Prefetched of sseg.segmentation.video.Frame


def start_decoding(
    path: str | Path,
    detector: str = "transnetv2",
    start: str | float | int | None = None,
    end: str | float | int | None = None,
) -> Decoding:
    """Open ``path`` and start decoding it for :func:`segment` in a background thread.

    Needs no torch: call it first and load the models meanwhile (``sseg segment`` does, for
    its first video). Raises what :func:`sseg.segmentation.video.open_video` raises.
    """
    from .shot_detect import DETECTORS
    from .shot_detect import start_decoding as _start

    if detector not in DETECTORS:
        raise InputError(f"unknown shot detector {detector!r} (choose from {', '.join(DETECTORS)})")
    video = open_video(path)
    bounds = range_bounds(video.info, start, end)
    frames = _start(video, detector, keyframes=True, **bounds)
    return Decoding(video, bounds, detector, frames)


def _segment(
    decoding: Decoding,
    models: Models | Future,
    detector: str,
    detector_threshold: float | None,
    min_shot_frames: int,
    threshold: float,
    tau: float | None,
    batch_size: int | None,
    quiet: bool,
    began: float,
) -> SegmentationResult:
    from .keyframe_collector import KeyframeCollector
    from .keyframe_features import encode_collected_keyframes
    from .scenes import group_scenes
    from .shot_detect import detect_shots as _detect

    if decoding.detector != detector:
        raise InputError(
            f"decoding was started for detector {decoding.detector!r}, not {detector!r}"
        )
    video, bounds = decoding.video, decoding.bounds
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    device, precision = "cpu", "fp32"  # the content detector needs neither
    if detector != "content":  # TransNetV2 needs torch and the device first (not CLIP)
        device, precision = _device_and_precision(models)
    # One decoding pass: the keyframes of each shot the detector has settled are encoded
    # (CLIP in a worker thread) while it goes on; see sseg.segmentation.keyframe_collector.
    feed = _EncoderFeed(models, batch_size, KEYFRAMES)
    collector = KeyframeCollector(KEYFRAMES, on_keyframes=feed)
    try:
        detection = _detect(
            video,
            detector=detector,
            threshold=detector_threshold,
            min_shot_frames=min_shot_frames,
            device=device,
            quiet=quiet,
            precision=precision,
            keyframes=collector,
            decoded=decoding.frames,
            **bounds,
        )
        encoding = feed.encoding_when_ready()
    except BaseException:
        with contextlib.suppress(Exception):  # the detection error is the one to report
            feed.close()
        raise
    models = feed.models
    timings["load_models"] = models.load_seconds
    shots = detection.shots
    info = video.info
    if video.end_time is not None and video.decoded_frames:
        # Exact frame count and duration (stream timestamps) from the full decode.
        info = replace(info, frame_count=shots[-1].end_frame, duration=video.end_time)
    timings["shot_detection"] = time.perf_counter() - tick

    tick = time.perf_counter()
    feats, thumbnails = encode_collected_keyframes(encoding, collector, video, shots, quiet)
    timings["keyframes_and_encoding"] = time.perf_counter() - tick

    tick = time.perf_counter()
    probs, intra = _infer(
        models.scene_model, shots, feats, info, threshold, tau, models.device, quiet,
        detection.frame_at,
    )  # fmt: skip
    timings["inference"] = time.perf_counter() - tick

    scenes = group_scenes(shots, probs, threshold)
    timings["total"] = time.perf_counter() - began
    return SegmentationResult(
        video=info,
        shots=shots,
        probabilities=probs,
        threshold=threshold,
        scenes=scenes,
        intra_shot_boundaries=intra,
        timings=timings,
        detector=detector,
        model=models.model_name,
        skipped_frames=detection.skipped_frames,
        keyframes=thumbnails,
    )


def _ready(models: Models | Future) -> Models:
    return models.result() if isinstance(models, Future) else models


def _device_and_precision(models: Models | Future) -> tuple[str, str]:
    """``(device, precision)``, waiting only until they are known when still loading."""
    early = getattr(models, "device", None)
    if isinstance(early, Future):
        return early.result()  # raises the loading error, if loading failed before
    models = _ready(models)
    return models.device, models.precision


class _EncoderFeed:
    """KeyframeCollector callback: settled keyframes go to CLIP (a worker thread), with
    each shot's middle one kept as a thumbnail. While the models are still loading
    (a Future), the keyframes wait here; a loading error is raised at the next call."""

    def __init__(self, models: Models | Future, batch_size: int | None, k: int):
        self.models = models
        self.batch_size = batch_size
        self.k = k
        self.encoding = None
        self.waiting: list[tuple[int, int, np.ndarray]] = []

    def __call__(self, items: list[tuple[int, int, np.ndarray]]) -> None:
        self.waiting.extend(items)
        if isinstance(self.models, Future):
            if not self.models.done():
                return
            self.models = self.models.result()  # raises the loading error, if any
        self._feed()

    def encoding_when_ready(self):
        """Wait for the models, encode what waited, return the KeyframeEncoding."""
        self.models = _ready(self.models)
        self._feed()
        return self.encoding

    def close(self) -> None:
        if self.encoding is not None:
            self.encoding.close()

    def _feed(self) -> None:
        from .keyframe_features import KeyframeEncoding

        if self.encoding is None:
            models = self.models
            batch = self.batch_size or (
                GPU_BATCH if models.device.startswith("cuda") else CPU_BATCH
            )
            self.encoding = KeyframeEncoding(
                models.backbone, models.preprocess, models.device, batch, models.precision,
                background=True,
            )  # fmt: skip
        for index, slot, rgb in self.waiting:
            self.encoding.add(index, rgb, thumbnail=slot == self.k // 2)
        self.waiting.clear()


def _infer(
    scene_model,
    shots: list[Shot],
    feats,
    info: VideoInfo,
    threshold: float,
    tau: float | None,
    device: str,
    quiet: bool,
    frame_at=None,
) -> tuple[np.ndarray, list[IntraShotBoundary]]:
    """Boundary probabilities per shot, with test-time splitting of long shots."""
    from ..evaluation.splitting import split_long_shots
    from ..shots import ShotSequence

    seq = ShotSequence(
        video_id=Path(info.path).stem,
        starts=[s.start_time for s in shots],
        ends=[s.end_time for s in shots],
        fps=info.fps,
    )
    plan = split_long_shots(seq, feats, tau=tau, n=3)
    with _progress(len(plan.origin), "inference", quiet) as bar:
        sub = scene_model.predict(plan.keyframes.to(device)).cpu().numpy()
        bar.update(len(sub))
    probs = plan.merge(sub).astype(np.float64)
    intra = [
        IntraShotBoundary(shot, t, frame_at(t) if frame_at else to_frame(t, info.fps), p)
        for shot, t, p in plan.intra_shot_boundaries(sub, threshold)
    ]
    return probs, intra
