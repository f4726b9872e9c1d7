"""Pre-training input pipeline: which videos, their windows, a background prefetch.

* :func:`read_video_list`: videos chosen by a list file (one id per line) or a JSON
  split file (``splits.json:train`` picks the ``train`` list of a MovieNet-style split).
* :func:`load_videos`: open the chosen videos (memory maps, no copy); with
  ``skip_bad_videos`` a video whose shard is missing or corrupt, or whose features are
  not finite, is left out and counted instead of stopping the run.
* :class:`StoreWindowBatcher`: ``(step, rank) -> PretrainBatch`` gathered from the
  memmaps. Window ``g`` of the global stream gets anchors from a generator seeded by
  ``(seed, g)`` alone, so a batch does not depend on the world size: rank r of w at
  batch B sees exactly windows ``s*w*B + r*B ...`` with the anchors one process at batch
  ``w*B`` gives them. A window with non-finite features is an :class:`InputError`
  naming the video, its shard file and the shots.
* :class:`PrefetchingBatcher`: computes the next ``depth`` batches on a background
  thread while the current step trains (the gather is a pure function of the step, so
  prefetched batches are the same batches), pinned for a non-blocking device copy.
* :class:`Validator`: the loss on fixed held-out windows every ``every`` steps.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..store.features import FeatureStore, VideoFeatures
from .loop import DistInfo, Trainer, all_reduce_mean
from .sampling import WindowIndex, sample_anchors

FINITE_CHECK_ROWS = 4096  # shots per chunk when scanning a video for non-finite values


def read_video_list(spec: str) -> tuple[list[str], Path]:
    """Video ids from ``spec``: a text file (one id per line, ``#`` comments) or
    ``file.json:key`` (the list under ``key``). Returns the ids and the file."""
    path_text, _, key = spec.partition(".json:")
    if key:
        path = Path(path_text + ".json")
        if not path.is_file():
            raise InputError("video split file not found", path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"invalid JSON ({exc})", path) from exc
        if not isinstance(data, dict) or key not in data:
            keys = ", ".join(sorted(data)) if isinstance(data, dict) else "none"
            raise InputError(f"split {key!r} not in the file (keys: {keys})", path)
        ids = data[key]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InputError(f"split {key!r} must be a list of video ids", path)
        return list(ids), path
    path = Path(spec)
    if not path.is_file():
        raise InputError("video list file not found", path)
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    return ids, path


def select_videos(store: FeatureStore, spec: str | None, exclude: set[str] = frozenset()) -> list:
    """The store's videos named by ``spec`` (all but ``exclude`` when None), in the
    list's order; an id the store lacks is an error naming the list file."""
    if spec is None:
        return [v for v in store.video_ids if v not in exclude]
    ids, path = read_video_list(spec)
    if not ids:
        raise InputError("the video list is empty", path)
    missing = [v for v in ids if v not in store]
    if missing:
        raise InputError(
            f"{len(missing)} listed video(s) are not in the store {store.root} "
            f"(e.g. {missing[0]!r})",
            path,
        )
    return list(dict.fromkeys(ids))


def _first_non_finite(keyframes: np.ndarray) -> int | None:
    for lo in range(0, keyframes.shape[0], FINITE_CHECK_ROWS):
        chunk = np.asarray(keyframes[lo : lo + FINITE_CHECK_ROWS])
        bad = ~np.isfinite(chunk).reshape(chunk.shape[0], -1).all(axis=1)
        if bad.any():
            return lo + int(np.argmax(bad))
    return None


def load_videos(
    store: FeatureStore, ids: list[str], skip_bad_videos: bool = False
) -> tuple[list[VideoFeatures], list[tuple[str, str]]]:
    """Memory-map the videos; returns them and the ``(id, problem)`` of those skipped.

    Without ``skip_bad_videos`` a shard that cannot be opened raises (naming the video
    and the file) and values are checked only as windows are gathered; with it, every
    video is scanned once for non-finite features (reads the whole store).
    """
    videos, bad = [], []
    for video_id in ids:
        try:
            video = store.load(video_id)
        except InputError as exc:
            if not skip_bad_videos:
                raise
            bad.append((video_id, str(exc)))
            continue
        if skip_bad_videos:
            shot = _first_non_finite(video.keyframes)
            if shot is not None:
                bad.append((video_id, f"{video.shard_file}: non-finite features at shot {shot}"))
                continue
        videos.append(video)
    return videos, bad


class StoreWindowBatcher:
    """``(step, rank) -> PretrainBatch`` on the CPU (see the module docstring)."""

    def __init__(
        self,
        videos: list[VideoFeatures],
        window: int,
        anchors: int,
        mode: str,
        batch_size: int,
        seed: int,
        world_size: int = 1,
        stride: int = 1,
    ):
        if not videos:
            raise InputError("no videos to pre-train on")
        self.videos = videos
        self.durations = [v.durations for v in videos]
        self.window, self.anchors, self.mode = window, anchors, mode
        self.batch_size, self.seed, self.world_size = batch_size, seed, world_size
        self.index = WindowIndex([len(v) for v in videos], window, anchors, stride)
        self.k, self.dim = videos[0].keyframes.shape[1:]

    def positions(self, step: int, rank: int) -> range:
        """Global stream positions of the windows of ``rank`` at ``step``."""
        first = (step * self.world_size + rank) * self.batch_size
        return range(first, first + self.batch_size)

    def __call__(self, step: int, rank: int):
        from .pretrain import PretrainBatch

        positions = self.positions(step, rank)
        b, w = len(positions), self.window
        keyframes = np.zeros((b, w, self.k, self.dim), dtype=np.float16)
        valid = np.zeros((b, w), dtype=bool)
        lengths = np.zeros(b, dtype=np.int64)
        anchors = np.zeros((b, self.anchors), dtype=np.int64)
        for j, position in enumerate(positions):
            ref = self.index.item(self.seed, position)
            sl = slice(ref.start, ref.start + ref.length)
            video = self.videos[ref.video]
            keyframes[j, : ref.length] = video.keyframes[sl]
            if not np.isfinite(keyframes[j, : ref.length]).all():
                raise InputError(
                    f"video {video.video_id!r}: non-finite features in shots {ref.start}.."
                    f"{ref.start + ref.length - 1} (run `sseg store verify`, or set "
                    "skip_bad_videos)",
                    video.shard_file,
                )
            valid[j, : ref.length] = True
            lengths[j] = ref.length
            rng = np.random.default_rng([self.seed, position, 0xA4C])
            anchors[j] = sample_anchors(rng, self.durations[ref.video][sl], self.anchors, self.mode)
        return PretrainBatch(
            torch.from_numpy(keyframes),
            torch.from_numpy(valid),
            torch.from_numpy(lengths),
            torch.from_numpy(anchors),
        )


class PrefetchingBatcher:
    """Wraps a CPU batcher: batches of the next ``depth`` steps are gathered on a
    background thread; each call returns its step's batch on ``device``.

    ``wait_ms`` accumulates the time calls spent waiting for a batch (0 when the
    gather keeps up); ``misses`` counts calls whose batch was not prefetched (the
    first, and any out-of-order step).
    """

    def __init__(
        self, gather, device: torch.device | str, depth: int = 2, last_step: int | None = None
    ):
        self.gather = gather
        self.index = getattr(gather, "index", None)
        self.device = torch.device(device)
        self.depth = max(0, int(depth))
        self.last_step = last_step
        self.pin = self.device.type == "cuda"
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sseg-prefetch") if depth else None
        self._ahead: dict[tuple[int, int], Future] = {}
        self.wait_ms = 0.0
        self.misses = 0

    def _make(self, step: int, rank: int):
        batch = self.gather(step, rank)
        if self.pin:
            batch = type(batch)(*(t.pin_memory() for t in batch.__dict__.values()))
        return batch

    def __call__(self, step: int, rank: int):
        start = time.perf_counter()
        future = self._ahead.pop((step, rank), None)
        if future is None:
            self.misses += 1
            batch = self._make(step, rank)
        else:
            batch = future.result()
        self.wait_ms += (time.perf_counter() - start) * 1000
        for key in [k for k in self._ahead if k[0] < step]:
            self._ahead.pop(key).cancel()
        if self._pool is not None:
            for ahead in range(step + 1, step + 1 + self.depth):
                if self.last_step is not None and ahead >= self.last_step:
                    break
                if (ahead, rank) not in self._ahead:
                    self._ahead[(ahead, rank)] = self._pool.submit(self._make, ahead, rank)
        return batch.to(self.device)

    def close(self) -> None:
        """Stop the background thread (pending prefetches are dropped)."""
        if self._pool is not None:
            for future in self._ahead.values():
                future.cancel()
            self._ahead.clear()
            self._pool.shutdown(wait=True)
            self._pool = None


class Validator:
    """Held-out loss every ``every`` steps: ``batches`` fixed batches of windows of the
    validation videos, spread over the ranks, eval mode (no dropout), no gradient."""

    def __init__(
        self,
        objective: torch.nn.Module,
        gather: StoreWindowBatcher,
        trainer: Trainer,
        every: int,
        batches: int,
    ):
        self.objective, self.gather, self.trainer = objective, gather, trainer
        self.every, self.batches = every, batches

    def __call__(self, step: int, metrics: dict[str, float]) -> dict[str, float] | None:
        if not self.every or (step % self.every and step != self.trainer.config.steps):
            return None
        return self.evaluate()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss (and L_con, L_pb) over the validation batches."""
        trainer, dist = self.trainer, self.trainer.dist
        was_training = self.objective.training
        self.objective.eval()
        sums: dict[str, float] = {}
        autocast = (
            torch.autocast(trainer.device.type, dtype=trainer.amp_dtype)
            if trainer.amp_dtype is not None
            else contextlib.nullcontext()
        )
        try:
            for i in range(self.batches):
                batch = self.gather(i, dist.rank).to(trainer.device)
                with autocast:
                    loss, metrics = self.objective(batch)
                values = {"val_loss": float(loss), **{f"val_{k}": v for k, v in metrics.items()
                                                     if k in ("l_con", "l_pb")}}  # fmt: skip
                for key, value in values.items():
                    sums[key] = sums.get(key, 0.0) + value / self.batches
        finally:
            self.objective.train(was_training)
        names = sorted(sums)
        reduced = all_reduce_mean(torch.tensor([sums[k] for k in names], dtype=torch.float64), dist)
        return dict(zip(names, reduced.tolist(), strict=True))


class PretrainData:
    """Everything ``sseg pretrain`` reads: the chosen videos, the training batcher
    (prefetched), the optional validator, and what was skipped.

    ``video_ids`` (a caller's own selection, e.g. an ablation's) overrides ``cfg.videos``.
    """

    def __init__(
        self,
        cfg,
        store: FeatureStore,
        dist_info: DistInfo,
        device: torch.device,
        video_ids: list[str] | None = None,
    ):
        if store.unmerged_parts and dist_info.is_main:
            warnings.warn(
                f"{store.root}: {len(store.unmerged_parts)} rank part(s) of an extraction are "
                "not merged; their videos are not used (run `sseg store merge`)",
                stacklevel=2,
            )
        skip = bool(getattr(cfg, "skip_bad_videos", False))
        val_spec = getattr(cfg, "val_videos", None)
        val_ids = select_videos(store, val_spec) if val_spec else []
        if video_ids is not None:
            missing = [v for v in video_ids if v not in store]
            if missing:
                raise InputError(f"video {missing[0]!r} is not in the feature store", store.root)
            train_ids = [v for v in dict.fromkeys(video_ids) if v not in set(val_ids)]
        else:
            train_ids = select_videos(store, getattr(cfg, "videos", None), set(val_ids))
        if not train_ids:
            raise InputError("no videos selected for pre-training", store.root)
        overlap = set(train_ids) & set(val_ids)
        if overlap:
            raise InputError(
                f"{len(overlap)} video(s) are both training and validation videos "
                f"(e.g. {sorted(overlap)[0]!r})",
                val_spec,
            )
        videos, self.bad = load_videos(store, train_ids, skip)
        val_videos, val_bad = load_videos(store, val_ids, skip)
        self.bad += val_bad
        if self.bad and dist_info.is_main:
            video_id, problem = self.bad[0]
            warnings.warn(
                f"skipped {len(self.bad)} bad video(s), e.g. {video_id}: {problem}", stacklevel=2
            )
        self.videos = len(videos)
        gather = StoreWindowBatcher(
            videos, cfg.window, cfg.anchors, cfg.sampling, cfg.batch_size, cfg.seed,
            dist_info.world_size, cfg.stride,
        )  # fmt: skip
        self.batcher = PrefetchingBatcher(gather, device, getattr(cfg, "prefetch", 2), cfg.steps)
        self.val_gather = None
        if val_videos:
            self.val_gather = StoreWindowBatcher(
                val_videos, cfg.window, cfg.anchors, cfg.sampling, cfg.batch_size,
                cfg.seed + 1, dist_info.world_size, cfg.stride,
            )  # fmt: skip
        self.cfg = cfg
        self._log = None

    @property
    def index(self) -> WindowIndex:
        """The training windows."""
        return self.batcher.gather.index

    def attach(self, objective: torch.nn.Module, trainer: Trainer, out_dir: Path) -> None:
        """Hook validation and the per-step metrics log (``metrics.csv``) into ``trainer``."""
        from .train_log import MetricsLog

        if self.val_gather is not None and getattr(self.cfg, "val_every", 0):
            trainer.hooks.append(
                Validator(
                    objective,
                    self.val_gather,
                    trainer,
                    self.cfg.val_every,
                    getattr(self.cfg, "val_batches", 4),
                )  # fmt: skip
            )
        if trainer.dist.is_main:
            windows = self.cfg.batch_size * trainer.dist.world_size
            self._log = MetricsLog(out_dir, trainer.step, windows_per_step=windows)
            previous = trainer.on_step

            def on_step(step: int, metrics: dict[str, float]) -> None:
                self._log.write(step, metrics)
                if previous is not None:
                    previous(step, metrics)

            trainer.on_step = on_step

    def close(self) -> None:
        """Stop the prefetch thread and close the log."""
        self.batcher.close()
        if self._log is not None:
            self._log.close()

    def summary(self) -> dict[str, Any]:
        """Counts for the run summary."""
        return {"bad_videos": len(self.bad), "prefetch_misses": self.batcher.misses}
