"""Video decoding with PyAV: stream timestamps, display rotation, tolerant frame iteration.

:func:`open_video` checks the file up front (missing, empty, not a video, no
video stream, no decodable first frame) and raises :class:`~sseg.errors.VideoError`
naming the file. :meth:`Video.frames` decodes frames in order, skipping packets
that fail to decode (counted in :attr:`Video.skipped_frames`, one warning per
video), so a damaged region in the middle of a file never aborts a run.

Times come from the stream's presentation timestamps (PTS), measured from the
container's start (the origin ffmpeg's ``-ss`` and players use), so they are
right for variable-frame-rate video. Frame indices count decoded frames in
presentation order; frames lost to decode errors are counted from the time gap.
A display matrix (phone "rotate" metadata) is applied to every frame, and
:class:`VideoInfo` gives the displayed size.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, VideoError


@dataclass(frozen=True)
class VideoInfo:
    """Basic properties of a video stream (frame_count is exact after a full decode).

    ``width``/``height`` are the displayed size (after rotation); ``rotation`` is the
    clockwise rotation in degrees that the display matrix applies (0, 90, 180, 270).
    ``fps`` is the average frame rate; times always come from the stream's timestamps.
    """

    path: str
    fps: float
    frame_count: int
    duration: float
    width: int
    height: int
    codec: str
    rotation: int = 0

    def to_dict(self) -> dict:
        """Plain-dict form for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Orientation:
    """Pixel transform of a display matrix: transpose first, then flip rows / columns."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @property
    def rotation(self) -> int:
        """Clockwise rotation in degrees (mirroring ignored)."""
        if not self.transpose:
            return 180 if self.flip_rows and self.flip_cols else 0
        return 90 if self.flip_cols else 270

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """Coded-orientation pixels (H, W, C) -> displayed orientation."""
        if self.transpose:
            rgb = rgb.transpose(1, 0, 2)
        if self.flip_rows:
            rgb = rgb[::-1]
        if self.flip_cols:
            rgb = rgb[:, ::-1]
        return np.ascontiguousarray(rgb) if self != UPRIGHT else rgb

    def coded_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """Displayed (width, height) -> (width, height) to scale the coded frame to."""
        return (size[1], size[0]) if self.transpose else size


UPRIGHT = Orientation()


class KeyframePicture:
    """A frame scaled to keyframe size in its own pixel format; RGB when asked.

    Keyframe pictures are scaled in the decoder's format (YUV 4:2:0 for most video: a
    third of the work of scaling straight to RGB, half the bytes to keep) and converted
    to RGB only by :meth:`rgb`, so a decoding pass that keeps every frame that may
    become a keyframe converts just the ones that do. Every keyframe path makes its
    pictures this way (:meth:`Video.frames` with ``keyframe=True``), so they are equal.
    """

    __slots__ = ("_scaled", "_orientation")

    def __init__(self, scaled, orientation: Orientation):
        self._scaled = scaled  # av.VideoFrame at keyframe size, coded orientation
        self._orientation = orientation

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(plane.buffer_size for plane in self._scaled.planes)

    def rgb(self) -> np.ndarray:
        """(h, w, 3) uint8 RGB in displayed orientation (the source's colour matrix, range)."""
        converter = _av().video.reformatter.VideoReformatter()  # no scaling: cheap to set up
        rgb = converter.reformat(self._scaled, format="rgb24", threads=1).to_ndarray()
        return self._orientation.apply(rgb)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: index, presentation time (s), RGB pixels, display duration (s).

    ``keyframe`` is the same picture at keyframe size when :meth:`Video.frames` was
    asked for one (the detector and the keyframes then share one decoding pass).
    """

    index: int
    time: float
    rgb: np.ndarray  # (H, W, 3) uint8, displayed orientation
    duration: float = 0.0
    keyframe: KeyframePicture | None = None


def orientation_from_matrix(matrix: np.ndarray) -> Orientation | None:
    """Orientation of a 3x3 FFmpeg display matrix (9 int32, 16.16 fixed point).

    A point (p, q) of the decoded frame is shown at (a p + c q, b p + d q) with
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]. Returns None when the
    matrix is not a multiple of 90 degrees (then frames are used as decoded).
    """
    m = np.asarray(matrix, dtype=np.float64).reshape(-1)
    if m.size != 9:
        return None
    a, b, c, d = (float(v) / 65536.0 for v in (m[0], m[1], m[3], m[4]))
    scale = max(math.hypot(a, b), math.hypot(c, d))
    if scale <= 0:
        return None
    a, b, c, d = (v / scale for v in (a, b, c, d))
    if abs(b) < 1e-3 and abs(c) < 1e-3 and abs(abs(a) - 1) < 1e-3 and abs(abs(d) - 1) < 1e-3:
        return Orientation(False, d < 0, a < 0)
    if abs(a) < 1e-3 and abs(d) < 1e-3 and abs(abs(b) - 1) < 1e-3 and abs(abs(c) - 1) < 1e-3:
        return Orientation(True, b < 0, c < 0)
    return None


def orientation_from_rotate_tag(degrees: float) -> Orientation:
    """Orientation of an old-style clockwise ``rotate`` metadata tag."""
    return {
        90: Orientation(True, False, True),
        180: Orientation(False, True, True),
        270: Orientation(True, True, False),
    }.get(int(round(degrees)) % 360, UPRIGHT)


def _frame_orientation(frame) -> Orientation | None:
    """Orientation from a decoded frame's display-matrix side data, if it has one."""
    for side in getattr(frame, "side_data", ()):
        if "DISPLAYMATRIX" in str(getattr(side, "type", "")):
            data = bytes(side)
            if len(data) >= 36:
                return orientation_from_matrix(np.frombuffer(data[:36], dtype="<i4"))
    return None


