"""FFmpeg metadata chapters (``ffmpeg -i in.mp4 -i x.ffmetadata -map_metadata 1 ...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SUFFIX = ".ffmetadata"


def _escape(text: str) -> str:
    for char in "\\=;#\n":
        text = text.replace(char, "\\" + char)
    return text


def render(result: Any) -> str:
    """ffmetadata text with millisecond chapter times."""
    lines = [";FFMETADATA1", f"title={_escape(Path(result.video.path).stem)}", ""]
    for scene in result.scenes:
        lines += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={round(scene.start_time * 1000)}",
            f"END={round(scene.end_time * 1000)}",
            f"title=Scene {scene.index + 1}",
            "",
        ]
    return "\n".join(lines)
