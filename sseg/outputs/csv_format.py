"""Scene list CSV in PySceneDetect's ``list-scenes`` layout (as with ``--skip-cuts``).

As in PySceneDetect, ``Start Frame`` is 1-based and ``End Frame`` is the
1-based number of the scene's last frame; times are the scene's start and
(exclusive) end in seconds. :func:`render_spans` writes the same layout for any
list of spans (the shot list uses it too).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from ..segmentation.timecode import format_timecode

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


def render_spans(spans: Iterable[Any]) -> str:
    """CSV text with a header row and one numbered row per span.

    A span has ``start_frame``, ``end_frame`` (exclusive), ``start_time`` and ``end_time``.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for number, span in enumerate(spans, start=1):
        duration = span.end_time - span.start_time
        writer.writerow(
            [
                number,
                span.start_frame + 1,
                format_timecode(span.start_time),
                f"{span.start_time:.3f}",
                span.end_frame,
                format_timecode(span.end_time),
                f"{span.end_time:.3f}",
                span.end_frame - span.start_frame,
                format_timecode(duration),
                f"{duration:.3f}",
            ]
        )
    return out.getvalue()


def render(result: Any) -> str:
    """CSV text with a header row and one row per scene."""
    return render_spans(result.scenes)
