"""Video decoding with PyAV: clear errors for bad files, tolerant frame iteration.

:func:`open_video` checks the file up front (missing, empty, not a video, no
video stream) and raises :class:`~sseg.errors.VideoError` naming the file.
:meth:`Video.frames` decodes frames in order, skipping packets that fail to
decode (counted in :attr:`Video.skipped_frames`, one warning per video), so a
damaged region in the middle of a file never aborts a run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, VideoError


@dataclass(frozen=True)
class VideoInfo:
    """Basic properties of a video stream (frame_count is exact after a full decode)."""

    path: str
    fps: float
    frame_count: int
    duration: float
    width: int
    height: int
    codec: str

    def to_dict(self) -> dict:
        """Plain-dict form for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the video, time in seconds and RGB pixels."""

    index: int
    time: float
    rgb: np.ndarray  # (H, W, 3) uint8


def _av():
    import av

    return av


class Video:
    """An opened video file; use :func:`open_video` to create one."""

    def __init__(self, path: Path, info: VideoInfo):
        self.path = path
        self.info = info
        self.skipped_frames = 0
        self.decoded_frames = 0

    def frames(
        self,
        size: tuple[int, int] | None = None,
        start_frame: int = 0,
        end_frame: int | None = None,
        wanted: set[int] | None = None,
    ) -> Iterator[Frame]:
        """Yield frames ``start_frame <= index < end_frame`` in order, as RGB arrays.

        Args:
            size: (width, height) to scale each frame to, or None for the native size.
            start_frame, end_frame: frame range to yield (end None = to the end).
            wanted: if given, only these frame indices are converted and yielded
                (others are still decoded, which is needed for inter-frame codecs).

        Packets that fail to decode are skipped with a warning and counted in
        :attr:`skipped_frames`. Raises VideoError if the file cannot be read at all
        or no frame could be decoded.
        """
        av = _av()
        fps = self.info.fps
        self.skipped_frames = 0
        self.decoded_frames = 0
        width, height = size if size is not None else (None, None)
        last_index = -1
        first_time: float | None = None
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot open video ({_reason(exc)})", self.path) from exc
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
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
                    continue
                for frame in decoded:
                    time = frame.time
                    if time is not None and first_time is None:
                        first_time = time
                    if time is not None and fps > 0:
                        index = max(last_index + 1, round((time - first_time) * fps))
                    else:
                        index = last_index + 1
                    last_index = index
                    self.decoded_frames += 1
                    if index < start_frame or (wanted is not None and index not in wanted):
                        continue
                    if end_frame is not None and index >= end_frame:
                        return
                    try:
                        if width is not None:
                            rgb = frame.to_ndarray(width=width, height=height, format="rgb24")
                        else:
                            rgb = frame.to_ndarray(format="rgb24")
                    except (av.error.FFmpegError, ValueError):
                        self._skip("a frame could not be converted")
                        continue
                    yield Frame(index, index / fps if fps > 0 else 0.0, rgb)
        finally:
            container.close()
            if self.skipped_frames:
                warnings.warn(
                    f"{self.path}: skipped {self.skipped_frames} unreadable packet(s)/frame(s)",
                    RuntimeWarning,
                    stacklevel=2,
                )
        if self.decoded_frames == 0:
            raise VideoError("no frame could be decoded (corrupt or empty video)", self.path)

    def _skip(self, _reason_text: str) -> None:
        self.skipped_frames += 1


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() if text else type(exc).__name__


def open_video(path: str | Path) -> Video:
    """Open ``path`` and read its stream properties.

    Raises:
        InputError: the path does not exist or is a directory (exit code 2).
        VideoError: empty file, not a video, no video stream (exit code 3).
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
            fps = 25.0  # unknown rate: a common default, times are then approximate
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        frame_count = int(stream.frames or round(duration * fps))
        if not duration and frame_count:
            duration = frame_count / fps
        ctx = stream.codec_context
        info = VideoInfo(
            path=str(path),
            fps=fps,
            frame_count=frame_count,
            duration=duration,
            width=int(ctx.width or 0),
            height=int(ctx.height or 0),
            codec=str(ctx.name or "unknown"),
        )
    finally:
        container.close()
    if info.width <= 0 or info.height <= 0:
        raise VideoError("video stream has no frame size (corrupt header?)", path)
    return Video(path, info)
