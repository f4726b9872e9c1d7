"""Timecode parsing and formatting.

Accepted forms (as in PySceneDetect): a frame number ``"123"``, seconds
``"12.5s"`` or ``"12.5"`` (a number with a decimal point), and
``"HH:MM:SS[.mmm]"`` (also ``"MM:SS[.mmm]"``).
"""

from __future__ import annotations

import math
import re

from ..errors import InputError

_HMS = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def parse_timecode(text: str | int | float, fps: float) -> float:
    """Parse ``text`` into seconds; a bare integer is a frame number at ``fps``.

    Raises:
        InputError: the text is not a valid, non-negative timecode.
    """
    if isinstance(text, bool):
        raise InputError(f"invalid timecode {text!r}")
    if isinstance(text, int):
        return _check(text / fps, text)
    if isinstance(text, float):
        return _check(text, text)
    value = str(text).strip()
    try:
        if value.endswith("s") and not value.endswith("ms"):
            return _check(float(value[:-1]), text)
        if re.fullmatch(r"\d+", value):
            return _check(int(value) / fps, text)
        if re.fullmatch(r"\d*\.\d+|\d+\.\d*", value):
            return _check(float(value), text)
    except ValueError:
        pass
    match = _HMS.match(value)
    if match:
        hours = int(match.group(1) or 0)
        minutes = int(match.group(2))
        seconds = float(match.group(3))
        if minutes >= 60 or seconds >= 60:
            raise InputError(f"invalid timecode {text!r}: minutes and seconds must be < 60")
        return _check(hours * 3600 + minutes * 60 + seconds, text)
    raise InputError(
        f"invalid timecode {text!r}: use frames (123), seconds (12.5s) or HH:MM:SS.mmm"
    )


def _check(seconds: float, original: object) -> float:
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"invalid timecode {original!r}: must be a non-negative time")
    return float(seconds)


def to_frame(seconds: float, fps: float) -> int:
    """The frame index shown at ``seconds`` (frame i covers [i/fps, (i+1)/fps))."""
    return int(math.floor(seconds * fps + 1e-6))


def format_timecode(seconds: float) -> str:
    """Seconds -> ``HH:MM:SS.mmm`` (rounded to the millisecond)."""
    millis = max(0, int(round(seconds * 1000)))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def smpte_at(seconds: float, fps: float) -> str:
    """Time in seconds -> non-drop-frame SMPTE ``HH:MM:SS:FF`` at the nominal rate ``fps``."""
    base = max(1, int(round(fps))) if fps > 0 else 25
    return _smpte(max(0, int(round(seconds * base + 1e-9))), base)


def cut_window(start: float, end: float) -> tuple[str, str]:
    """``(-ss, -t)`` values for ffmpeg that keep exactly the frames shown in ``[start, end)``.

    ffmpeg keeps frames with ``ss <= time < ss + t``; both ends move 0.5 ms earlier
    so a frame whose timestamp is exactly ``start`` is kept and one exactly at
    ``end`` is not, whatever the rounding of the decimal strings.
    """
    first = max(start - 0.0005, 0.0)
    return f"{first:.6f}", f"{max(end - 0.0005 - first, 0.0):.6f}"


def format_smpte(frame: int, fps: float) -> str:
    """Frame index -> non-drop-frame SMPTE ``HH:MM:SS:FF`` (for EDL)."""
    base = max(1, int(round(fps)))
    frames = max(0, int(round(frame * base / fps))) if fps > 0 else max(0, frame)
    return _smpte(frames, base)


def _smpte(frames: int, base: int) -> str:
    hours, rest = divmod(frames, 3600 * base)
    minutes, rest = divmod(rest, 60 * base)
    secs, ff = divmod(rest, base)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}:{ff:02d}"
