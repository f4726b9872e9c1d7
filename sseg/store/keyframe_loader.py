"""Decode, shot detection and keyframe preprocessing for ``sseg extract``, in DataLoader
worker processes, so the backbone's batches stay full while the next videos decode.

:class:`KeyframeChunks` is an ``IterableDataset`` over the videos to extract: worker
``w`` of ``n`` takes videos ``w, w + n, ...`` and yields, per video, its CLIP inputs in
chunks of at most ``batch_size`` images (chunks never span two videos, so the features of
a video do not depend on the number of workers, ranks or what else is extracted).
A video that cannot be read yields one :class:`Chunk` carrying the error instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import SsegError


@dataclass
class Chunk:
    """CLIP inputs of images ``[first, first + len(images))`` of one video, or its error.

    ``item``: the video's index in the dataset; ``info`` (first chunk only): ``count``
    (shots) and, for video files, ``starts``/``ends``/``fps`` from the shot detector.
    """

    item: int
    first: int = 0
    last: bool = True
    images: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error: SsegError | None = None

    def pin_memory(self) -> Chunk:
        """Page-locked images (DataLoader ``pin_memory=True`` calls this)."""
        if self.images is not None:
            self.images = self.images.pin_memory()
        return self


class KeyframeChunks(IterableDataset):
    """CLIP-ready keyframe chunks of videos and keyframe folders (see module docstring).

    Args:
        sources: :class:`sseg.store.extract.Source` items, in the order results are wanted.
        grids: keyframe image paths ``[shot][j]`` of each keyframe-folder source, by id.
        preprocess: open_clip's image transform (None: the pure-torch equivalent).
        batch_size: images per chunk.
        keyframes: K, keyframes per shot of video files.
        detect: options of :func:`sseg.segmentation.pipeline.detect_shots` (detector, device, ...).
    """

    def __init__(
        self,
        sources: list,
        grids: dict[str, list[list[Path]]],
        preprocess: Callable | None,
        batch_size: int,
        keyframes: int = 3,
        detect: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.sources = sources
        self.grids = grids
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.keyframes = keyframes
        self.detect = detect or {}

    def _images(self, source) -> tuple[Callable[[int, int], list[np.ndarray]], int, dict]:
        """(images(lo, hi), image count, info) of one source; decodes a video file."""
        from .extract import read_image

        if source.kind == "video":
            from ..segmentation.keyframes import keyframes_for_shots
            from ..segmentation.pipeline import detect_shots

            shots, fps = detect_shots(source.path, **self.detect)
            frames = keyframes_for_shots(source.path, shots, k=self.keyframes)
            flat = frames.reshape(-1, *frames.shape[2:])
            info = {
                "count": len(shots),
                "starts": np.array([s.start_time for s in shots], dtype=np.float64),
                "ends": np.array([s.end_time for s in shots], dtype=np.float64),
                "fps": fps,
            }
            return (lambda lo, hi: list(flat[lo:hi])), len(flat), info
        grid = self.grids[source.video_id]
        paths = [p for row in grid for p in row]
        return (
            (lambda lo, hi: [read_image(p) for p in paths[lo:hi]]),
            len(paths),
            {"count": len(grid)},
        )

    def __iter__(self):
        from ..modeling.encoder import preprocess_frames

        worker = get_worker_info()
        start, step = (0, 1) if worker is None else (worker.id, worker.num_workers)
        for item in range(start, len(self.sources), step):
            try:
                images, total, info = self._images(self.sources[item])
                chunks = max(1, math.ceil(total / self.batch_size))
                for c in range(chunks):
                    lo = c * self.batch_size
                    x = preprocess_frames(images(lo, lo + self.batch_size), self.preprocess)
                    yield Chunk(item, lo, c == chunks - 1, x, info if c == 0 else {})
            except SsegError as exc:
                yield Chunk(item, error=exc)


def chunk_loader(dataset: KeyframeChunks, workers: int, pin_memory: bool) -> DataLoader:
    """A DataLoader over ``dataset``: ``workers`` processes, 4 chunks prefetched each."""
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
    )
