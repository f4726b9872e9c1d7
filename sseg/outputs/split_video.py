"""``--split-video``: one MP4 per scene, cut with the ffmpeg program (re-encoded, frame exact)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..atomic import all_or_nothing, atomic_path
from ..errors import InputError, VideoError
from ..timecode import cut_window


def ffmpeg_path() -> str:
    """The ffmpeg executable, or a clear error if it is not installed."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise InputError(
            "--split-video needs the ffmpeg program, which is not on PATH "
            "(install it, e.g. 'apt-get install ffmpeg' or 'conda install ffmpeg')"
        )
    return path


def split_video(result: Any, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``{stem}-Scene-NNN.mp4`` per scene; all or nothing."""
    ffmpeg = ffmpeg_path()
    source = result.video.path
    with all_or_nothing() as written:
        for scene in result.scenes:
            target = Path(out_dir) / f"{stem}-Scene-{scene.index + 1:03d}.mp4"
            with atomic_path(target) as tmp:
                # Cut by stream time; keep each frame's own timestamp (no duplicated frames
                # for variable-frame-rate video).
                first, length = cut_window(scene.start_time, scene.end_time)
                command = [
                    ffmpeg, "-nostdin", "-loglevel", "error", "-y",
                    "-ss", first, "-i", source, "-t", length, "-fps_mode", "passthrough",
                    "-map", "0:v:0", "-map", "0:a?", "-c:v", "libx264", "-preset", "veryfast",
                    "-crf", "20", "-c:a", "aac", "-f", "mp4", str(tmp),
                ]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0 and "fps_mode" in done.stderr:  # ffmpeg before 5.1
                    command[command.index("-fps_mode")] = "-vsync"
                    done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    reason = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
                    problem = f"ffmpeg could not cut scene {scene.index + 1}: {reason}"
                    raise VideoError(problem, source)
            written.append(target)
    return written
