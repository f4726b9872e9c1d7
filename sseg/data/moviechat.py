"""MovieChat-SSeg: scene boundaries of MovieChat-1K clips, in the generic JSON-lines format.

MovieChat-1K ships each clip as ``videos/<id>.mp4`` with an annotation file
``gt/<id>.json`` (test set; ``jsons/<id>.json`` in the training set) whose
``"info"`` object holds ``"video_path"`` (``"<id>.mp4"``), ``"fps"`` and
``"num_frame"``. Scene-boundary annotations of these clips (MovieChat-SSeg) are
read from one JSON-lines shot file (:mod:`sseg.data.jsonl`) whose ``"video"``
is the clip id, the file name of ``info.video_path`` without its extension::

    {"video": "1", "start": 0.0, "end": 3.2, "label": 0, "fps": 24}

:func:`load_moviechat_sseg` loads that file; given the MovieChat-1K annotation
folder it also checks every clip against its ``info``: the clip must exist, a
shot-file ``fps`` must agree with ``info.fps`` (which fills it in when absent),
and no shot may end after the clip (``num_frame / fps``, half a frame of slack).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..shots import ShotSequence
from .jsonl import load_jsonl


def _clip_info(path: Path) -> tuple[str, float, int]:
    """``(clip id, fps, num_frame)`` from one MovieChat-1K annotation file."""
    try:
        info = json.loads(path.read_text(encoding="utf-8")).get("info")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise InputError(f"unreadable MovieChat-1K annotation ({exc})", path) from None
    if not isinstance(info, dict) or not isinstance(info.get("video_path"), str):
        raise InputError("expected an 'info' object with a 'video_path'", path)
    fps, frames = info.get("fps"), info.get("num_frame")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
        raise InputError(f"'info.fps' must be a positive number, got {fps!r}", path)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames <= 0:
        raise InputError(f"'info.num_frame' must be a positive integer, got {frames!r}", path)
    return Path(info["video_path"]).stem, float(fps), frames


def read_clip_infos(folder: str | Path) -> dict[str, tuple[float, int, Path]]:
    """Clip id -> ``(fps, num_frame, annotation path)`` for a MovieChat-1K ``gt/`` folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("MovieChat-1K annotation folder not found", folder)
    out: dict[str, tuple[float, int, Path]] = {}
    for path in sorted(folder.glob("*.json")):
        clip, fps, frames = _clip_info(path)
        if clip in out:
            raise InputError(f"clip {clip!r} is also annotated in {out[clip][2].name}", path)
        out[clip] = (fps, frames, path)
    if not out:
        raise InputError("no MovieChat-1K annotation files (*.json)", folder)
    return out


def load_moviechat_sseg(
    path: str | Path, clip_info: str | Path | None = None
) -> list[ShotSequence]:
    """Labelled clips of a MovieChat-SSeg JSON-lines file, checked against ``clip_info``."""
    path = Path(path)
    sequences = load_jsonl(path)
    unlabelled = [s.video_id for s in sequences if s.labels is None]
    if unlabelled:
        raise InputError(f"clip {unlabelled[0]!r} has no scene-boundary labels", path)
    if clip_info is None:
        return sequences
    infos = read_clip_infos(clip_info)
    for seq in sequences:
        if seq.video_id not in infos:
            raise InputError(f"clip {seq.video_id!r} is not in MovieChat-1K {clip_info}", path)
        fps, frames, info_path = infos[seq.video_id]
        if seq.fps is not None and abs(seq.fps - fps) > 1e-3:
            problem = f"clip {seq.video_id!r}: fps {seq.fps:g} here but {fps:g} in {info_path}"
            raise InputError(problem, path)
        seq.fps = fps
        duration = frames / fps
        if float(seq.ends[-1]) > duration + 0.5 / fps:
            raise InputError(
                f"clip {seq.video_id!r}: last shot ends at {float(seq.ends[-1]):.3f} s, after "
                f"the clip's {duration:.3f} s ({frames} frames at {fps:g} fps, {info_path})",
                path,
            )
    return sequences
