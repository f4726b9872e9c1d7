"""Generic shot annotations as JSON lines, one object per shot.

Each line: ``{"video": "id", "start": 12.5, "end": 14.0, "label": 1, "genres": ["Drama"]}``

* ``start``/``end`` in seconds, half-open; ``end > start``; a video's shots must
  be in time order and on consecutive lines (a video may not reappear later).
* ``label`` (optional): 1 = the shot ends a scene, 0 = it does not, -100 or
  null = unknown. A video where no shot has a label gets ``labels=None``;
  otherwise shots without a label are unknown (-100).
* ``genres`` (optional): list of strings; every shot that gives it must agree.
* ``fps`` (optional): frame rate of the video, same on every shot that gives it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..atomic import atomic_open
from ..errors import InputError
from ..shots import ShotSequence
from ._jsonlines import number_field, read_objects, video_field

UNKNOWN = -100


class _Video:
    def __init__(self, video_id: str):
        self.video_id = video_id
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.labels: list[int | None] = []
        self.genres: list[str] | None = None
        self.fps: float | None = None

    def sequence(self) -> ShotSequence:
        labels = None
        if any(label is not None for label in self.labels):
            labels = np.array([UNKNOWN if v is None else v for v in self.labels], dtype=np.int64)
        return ShotSequence(
            self.video_id, self.starts, self.ends, labels, list(self.genres or []), self.fps
        )


def _label(obj: dict, path: Path, line: int) -> int | None:
    value = obj.get("label")
    if value is None or value == UNKNOWN:
        return None
    if isinstance(value, bool) or value not in (0, 1):
        raise InputError(f"'label' must be 0, 1, -100 or null, got {value!r}", path, line)
    return int(value)


def load_jsonl(path: str | Path) -> list[ShotSequence]:
    """All videos of a JSON-lines shot file, in file order."""
    path = Path(path)
    videos: dict[str, _Video] = {}
    current: _Video | None = None
    for line, obj in read_objects(path):
        vid = video_field(obj, path, line)
        if current is None or current.video_id != vid:
            if vid in videos:
                raise InputError(f"shots of video {vid!r} are not on consecutive lines", path, line)
            current = videos[vid] = _Video(vid)
        start = number_field(obj, "start", path, line)
        end = number_field(obj, "end", path, line)
        if start < 0 or end <= start:
            raise InputError(f"shot must have 0 <= start < end, got {start}..{end}", path, line)
        if current.starts and start < current.starts[-1]:
            raise InputError(f"shot starts at {start} s, before the previous shot", path, line)
        genres = obj.get("genres")
        if genres is not None:
            if not isinstance(genres, list) or not all(isinstance(g, str) for g in genres):
                raise InputError("'genres' must be a list of strings", path, line)
            if current.genres is not None and genres != current.genres:
                raise InputError(f"genres differ from earlier shots of {vid!r}", path, line)
            current.genres = genres
        if obj.get("fps") is not None:
            fps = number_field(obj, "fps", path, line)
            if fps <= 0 or (current.fps is not None and fps != current.fps):
                raise InputError(f"bad or inconsistent fps {fps}", path, line)
            current.fps = fps
        current.starts.append(start)
        current.ends.append(end)
        current.labels.append(_label(obj, path, line))
    return [video.sequence() for video in videos.values()]


def write_jsonl(path: str | Path, sequences: Iterable[ShotSequence]) -> None:
    """Write sequences in the format :func:`load_jsonl` reads (atomically)."""
    with atomic_open(path) as handle:
        for seq in sequences:
            for i in range(len(seq)):
                obj: dict = {"video": seq.video_id, "start": float(seq.starts[i])}
                obj["end"] = float(seq.ends[i])
                if seq.labels is not None:
                    obj["label"] = int(seq.labels[i])
                if seq.genres:
                    obj["genres"] = list(seq.genres)
                if seq.fps is not None:
                    obj["fps"] = float(seq.fps)
                handle.write(json.dumps(obj) + "\n")
