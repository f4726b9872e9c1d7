"""Ground truth of a benchmark, whatever its release layout, for ``sseg evaluate``.

:func:`open_benchmark` recognises

* a MovieNet-SSeg root (``label318/`` + ``shot_movie318/``; :mod:`sseg.data.movienet`),
* a BBC Planet Earth root (``annotations/shots`` + ``annotations/scenes/annotator_*``;
  :mod:`sseg.data.bbc`), one ground truth per annotator,
* a JSON-lines shot file (:mod:`sseg.data.jsonl`), e.g. MovieChat-SSeg
  (:mod:`sseg.data.moviechat`, checked against MovieChat-1K clip info if given),

and :func:`store_benchmark` the labels stored in a feature store. Each gives the
selected video ids and, per video, one :class:`~sseg.shots.ShotSequence` per
annotator (``"all"`` where there is a single ground truth). Videos are loaded on
demand, so a 318-movie root costs only the videos scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..shots import ShotSequence
from ..store.features import FeatureStore
from . import bbc, movienet
from .jsonl import load_jsonl
from .moviechat import load_moviechat_sseg

SINGLE = "all"


@dataclass
class Benchmark:
    """Selected videos of an annotation source and a loader of their ground truth."""

    kind: str  # "movienet", "bbc", "jsonl" or "store"
    source: Path
    annotators: list[str]
    video_ids: list[str]
    loader: Callable[[str], dict[str, ShotSequence]]

    def load(self, video_id: str) -> dict[str, ShotSequence]:
        """Annotator -> shots and labels of one selected video."""
        return self.loader(video_id)


def _select(ids: list[str], split: str | Path | None, subset: str) -> list[str]:
    if split is None:
        return ids
    splits = movienet.load_movienet_split(split)
    if subset not in splits:
        raise InputError(f"split has no subset {subset!r} (has {sorted(splits)})", split)
    wanted = set(splits[subset])
    return [vid for vid in ids if vid in wanted]


def _check_movienet(root: Path) -> None:
    if not (root / "shot_movie318").is_dir():
        raise InputError("MovieNet root has label318/ but no shot_movie318/", root)


def open_benchmark(
    source: str | Path,
    split: str | Path | None = None,
    subset: str = "test",
    clip_info: str | Path | None = None,
) -> Benchmark:
    """The benchmark at ``source`` (see module docstring), restricted to ``split[subset]``."""
    source = Path(source)
    if clip_info is not None and not source.is_file():
        raise InputError("clip info applies to a MovieChat-SSeg JSON-lines file only", source)
    if source.is_dir() and movienet.is_movienet_root(source):
        _check_movienet(source)
        ids = _select(movienet.labelled_videos(source), split, subset)
        return Benchmark(
            "movienet", source, [SINGLE], ids, lambda v: {SINGLE: movienet.load_movienet(source, v)}
        )
    if source.is_dir() and bbc.annotations_folder(source) is not None:
        ids = _select(bbc.bbc_episodes(source), split, subset)
        annotators = bbc.bbc_annotators(source)
        return Benchmark("bbc", source, annotators, ids, lambda v: bbc.load_bbc_episode(source, v))
    if source.is_dir():
        raise InputError(
            "not an annotation root: expected label318/ + shot_movie318/ (MovieNet-SSeg) "
            "or annotations/shots + annotations/scenes (BBC Planet Earth)",
            source,
        )
    if not source.is_file():
        raise InputError("annotation file or folder not found", source)
    if clip_info is not None:
        loaded = load_moviechat_sseg(source, clip_info)
    else:
        loaded = [s for s in load_jsonl(source) if s.labels is not None]
    sequences = {s.video_id: s for s in loaded}
    ids = _select(list(sequences), split, subset)
    return Benchmark("jsonl", source, [SINGLE], ids, lambda v: {SINGLE: sequences[v]})


def store_benchmark(store: FeatureStore, video_ids: list[str]) -> Benchmark:
    """The labels stored with the features of ``video_ids`` (unlabelled videos left out)."""
    labelled = [vid for vid in video_ids if store.load(vid).labels is not None]
    return Benchmark(
        "store",
        Path(store.root),
        [SINGLE],
        labelled,
        lambda v: {SINGLE: store.load(v).to_shot_sequence()},
    )