def _av():
    import av

    return av


class Video:
    """An opened video file; use :func:`open_video` to create one."""

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        orientation: Orientation = UPRIGHT,
        origin: float | None = None,
    ):
        self.path = path
        self.info = info
        self.orientation = orientation
        self.origin = origin  # stream time (s) that is time 0; None = first frame's time
        self.skipped_frames = 0
        self.decoded_frames = 0
        self.end_time: float | None = None  # time after the last frame, after a full decode

    def frames(
        self,
        size: tuple[int, int] | None = None,
        start_frame: int = 0,
        end_frame: int | None = None,
        wanted: set[int] | None = None,
        *,
        start_time: float | None = None,
        end_time: float | None = None,
        draft: bool = False,
        keyframe: bool = False,
        keyframe_size: tuple[int, int] | None = None,
    ) -> Iterator[Frame]:
        """Yield frames in order, as RGB arrays in displayed orientation.

        Args:
            size: displayed (width, height) to scale each frame to, or None for the
                native size.
            start_frame, end_frame: frame range to yield (end None = to the end).
            wanted: if given, only these frame indices are converted and yielded
                (others are still decoded, which is needed for inter-frame codecs).
            start_time, end_time: also restrict to frames whose time is in
                ``[start_time, end_time)`` seconds.
            draft: scale to ``size`` by area averaging (analysis frames: cheaper than
                the default bilinear filter for large reductions, and no aliasing).
            keyframe: scale to ``size`` as keyframe pictures are scaled (bilinear, in
                the decoder's pixel format, then RGB: :class:`KeyframePicture`).
            keyframe_size: also give each yielded frame at this displayed (width,
                height) as a :class:`KeyframePicture` in :attr:`Frame.keyframe`.

        Frames are always fully decoded (the in-loop filters run), so analysis frames,
        keyframes and features all see the same pictures.

        Packets that fail to decode are skipped with a warning and counted in
        :attr:`skipped_frames`. Raises VideoError if the file cannot be read at all
        or no frame could be decoded.
        """
        av = _av()
        fps = self.info.fps if self.info.fps > 0 else 25.0
        self.skipped_frames = 0
        self.decoded_frames = 0
        self.end_time = None
        coded = None if size is None else self.orientation.coded_size(size)
        keyframe_coded = (
            None if keyframe_size is None else self.orientation.coded_size(keyframe_size)
        )
        last_index, last_time, last_duration = -1, None, 1.0 / fps
        errors_since_frame = 0
        origin = self.origin
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot open video ({_reason(exc)})", self.path) from exc
        finished = False
        # One scaler per output for the whole pass: a per-frame one rebuilds its filters for
        # every frame, which for 720p -> 48x27 cost as much as the decoding itself. One
        # thread each: this runs beside the models already, slicing threads only contend.
        scaler = av.video.reformatter.VideoReformatter()
        keyframe_scaler = av.video.reformatter.VideoReformatter()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            time_base = float(stream.time_base) if stream.time_base else 0.0
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:
                    self._skip(f"demuxing stopped early ({_reason(exc)})")
                    break
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError:
                    self._skip("a packet could not be decoded")
                    errors_since_frame += 1
                    continue
                for frame in decoded:
                    raw = frame.time
                    if raw is not None and origin is None:
                        origin = raw
                    if raw is not None:
                        time = raw - origin
                    elif last_time is not None:
                        time = last_time + last_duration
                    else:
                        time = 0.0
                    index = last_index + 1
                    if errors_since_frame and last_time is not None and last_duration > 0:
                        # Frames lost to decode errors: count them from the time gap.
                        index += max(0, round((time - last_time) / last_duration) - 1)
                    errors_since_frame = 0
                    duration = frame.duration * time_base if frame.duration else 0.0
                    if duration <= 0:
                        duration = time - last_time if last_time is not None else 1.0 / fps
                        duration = duration if duration > 0 else 1.0 / fps
                    last_index, last_time, last_duration = index, time, duration
                    self.decoded_frames += 1
                    if (
                        index < start_frame
                        or (start_time is not None and time < start_time - 1e-6)
                        or (wanted is not None and index not in wanted)
                    ):
                        continue
                    if (end_frame is not None and index >= end_frame) or (
                        end_time is not None and time >= end_time - 1e-6
                    ):
                        return
                    try:
                        if keyframe:
                            rgb = self._keyframe_picture(scaler, frame, coded).rgb()
                        else:
                            rgb = self.orientation.apply(
                                scaler.reformat(
                                    frame, *(coded or (None, None)), format="rgb24",
                                    interpolation="AREA" if draft else None, threads=1,
                                ).to_ndarray()
                            )  # fmt: skip
                        picture = None
                        if keyframe_coded is not None:
                            picture = self._keyframe_picture(keyframe_scaler, frame, keyframe_coded)
                    except (av.error.FFmpegError, ValueError):
                        self._skip("a frame could not be converted")
                        continue
                    yield Frame(index, time, rgb, duration, picture)
            finished = True
        finally:
            container.close()
            if finished and last_time is not None:
                self.end_time = last_time + last_duration
            if self.skipped_frames:
                warnings.warn(
                    f"{self.path}: skipped {self.skipped_frames} unreadable packet(s)/frame(s)",
                    RuntimeWarning,
                    stacklevel=2,
                )
        if self.decoded_frames == 0:
            raise VideoError("no frame could be decoded (corrupt or empty video)", self.path)

    def _keyframe_picture(self, scaler, frame, coded: tuple[int, int] | None) -> KeyframePicture:
        """``frame`` scaled bilinearly to ``coded`` (None: as is) in its own pixel format."""
        scaled = scaler.reformat(
            frame, *(coded or (None, None)), format=frame.format.name, threads=1
        )
        return KeyframePicture(scaled, self.orientation)

    def _skip(self, _reason_text: str) -> None:
        self.skipped_frames += 1


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() if text else type(exc).__name__


