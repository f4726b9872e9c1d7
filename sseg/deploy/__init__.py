"""Deployment of the scene model: export, batched inference, streaming.

* :mod:`sseg.deploy.windows`: the scene model as a function of keyframe windows
  (:class:`WindowScorer`), the unit that is exported, batched and streamed.
* :mod:`sseg.deploy.export`: ``torch.export`` programs and AOTInductor packages of it.
* :mod:`sseg.deploy.batch`: :func:`predict_many`, many videos' windows packed into
  large batches.
* :mod:`sseg.deploy.streaming`: :class:`StreamingSegmenter`, boundary decisions for
  shots as they arrive, with a fixed lookahead of ``window // 2`` shots.

User guide: docs/deploy.md.
"""

from __future__ import annotations
