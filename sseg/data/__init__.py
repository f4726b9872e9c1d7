"""Annotation loaders, one module per format; each returns :class:`sseg.shots.ShotSequence`.

* :mod:`sseg.data.movienet` - MovieNet-SSeg (``shot_movie318/``, ``label318/``, ``split318.json``)
* :mod:`sseg.data.bbc` - BBC Planet Earth (shots + scenes by frames, or annotator shot lists)
* :mod:`sseg.data.jsonl` - generic JSON lines, one object per shot
* :mod:`sseg.data.predictions` - per-shot probabilities (JSON lines) for scoring
"""

from __future__ import annotations

from .jsonl import load_jsonl
from .movienet import load_movienet, load_movienet_split

__all__ = ["load_jsonl", "load_movienet", "load_movienet_split"]
