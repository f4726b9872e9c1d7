"""Labels for the videos of a feature store, from the store or from annotation files.

``load_labels(source, store)`` accepts:

* ``None`` - the labels stored with the features (videos without labels are skipped);
* a MovieNet-SSeg root (a folder with ``label318/``);
* a JSON-lines shot file (:mod:`sseg.data.jsonl`).

The annotation's shot count must equal the store's for each video; a mismatch
is an error rather than a silent misalignment. Labels are matched by shot index; a
JSON-lines file whose shot times disagree with the store's by more than half a frame
(50 ms if the frame rate is unknown) gives a :class:`ShotTimesWarning` (not an error:
a store of keyframe folders may hold placeholder times).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..shots import ShotSequence
from ..store.features import FeatureStore
from .bbc import annotations_folder
from .jsonl import load_jsonl
from .movienet import read_label_file


class ShotTimesWarning(UserWarning):
    """An annotation's shot times disagree with the feature store's."""


def check_times(seq: ShotSequence, store: FeatureStore, source: str | Path) -> None:
    """Warn (:class:`ShotTimesWarning`) when ``seq``'s shot times disagree with the store's."""
    video = store.load(seq.video_id)
    fps = video.fps or seq.fps
    tolerance = 0.5 / fps if fps else 0.05
    diff = np.maximum(np.abs(seq.starts - video.starts), np.abs(seq.ends - video.ends))
    off = np.flatnonzero(diff > tolerance + 1e-9)
    if off.size:
        i = int(off[0])
        warnings.warn(
            f"{source}: video {seq.video_id!r}: times of {off.size} shot(s) differ from the "
            f"store's, first shot {i}: [{seq.starts[i]:.3f}, {seq.ends[i]:.3f}) s here, "
            f"[{video.starts[i]:.3f}, {video.ends[i]:.3f}) s in the store; labels are "
            "matched by shot index (were the shots detected with other settings?)",
            ShotTimesWarning,
            stacklevel=3,
        )


def load_labels(
    source: str | Path | None, store: FeatureStore, video_ids: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Video id -> (N,) labels (1, 0, -100) for the wanted videos that have labels."""
    wanted = list(store.video_ids if video_ids is None else video_ids)
    for vid in wanted:
        if vid not in store:
            raise InputError(f"video {vid!r} is not in the feature store", store.root)
    out: dict[str, np.ndarray] = {}
    if source is None:
        for vid in wanted:
            labels = store.load(vid).labels
            if labels is not None:
                out[vid] = labels
        return out
    source = Path(source)
    if source.is_dir() and annotations_folder(source) is not None:
        raise InputError(
            "a BBC Planet Earth root holds one ground truth per annotator; only "
            "`sseg evaluate` scores it (per annotator); give a JSON-lines shot file here",
            source,
        )
    if source.is_dir():
        folder = source / "label318" if (source / "label318").is_dir() else source
        for vid in wanted:
            path = folder / f"{vid}.txt"
            if path.is_file():
                out[vid] = read_label_file(path, store.num_shots(vid))
        return out
    if not source.is_file():
        raise InputError("annotation file or folder not found", source)
    for seq in load_jsonl(source):
        if seq.video_id not in wanted or seq.labels is None:
            continue
        n = store.num_shots(seq.video_id)
        if len(seq) != n:
            problem = f"video {seq.video_id!r} has {len(seq)} shots here but {n} in the store"
            raise InputError(problem, source)
        check_times(seq, store, source)
        out[seq.video_id] = seq.labels
    return out


def select_videos(
    store: FeatureStore, split: str | Path | None = None, subset: str = "test"
) -> list[str]:
    """Store videos in a ``split318.json``-style subset (all store videos if no split)."""
    if split is None:
        return store.video_ids
    from .movienet import load_movienet_split

    splits = load_movienet_split(split)
    if subset not in splits:
        raise InputError(f"split has no subset {subset!r} (has {sorted(splits)})", split)
    return [vid for vid in splits[subset] if vid in store]
