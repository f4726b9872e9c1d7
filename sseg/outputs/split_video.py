"""``--split-video``: one clip per scene, cut with the ffmpeg program.

Re-encoded by default (H.264/AAC, cuts on the exact frame), or with ``copy=True``
stream-copied (PySceneDetect's ``split-video --copy``: fast and lossless, but each
clip starts at the key frame at or before the scene's start). File names come from a
:mod:`~sseg.outputs.naming` template (default ``$VIDEO_NAME-Scene-$SCENE_NUMBER``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..atomic import all_or_nothing, atomic_path
from ..errors import InputError, VideoError
from ..segmentation.timecode import cut_window
from .naming import (
    DEFAULT_SPLIT_TEMPLATE,
    SCENE_VARIABLES,
    FileNameTemplate,
    parse_template,
    scene_values,
)

# container (file extension) -> ffmpeg muxer; temp files end in .tmp, so ffmpeg is told
MUXERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    ".ts": "mpegts",
    ".mts": "mpegts",
    ".m2ts": "mpegts",
    ".mpg": "mpeg",
    ".mpeg": "mpeg",
    ".flv": "flv",
    ".3gp": "3gp",
    ".ogv": "ogg",
    ".wmv": "asf",
    ".mxf": "mxf",
}
# containers that hold H.264 + AAC, for re-encoded clips
REENCODE_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv")
REENCODE_ARGS = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-c:a", "aac")
COPY_ARGS = ("-c", "copy", "-avoid_negative_ts", "make_zero")


def ffmpeg_path() -> str:
    """The ffmpeg executable, or a clear error if it is not installed."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise InputError(
            "--split-video needs the ffmpeg program, which is not on PATH "
            "(install it, e.g. 'apt-get install ffmpeg' or 'conda install ffmpeg')"
        )
    return path


def split_template(text: str | None, many_videos: bool = False) -> FileNameTemplate:
    """The checked ``--split-filename`` template."""
    return parse_template(
        text or DEFAULT_SPLIT_TEMPLATE,
        "--split-filename",
        SCENE_VARIABLES,
        unique_by=(("SCENE_NUMBER",), ("START_FRAME",), ("START_TIME",)),
        many_videos=many_videos,
    )


def clip_extension(template: FileNameTemplate, source: str | Path, copy: bool) -> str:
    """The clips' extension: the template's own, else the source's (copy) or ``.mp4``.

    Raises InputError when ffmpeg cannot write that container (or, re-encoding, when it
    cannot hold H.264/AAC), so the problem shows before any decoding.
    """
    suffix = Path(source).suffix.lower()
    extension = template.extension or (suffix if copy and suffix in MUXERS else ".mp4")
    if extension not in MUXERS:
        known = " ".join(sorted(MUXERS))
        raise InputError(f"--split-filename: unknown clip container {extension} (use {known})")
    if not copy and extension not in REENCODE_EXTENSIONS:
        raise InputError(
            f"--split-filename: re-encoded clips are H.264/AAC, which {extension} cannot hold; "
            f"use {' '.join(REENCODE_EXTENSIONS)}, or --copy to keep the original streams"
        )
    return extension


def clip_name(template: FileNameTemplate, extension: str, video_name: str, scene, total: int):
    """The file name of one scene's clip."""
    name = template.fill(**scene_values(video_name, scene, total))
    return name if template.extension else name + extension


def ffmpeg_command(
    ffmpeg: str, source: str | Path, scene, target: str | Path, extension: str, copy: bool
) -> list[str]:
    """The ffmpeg command line that writes ``scene`` of ``source`` to ``target``."""
    # Cut by stream time; keep each frame's own timestamp (no duplicated frames for
    # variable-frame-rate video; ffmpeg before 5.1 gets -vsync instead of -fps_mode).
    first, length = cut_window(scene.start_time, scene.end_time)
    return [
        ffmpeg, "-nostdin", "-loglevel", "error", "-y",
        "-ss", first, "-i", str(source), "-t", length, "-fps_mode", "passthrough",
        "-map", "0:v:0", "-map", "0:a?", "-sn",
        *(COPY_ARGS if copy else REENCODE_ARGS),
        "-f", MUXERS[extension], str(target),
    ]  # fmt: skip


def split_video(
    result: Any,
    out_dir: str | Path,
    stem: str,
    *,
    copy: bool = False,
    template: FileNameTemplate | None = None,
) -> list[Path]:
    """Write one clip per scene of ``result`` into ``out_dir``; all or nothing.

    ``stem`` is ``$VIDEO_NAME``. Returns the written paths in scene order.
    """
    ffmpeg = ffmpeg_path()
    source = result.video.path
    template = template or split_template(None)
    extension = clip_extension(template, source, copy)
    total = len(result.scenes)
    with all_or_nothing() as written:
        for scene in result.scenes:
            target = Path(out_dir) / clip_name(template, extension, stem, scene, total)
            with atomic_path(target) as tmp:
                command = ffmpeg_command(ffmpeg, source, scene, tmp, extension, copy)
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
