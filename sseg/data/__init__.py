"""Annotation loaders, one module per format; each returns :class:`sseg.shots.ShotSequence`.

* :mod:`sseg.data.movienet` - MovieNet-SSeg (``shot_movie318/``, ``label318/``, ``split318.json``)
* :mod:`sseg.data.bbc` - BBC Planet Earth (the release's annotator files, or scenes by frames)
* :mod:`sseg.data.jsonl` - generic JSON lines, one object per shot
* :mod:`sseg.data.moviechat` - MovieChat-SSeg: JSON lines checked against MovieChat-1K clips
* :mod:`sseg.data.predictions` - per-shot probabilities (JSON lines) for scoring
* :mod:`sseg.data.benchmark` - any of the above recognised by its layout, for ``sseg evaluate``
* :mod:`sseg.data.annotations` - labels for the videos of a feature store
"""

from __future__ import annotations

from .jsonl import load_jsonl
from .movienet import load_movienet, load_movienet_split

__all__ = ["load_jsonl", "load_movienet", "load_movienet_split"]
