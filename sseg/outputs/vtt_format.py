"""WebVTT chapters: one cue per scene (use as <track kind="chapters">)."""

from __future__ import annotations

from typing import Any

from ..segmentation.timecode import format_timecode

SUFFIX = ".chapters.vtt"


def render(result: Any) -> str:
    """WebVTT text."""
    lines = ["WEBVTT", ""]
    for scene in result.scenes:
        lines.append(str(scene.index + 1))
        lines.append(f"{format_timecode(scene.start_time)} --> {format_timecode(scene.end_time)}")
        lines.append(f"Scene {scene.index + 1}")
        lines.append("")
    return "\n".join(lines)
