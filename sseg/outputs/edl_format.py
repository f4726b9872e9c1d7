"""CMX 3600 edit decision list: one cut event per scene, non-drop-frame timecodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..timecode import format_smpte

SUFFIX = ".edl"


def render(result: Any) -> str:
    """EDL text; record timecodes lay the scenes end to end from 00:00:00:00."""
    fps = result.video.fps
    name = Path(result.video.path).name
    lines = [f"TITLE: {Path(name).stem[:70]}", "FCM: NON-DROP FRAME", ""]
    record = 0
    for scene in result.scenes:
        length = scene.num_frames
        lines.append(
            f"{scene.index + 1:03d}  AX       V     C        "
            f"{format_smpte(scene.start_frame, fps)} {format_smpte(scene.end_frame, fps)} "
            f"{format_smpte(record, fps)} {format_smpte(record + length, fps)}"
        )
        lines.append(f"* FROM CLIP NAME: {name}")
        lines.append(f"* COMMENT: SCENE {scene.index + 1}")
        lines.append("")
        record += length
    return "\n".join(lines)
