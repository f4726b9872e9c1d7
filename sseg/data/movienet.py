"""MovieNet-SSeg annotations (``shot_movie318/``, ``label318/``, ``meta/split318.json``).

The public release unpacks to::

    scene318/label318/<imdb>.txt
    scene318/shot_movie318/<imdb>.txt
    scene318/meta/split318.json        (``scene318/split318.json`` is accepted too)
    scene318/meta/scene_movie318.json  (not read)

Conventions (documented in docs/evaluation.md):

* ``shot_movie318/<imdb>.txt``: one line per shot, ``start end [kf1 kf2 kf3]`` in
  frames at 24 fps. ``end`` is *inclusive* (the next shot starts at ``end + 1``),
  so shot ``i`` covers ``[start/24, (end+1)/24)`` seconds.
* ``label318/<imdb>.txt``: ``"<shot index> <label>"`` per line; label 1 or -1
  means the shot ends a scene, 0 means it does not. Line ``k`` must name shot
  ``k`` (indices consecutive from 0), otherwise the file is rejected. The usual
  file has N-1 lines for N shots. A file with N lines has its last line used
  (it labels the last shot). Shots without a line (the last shot, or a missing
  tail) get -100 (unknown), ignored by training and metrics. More lines than
  shots is an error.
* ``split318.json``: ``{"train": [...], "val": [...], "test": [...], "all": [...]}``.
* ``meta/<imdb>.json`` (optional, from MovieNet's per-movie metadata): its
  ``"genres"`` list becomes the sequence's genres.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..shots import ShotSequence
from ._text import parse_ints, read_lines

FPS = 24.0
UNKNOWN = -100
SPLITS = ("train", "val", "test", "all")


def read_shot_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(start_frames, end_frames_exclusive)`` from a ``shot_movie318`` file."""
    starts, ends = [], []
    for number, line in read_lines(path):
        fields = line.split()
        if len(fields) < 2:
            raise InputError(f"expected 'start end kf1 kf2 kf3', got {line!r}", path, number)
        start, end, *_ = parse_ints(fields, path, number, "integer frame numbers")
        if start < 0 or end < start:
            raise InputError(f"bad shot frames {start}..{end}", path, number)
        if starts and start < starts[-1]:
            problem = f"shot starts at frame {start}, before the previous shot"
            raise InputError(problem, path, number)
        starts.append(start)
        ends.append(end + 1)  # inclusive -> half-open
    if not starts:
        raise InputError("no shots in file", path)
    return np.asarray(starts, np.int64), np.asarray(ends, np.int64)


def read_label_file(path: str | Path, n_shots: int) -> np.ndarray:
    """(n_shots,) labels in {0, 1, -100} from a ``label318`` file (see module docstring)."""
    labels = np.full(n_shots, UNKNOWN, dtype=np.int64)
    for expected, (number, line) in enumerate(read_lines(path)):
        fields = line.split()
        if len(fields) != 2:
            raise InputError(f"expected '<shot index> <label>', got {line!r}", path, number)
        index, label = parse_ints(fields, path, number, "'<shot index> <label>' integers")
        if index != expected:
            raise InputError(
                f"shot index {index} out of sequence (expected {expected}); "
                "labels would be misaligned",
                path,
                number,
            )
        if index >= n_shots:
            problem = f"label for shot {index} but the video has {n_shots} shots"
            raise InputError(problem, path, number)
        if label not in (0, 1, -1):
            raise InputError(f"label must be 0, 1 or -1, got {label}", path, number)
        labels[index] = 1 if label != 0 else 0
    return labels


def _read_genres(path: Path) -> list[str]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable meta JSON ({exc})", path) from exc
    genres = meta.get("genres") if isinstance(meta, dict) else None
    if genres is None:
        return []
    if not isinstance(genres, list) or not all(isinstance(g, str) for g in genres):
        raise InputError("'genres' must be a list of strings", path)
    return list(genres)


def load_movienet(root: str | Path, imdb_id: str, fps: float = FPS) -> ShotSequence:
    """Shots (+ labels if ``label318/<imdb>.txt`` exists, + genres if ``meta/`` has them)."""
    root = Path(root)
    starts, ends = read_shot_file(root / "shot_movie318" / f"{imdb_id}.txt")
    label_path = root / "label318" / f"{imdb_id}.txt"
    labels = read_label_file(label_path, starts.size) if label_path.is_file() else None
    meta_path = root / "meta" / f"{imdb_id}.json"
    genres = _read_genres(meta_path) if meta_path.is_file() else []
    return ShotSequence(imdb_id, starts / fps, ends / fps, labels=labels, genres=genres, fps=fps)


def is_movienet_root(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding ``label318/``."""
    return (Path(path) / "label318").is_dir()


def labelled_videos(root: str | Path) -> list[str]:
    """Sorted ids of the videos with a ``label318/<imdb>.txt`` file."""
    return sorted(p.stem for p in (Path(root) / "label318").glob("*.txt"))


def find_split_file(folder: str | Path) -> Path:
    """``split318.json`` in ``folder`` or ``folder/meta`` (the release's place)."""
    folder = Path(folder)
    for candidate in (folder / "split318.json", folder / "meta" / "split318.json"):
        if candidate.is_file():
            return candidate
    raise InputError("no split318.json here or in meta/", folder)


def load_movienet_split(path: str | Path) -> dict[str, list[str]]:
    """``split318.json`` -> ``{"train": [...], "val": [...], "test": [...], "all": [...]}``.

    ``path`` may be the file, the MovieNet root or its ``meta/`` folder.
    """
    path = Path(path)
    if path.is_dir():
        path = find_split_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("split file not found", path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", path, exc.lineno) from exc
    if not isinstance(data, dict):
        raise InputError("expected a JSON object with split names as keys", path)
    out = {}
    for key, ids in data.items():
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InputError(f"split {key!r} must be a list of video id strings", path)
        out[key] = ids
    if "all" not in out:
        out["all"] = sorted({i for ids in out.values() for i in ids})
    return out
