"""BBC Planet Earth annotations: the public release, and a scenes-by-frames layout.

The public release unpacks to::

    <root>/annotations/shots/<episode>.txt                    e.g. 01_From_Pole_to_Pole.txt
    <root>/annotations/scenes/annotator_<k>/<episode>.txt     k = 0..4

:func:`load_bbc_episode` reads one episode for every annotator; ``sseg evaluate``
takes ``<root>`` (or its ``annotations/`` folder) directly.

Conventions (documented in docs/evaluation.md):

* Shot file: one line per shot, ``start<TAB>end`` frame numbers (any whitespace
  accepted), ``end`` inclusive; times are ``start/fps`` .. ``(end+1)/fps`` with
  ``fps`` 25 by default (PAL broadcast).
* Scenes by frames: one line per scene, ``start<TAB>end`` frames, ``end``
  inclusive. The shot containing a scene's last frame is labelled 1 (the scene
  ends with that shot); a scene end inside a shot therefore rounds to the shot
  that contains it. A scene end outside every shot is an error.
* Annotator files: comma- (or whitespace-) separated indices of the shots that
  *start* a scene, one file per annotator. Scene start ``s > 0`` labels shot
  ``s - 1``. The released files end with ``N``, the number of shots, as an end
  marker (no scene starts there); ``N`` is accepted as the last value only.
  ``annotator="majority"`` keeps a boundary marked by more than half of the
  annotators; an integer picks that annotator's file.
* The last shot of an episode gets -100 (unknown), as in MovieNet: the end of
  the video is not a boundary to predict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..shots import ShotSequence
from ._text import parse_ints, read_lines

FPS = 25.0
UNKNOWN = -100


def _read_ranges(path: str | Path, what: str) -> tuple[np.ndarray, list[int]]:
    """(M, 2) inclusive ``start end`` frame pairs, in order, and their line numbers."""
    rows: list[tuple[int, int]] = []
    numbers: list[int] = []
    for number, line in read_lines(path):
        fields = line.split()
        if len(fields) != 2:
            raise InputError(
                f"expected '<start>\\t<end>' frames of a {what}, got {line!r}", path, number
            )
        start, end = parse_ints(fields, path, number, "integer frame numbers")
        if start < 0 or end < start:
            raise InputError(f"bad {what} frames {start}..{end}", path, number)
        if rows and start <= rows[-1][0]:
            raise InputError(
                f"{what} starts at frame {start}, not after the previous one", path, number
            )
        rows.append((start, end))
        numbers.append(number)
    if not rows:
        raise InputError(f"no {what}s in file", path)
    return np.asarray(rows, dtype=np.int64), numbers


def _sequence(shots: np.ndarray, labels: np.ndarray, video_id: str, fps: float) -> ShotSequence:
    labels[-1] = UNKNOWN
    return ShotSequence(
        video_id, shots[:, 0] / fps, (shots[:, 1] + 1) / fps, labels=labels, fps=fps
    )


def load_bbc_scenes_by_frames(
    shots_path: str | Path, scenes_path: str | Path, video_id: str, fps: float = FPS
) -> ShotSequence:
    """Shots and boundary labels from a shot file and a scenes-by-frames file."""
    shots, _ = _read_ranges(shots_path, "shot")
    labels = np.zeros(len(shots), dtype=np.int64)
    scenes, numbers = _read_ranges(scenes_path, "scene")
    for number, end in zip(numbers, scenes[:, 1].tolist(), strict=True):
        inside = np.nonzero((shots[:, 0] <= end) & (end <= shots[:, 1]))[0]
        if inside.size == 0:
            raise InputError(f"scene ends at frame {end}, inside no shot", scenes_path, number)
        labels[inside[0]] = 1
    return _sequence(shots, labels, video_id, fps)


def read_annotator_file(path: str | Path, n_shots: int) -> np.ndarray:
    """(n_shots,) 0/1 labels from one annotator's scene-start shot indices.

    A final value equal to ``n_shots`` is the release's end marker and is skipped.
    """
    starts: list[tuple[int, int]] = []
    for number, line in read_lines(path):
        fields = [f for f in re.split(r"[,\s]+", line) if f]
        values = parse_ints(fields, path, number, "comma-separated shot indices")
        starts.extend((number, value) for value in values)
    if starts and starts[-1][1] == n_shots:
        starts.pop()  # end marker
    labels = np.zeros(n_shots, dtype=np.int64)
    for number, start in starts:
        if not 0 <= start < n_shots:
            problem = f"scene starts at shot {start}, outside 0..{n_shots - 1}"
            if start == n_shots:
                problem += f" ({n_shots}, the end marker, may only be the last value)"
            raise InputError(problem, path, number)
        if start > 0:
            labels[start - 1] = 1
    return labels


def load_bbc_annotators(
    shots_path: str | Path,
    annotator_paths: Sequence[str | Path],
    video_id: str,
    annotator: int | str = "majority",
    fps: float = FPS,
) -> ShotSequence:
    """Shots and labels from per-annotator scene-start files (one annotator or majority)."""
    if not annotator_paths:
        raise InputError("no annotator files given", shots_path)
    shots, _ = _read_ranges(shots_path, "shot")
    votes = np.stack([read_annotator_file(p, len(shots)) for p in annotator_paths])
    if annotator == "majority":
        labels = (votes.sum(axis=0) * 2 > len(annotator_paths)).astype(np.int64)
    elif isinstance(annotator, int) and 0 <= annotator < len(annotator_paths):
        labels = votes[annotator].copy()
    else:
        raise ValueError(
            f"annotator must be 'majority' or 0..{len(annotator_paths) - 1}, got {annotator!r}"
        )
    return _sequence(shots, labels, video_id, fps)


def annotations_folder(root: str | Path) -> Path | None:
    """The folder holding ``shots/`` and ``scenes/``: ``root/annotations`` or ``root``."""
    root = Path(root)
    for folder in (root / "annotations", root):
        if (folder / "shots").is_dir() and (folder / "scenes").is_dir():
            return folder
    return None


def _natural_key(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _require_folder(root: str | Path) -> Path:
    folder = annotations_folder(root)
    if folder is None:
        raise InputError("not a BBC Planet Earth root (no annotations/shots and scenes)", root)
    return folder


def bbc_episodes(root: str | Path) -> list[str]:
    """Episode ids (shot file names without ``.txt``), in natural order."""
    folder = _require_folder(root)
    return sorted((p.stem for p in (folder / "shots").glob("*.txt")), key=_natural_key)


def bbc_annotators(root: str | Path) -> list[str]:
    """Annotator folder names under ``scenes/`` (``annotator_0`` ...), in natural order."""
    folder = _require_folder(root)
    names = [p.name for p in (folder / "scenes").iterdir() if p.is_dir()]
    if not names:
        raise InputError("no annotator folders", folder / "scenes")
    return sorted(names, key=_natural_key)


def load_bbc_episode(root: str | Path, episode: str, fps: float = FPS) -> dict[str, ShotSequence]:
    """Annotator name -> shots and that annotator's labels for one episode of the release."""
    folder = _require_folder(root)
    shots, _ = _read_ranges(folder / "shots" / f"{episode}.txt", "shot")
    out = {}
    for annotator in bbc_annotators(folder):
        path = folder / "scenes" / annotator / f"{episode}.txt"
        if not path.is_file():
            raise InputError(f"annotator {annotator!r} has no file for episode {episode!r}", path)
        out[annotator] = _sequence(shots, read_annotator_file(path, len(shots)), episode, fps)
    return out
