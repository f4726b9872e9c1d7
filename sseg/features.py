"""Sharded, memory-mappable store of cached frozen-backbone keyframe features.

Layout of a store directory::

    index.json                  format, K, D, shards and per-video entries (written last)
    shard-00000.keyframes.npy   (rows, K, D) float16, opened with np.load(mmap_mode="r")
    shard-00000.times.npy       (rows, 2) float64: start, end seconds of each shot
    shard-00000.labels.npy      (rows,) int8: 1 ends a scene, 0 not, -100 unknown/absent

A shard holds whole videos, one after another; ``index.json`` maps each video id to
``(shard, offset, count)`` plus its genres, fps and whether it has labels. Every
file is written to a temp file and renamed (:mod:`sseg.atomic`); ``index.json`` is
replaced only after all files of a new shard are in place, so a store killed
mid-write still opens and simply lacks the shard that was being written. The
videos of that shard are extracted again on resume.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, atomic_write_text
from .errors import InputError
from .shots import ShotSequence

FORMAT = "sseg.features.v1"
INDEX = "index.json"
UNKNOWN_LABEL = -100


@dataclass
class VideoFeatures:
    """Cached features of one video.

    ``keyframes`` is a read-only float16 memmap view (N, K, D) into its shard.
    """

    video_id: str
    keyframes: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    genres: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None
    fps: float | None = None

    def __len__(self) -> int:
        return int(self.keyframes.shape[0])

    @property
    def durations(self) -> np.ndarray:
        """Shot durations in seconds, at least 1 ms."""
        return np.maximum(self.ends - self.starts, 1e-3)

    def to_shot_sequence(self) -> ShotSequence:
        """The shot timings, labels and genres as a :class:`ShotSequence`."""
        return ShotSequence(
            self.video_id, self.starts, self.ends, self.labels, list(self.genres), self.fps
        )


def _shard_files(index: int) -> dict[str, str]:
    stem = f"shard-{index:05d}"
    return {
        "keyframes": f"{stem}.keyframes.npy",
        "times": f"{stem}.times.npy",
        "labels": f"{stem}.labels.npy",
    }


def _read_index(root: Path) -> dict[str, Any]:
    path = root / INDEX
    if not root.is_dir():
        raise InputError("feature store not found (no such directory)", root)
    if not path.is_file():
        raise InputError(f"not a feature store ({INDEX} is missing)", root)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"feature store index is corrupt ({exc})", path) from exc
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise InputError(f"not an sseg feature store index (expected format {FORMAT})", path)
    for key in ("shards", "videos", "keyframes", "dim"):
        if key not in index:
            raise InputError(f"feature store index lacks key {key!r}", path)
    return index


class FeatureStore:
    """Read-only view of a feature store written by :class:`FeatureStoreWriter`."""

    def __init__(self, path: str | Path):
        self.root = Path(path)
        self._index = _read_index(self.root)
        self._videos: dict[str, dict[str, Any]] = self._index["videos"]
        self._shards: list[dict[str, Any]] = self._index["shards"]
        self._open: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @property
    def video_ids(self) -> list[str]:
        """Video ids in the order they were added."""
        return list(self._videos)

    @property
    def keyframes_per_shot(self) -> int | None:
        """K, the keyframes per shot (None for an empty store)."""
        return self._index["keyframes"]

    @property
    def dim(self) -> int | None:
        """D, the feature dimension (None for an empty store)."""
        return self._index["dim"]

    @property
    def meta(self) -> dict[str, Any]:
        """Free-form metadata recorded by the writer (e.g. backbone name)."""
        return dict(self._index.get("meta", {}))

    def __len__(self) -> int:
        return len(self._videos)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._videos

    def __iter__(self) -> Iterator[str]:
        return iter(self.video_ids)

    def num_shots(self, video_id: str) -> int:
        """Number of shots of ``video_id`` (from the index, no shard is opened)."""
        return int(self._entry(video_id)["count"])

    def genres(self, video_id: str) -> list[str]:
        """Genres of ``video_id`` (from the index)."""
        return list(self._entry(video_id).get("genres", []))

    def _entry(self, video_id: str) -> dict[str, Any]:
        try:
            return self._videos[video_id]
        except KeyError:
            raise InputError(f"video {video_id!r} is not in the feature store", self.root) from None

    def _shard(self, number: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if number not in self._open:
            if not 0 <= number < len(self._shards):
                raise InputError(f"index refers to missing shard {number}", self.root / INDEX)
            info = self._shards[number]
            rows = int(info["rows"])
            arrays = []
            for kind, expected in (
                ("keyframes", (rows, self.keyframes_per_shot, self.dim)),
                ("times", (rows, 2)),
                ("labels", (rows,)),
            ):
                path = self.root / info[kind]
                try:
                    array = np.load(path, mmap_mode="r", allow_pickle=False)
                except FileNotFoundError:
                    raise InputError("feature shard file is missing", path) from None
                except (ValueError, OSError) as exc:
                    raise InputError(f"feature shard file is corrupt ({exc})", path) from exc
                if tuple(array.shape) != expected:
                    raise InputError(
                        f"feature shard has shape {tuple(array.shape)}, index says {expected}",
                        path,
                    )
                arrays.append(array)
            self._open[number] = (arrays[0], arrays[1], arrays[2])
        return self._open[number]

    def load(self, video_id: str) -> VideoFeatures:
        """Features of one video; ``keyframes`` is a memmap (no copy)."""
        entry = self._entry(video_id)
        keyframes, times, labels = self._shard(int(entry["shard"]))
        lo, hi = int(entry["offset"]), int(entry["offset"]) + int(entry["count"])
        if hi > keyframes.shape[0]:
            raise InputError(f"index entry of {video_id!r} runs past its shard", self.root / INDEX)
        return VideoFeatures(
            video_id=video_id,
            keyframes=keyframes[lo:hi],
            starts=np.array(times[lo:hi, 0]),
            ends=np.array(times[lo:hi, 1]),
            genres=list(entry.get("genres", [])),
            labels=np.array(labels[lo:hi], dtype=np.int64) if entry.get("labels") else None,
            fps=entry.get("fps"),
        )


BACKBONE_KEYS = ("backbone", "backbone_weights")


def backbone_info(store: FeatureStore) -> dict[str, str]:
    """The store's backbone id and image-tower weights fingerprint (those it records), for
    the metadata of a model trained on its features."""
    meta = store.meta
    return {key: meta[key] for key in BACKBONE_KEYS if isinstance(meta.get(key), str)}


def check_same_backbone(model_meta: Mapping[str, Any], store: FeatureStore) -> None:
    """``InputError`` if a model was trained on features of other backbone weights.

    Only weights fingerprints are compared, and only when the model and the store both
    record one (synthetic stores and older models record none).
    """
    theirs, ours = model_meta.get("backbone_weights"), store.meta.get("backbone_weights")
    if theirs and ours and theirs != ours:
        raise InputError(
            f"the model was trained on features of backbone {model_meta.get('backbone')!r}, "
            f"this store holds features of {store.meta.get('backbone')!r} (other weights)",
            store.root,
        )


class FeatureStoreWriter:
    """Append videos to a feature store, one shard of about ``shard_size`` shots at a time.

    Opening an existing store resumes it: videos already indexed are reported by
    :meth:`has` and are not added again. Videos added since the last flushed shard
    live in memory until the shard fills or :meth:`close`; a crash loses only those.
    One writer per store at a time (an exclusive lock file enforces it).
    """

    def __init__(
        self, path: str | Path, shard_size: int = 50_000, meta: dict[str, Any] | None = None
    ):
        if shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        self.root = Path(path)
        self.shard_size = int(shard_size)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / ".lock", "w")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise InputError("feature store is open in another writer", self.root) from None
        if (self.root / INDEX).exists():
            self._index = _read_index(self.root)
            if meta:
                self._index.setdefault("meta", {}).update(meta)
        else:
            self._index = {
                "format": FORMAT,
                "keyframes": None,
                "dim": None,
                "shards": [],
                "videos": {},
                "meta": dict(meta or {}),
            }
        self._disk_meta = json.dumps(self._index.get("meta", {}), sort_keys=True)
        if (self.root / INDEX).exists() and meta:
            self._disk_meta = ""  # new metadata: publish at close even with no new shard
        for stale in self.root.glob(".shard-*.tmp"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        self._pending: list[tuple[str, dict[str, Any], np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self._closed = False

    @property
    def meta(self) -> dict[str, Any]:
        """Store metadata, live: changes are published with the next shard or at close."""
        return self._index.setdefault("meta", {})

    def has(self, video_id: str) -> bool:
        """True if ``video_id`` is stored (or pending in this writer)."""
        return video_id in self._index["videos"] or any(p[0] == video_id for p in self._pending)

    def __len__(self) -> int:
        return len(self._index["videos"]) + len(self._pending)

    def add(
        self,
        video_id: str,
        keyframes: np.ndarray | Any,
        starts: Sequence[float] | np.ndarray,
        ends: Sequence[float] | np.ndarray,
        genres: Sequence[str] | None = None,
        labels: Sequence[int] | np.ndarray | None = None,
        fps: float | None = None,
    ) -> None:
        """Queue one video: keyframes (N, K, D), shot start/end seconds (N,), optional labels.

        Raises:
            InputError: shapes, values or the id are unusable.
        """
        if self._closed:
            raise RuntimeError("writer is closed")
        if not isinstance(video_id, str) or not video_id or "\n" in video_id:
            raise InputError(f"invalid video id {video_id!r}", self.root)
        if self.has(video_id):
            raise InputError(f"video {video_id!r} is already in the feature store", self.root)
        if hasattr(keyframes, "detach"):  # torch tensor
            keyframes = keyframes.detach().cpu().float().numpy()
        kf = np.asarray(keyframes)
        if kf.ndim != 3 or kf.shape[0] == 0:
            raise InputError(
                f"{video_id}: keyframes must be (N>0, K, D), got shape {kf.shape}", self.root
            )
        with np.errstate(over="ignore", invalid="ignore"):
            kf16 = kf.astype(np.float16)
        if not np.isfinite(kf16).all():
            raise InputError(f"{video_id}: keyframe features are not finite in float16", self.root)
        n, k, d = kf16.shape
        if self._index["keyframes"] is None:
            self._index["keyframes"], self._index["dim"] = int(k), int(d)
        elif (k, d) != (self._index["keyframes"], self._index["dim"]):
            raise InputError(
                f"{video_id}: keyframes are (N, {k}, {d}) but the store holds "
                f"(N, {self._index['keyframes']}, {self._index['dim']})",
                self.root,
            )
        if np.shape(starts) != (n,) or np.shape(ends) != (n,):
            raise InputError(f"{video_id}: need one start and end time per shot ({n})", self.root)
        times = np.stack(
            [np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)], axis=1
        )
        if not np.isfinite(times).all() or (times[:, 1] < times[:, 0]).any():
            raise InputError(f"{video_id}: shot times must be finite with end >= start", self.root)
        if labels is None:
            lab = np.full(n, UNKNOWN_LABEL, dtype=np.int8)
        else:
            lab64 = np.asarray(labels, dtype=np.int64)
            if lab64.shape != (n,) or not np.isin(lab64, (0, 1, UNKNOWN_LABEL)).all():
                raise InputError(
                    f"{video_id}: labels must be {n} values in {{0, 1, {UNKNOWN_LABEL}}}", self.root
                )
            lab = lab64.astype(np.int8)
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise InputError(f"{video_id}: fps must be positive, got {fps}", self.root)
        entry = {
            "count": int(n),
            "genres": [str(g) for g in (genres or [])],
            "labels": labels is not None,
            "fps": None if fps is None else float(fps),
        }
        self._pending.append((video_id, entry, kf16, times, lab))
        self._pending_rows += n
        if self._pending_rows >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write pending videos as one new shard, then publish it in the index."""
        if not self._pending:
            return
        number = len(self._index["shards"])
        files = _shard_files(number)
        arrays = {
            "keyframes": np.concatenate([p[2] for p in self._pending]),
            "times": np.concatenate([p[3] for p in self._pending]),
            "labels": np.concatenate([p[4] for p in self._pending]),
        }
        for kind, array in arrays.items():
            with atomic_path(self.root / files[kind]) as tmp, open(tmp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        offset = 0
        index = json.loads(json.dumps(self._index))  # publish a copy; keep ours on failure
        for video_id, entry, kf, _, _ in self._pending:
            index["videos"][video_id] = {"shard": number, "offset": offset, **entry}
            offset += kf.shape[0]
        index["shards"].append({"rows": offset, **files})
        atomic_write_text(self.root / INDEX, json.dumps(index, indent=1))
        self._index = index
        self._disk_meta = json.dumps(index.get("meta", {}), sort_keys=True)
        self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        """Flush what is pending and release the store."""
        if self._closed:
            return
        try:
            self.flush()
            meta = json.dumps(self.meta, sort_keys=True)
            if not (self.root / INDEX).exists() or meta != self._disk_meta:
                atomic_write_text(self.root / INDEX, json.dumps(self._index, indent=1))
                self._disk_meta = meta
        finally:
            self._closed = True
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> FeatureStoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Also on an error: pending videos are complete, so they are kept.
        self.close()