def open_video(path: str | Path) -> Video:
    """Open ``path``, read its stream properties and decode its first frame.

    The first frame gives the display matrix (rotation) and the time origin.

    Raises:
        InputError: the path does not exist or is a directory (exit code 2).
        VideoError: empty file, not a video, no video stream, no decodable frame
            (exit code 3).
    """
    av = _av()
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a directory, not a video file", path)
    if path.stat().st_size == 0:
        raise VideoError("file is empty (0 bytes)", path)
    try:
        container = av.open(str(path))
    except av.error.InvalidDataError as exc:
        raise VideoError("not a video file or unsupported/corrupt container", path) from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"cannot open video ({_reason(exc)})", path) from exc
    try:
        if not container.streams.video:
            raise VideoError("contains no video stream", path)
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if not math.isfinite(fps) or fps <= 0:
            fps = 25.0  # unknown rate: a common default (times still come from the stream)
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        frame_count = int(stream.frames or round(duration * fps))
        if not duration and frame_count:
            duration = frame_count / fps
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        codec = str(ctx.name or "unknown")
        first = _first_frame(av, container, stream)
        start = container.start_time / 1_000_000 if container.start_time is not None else None
        origin = None
        orientation = UPRIGHT
        if first is not None:
            if first.time is not None:
                origin = first.time if start is None else min(start, first.time)
            width, height = width or first.width, height or first.height
            orientation = _frame_orientation(first) or UPRIGHT
        if orientation == UPRIGHT and "rotate" in stream.metadata:
            with contextlib.suppress(ValueError):
                orientation = orientation_from_rotate_tag(float(stream.metadata["rotate"]))
    finally:
        container.close()
    if width <= 0 or height <= 0:
        raise VideoError("video stream has no frame size (corrupt header?)", path)
    if orientation.transpose:
        width, height = height, width
    info = VideoInfo(
        str(path), fps, frame_count, duration, width, height, codec, orientation.rotation
    )
    return Video(path, info, orientation, origin)


def _first_frame(av, container, stream):
    """The first decodable frame of ``stream`` (None if none within the first packets)."""
    try:
        for count, packet in enumerate(container.demux(stream)):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                frames = []
            if frames:
                return frames[0]
            if count > 500:
                break
    except av.error.FFmpegError:
        pass
    return None
