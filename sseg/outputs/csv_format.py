"""CSV in PySceneDetect's ``list-scenes`` column style.

As in PySceneDetect, ``Start Frame`` is 1-based and ``End Frame`` is the
1-based number of the scene's last frame; times are the scene's start and
(exclusive) end in seconds.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from ..timecode import format_timecode

SUFFIX = ".scenes.csv"
COLUMNS = (
    "Scene Number",
    "Start Frame",
    "Start Timecode",
    "Start Time (seconds)",
    "End Frame",
    "End Timecode",
    "End Time (seconds)",
    "Length (frames)",
    "Length (timecode)",
    "Length (seconds)",
)


def render(result: Any) -> str:
    """CSV text with a header row and one row per scene."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for scene in result.scenes:
        writer.writerow(
            [
                scene.index + 1,
                scene.start_frame + 1,
                format_timecode(scene.start_time),
                f"{scene.start_time:.3f}",
                scene.end_frame,
                format_timecode(scene.end_time),
                f"{scene.end_time:.3f}",
                scene.num_frames,
                format_timecode(scene.duration),
                f"{scene.duration:.3f}",
            ]
        )
    return out.getvalue()
