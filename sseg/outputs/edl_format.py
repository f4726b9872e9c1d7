"""CMX 3600 edit decision list: one cut event per scene, non-drop-frame timecodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..segmentation.timecode import smpte_at

SUFFIX = ".edl"


def render(result: Any) -> str:
    """EDL text; record timecodes lay the scenes end to end from 00:00:00:00."""
    fps = result.video.fps
    name = Path(result.video.path).name
    lines = [f"TITLE: {Path(name).stem[:70]}", "FCM: NON-DROP FRAME", ""]
    record = 0.0
    for scene in result.scenes:
        length = scene.duration  # stream times: right for variable frame rate too
        lines.append(
            f"{scene.index + 1:03d}  AX       V     C        "
            f"{smpte_at(scene.start_time, fps)} {smpte_at(scene.end_time, fps)} "
            f"{smpte_at(record, fps)} {smpte_at(record + length, fps)}"
        )
        lines.append(f"* FROM CLIP NAME: {name}")
        lines.append(f"* COMMENT: SCENE {scene.index + 1}")
        lines.append("")
        record += length
    return "\n".join(lines)
