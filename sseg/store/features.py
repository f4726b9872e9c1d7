"""Sharded, memory-mappable store of cached frozen-backbone keyframe features.

Layout of a store directory::

    index.json                  format, K, D, shards and per-video entries (written last)
    shard-00000.keyframes.npy   (rows, K, D) float16, opened with np.load(mmap_mode="r")
    shard-00000.times.npy       (rows, 2) float64: start, end seconds of each shot
    shard-00000.labels.npy      (rows,) int8: 1 ends a scene, 0 not, -100 unknown/absent
    index.rank-00001.json       a rank's part of the index (distributed extraction, unmerged)
    shard-r00001-00000.*.npy    that rank's shards

A shard holds whole videos, one after another; ``index.json`` maps each video id to
``(shard, offset, count)`` plus its genres, fps and whether it has labels, and records
each shard file's size and SHA-256. Every file is written to a temp file and renamed
(:mod:`sseg.atomic`); an index is replaced only after all files of a new shard are in
place, so a store killed mid-write still opens and simply lacks the shard that was
being written. The videos of that shard are extracted again on resume.

Writers come in two kinds. A *direct* writer (one process) publishes each shard in
``index.json``. A *rank* writer (rank r of a ``torchrun`` extraction) publishes its
shards in its own part ``index.rank-RRRRR.json``; the last rank to close merges every
part into ``index.json`` (:func:`sseg.store.store_tools.merge_parts`, also ``sseg store
merge``). Locks (``flock`` on ``.lock``): a direct writer or a merge holds it
exclusively, rank writers share it and each holds ``.lock.rank-RRRRR`` exclusively.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..atomic import atomic_path, atomic_write_text
from ..errors import InputError
from ..shots import ShotSequence

FORMAT = "sseg.features.v1"
INDEX = "index.json"
LOCK = ".lock"
UNKNOWN_LABEL = -100
SHARD_KINDS = ("keyframes", "times", "labels")


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
    shard_file: str | None = None  # the keyframes file, for error messages

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


def shard_stem(number: int, rank: int | None = None) -> str:
    """File stem of shard ``number`` of a direct writer, or of rank ``rank``."""
    return f"shard-{number:05d}" if rank is None else f"shard-r{rank:05d}-{number:05d}"


def part_name(rank: int) -> str:
    """File name of rank ``rank``'s part of the index."""
    return f"index.rank-{rank:05d}.json"


def empty_index(meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An index with no shards and no videos."""
    return {
        "format": FORMAT,
        "keyframes": None,
        "dim": None,
        "shards": [],
        "videos": {},
        "meta": dict(meta or {}),
    }


def read_index(path: Path) -> dict[str, Any]:
    """Parse and check an index file (``index.json`` or a rank's part)."""
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


def _read_index(root: Path) -> dict[str, Any]:
    path = root / INDEX
    if not root.is_dir():
        raise InputError("feature store not found (no such directory)", root)
    if not path.is_file():
        if part_paths(root):
            raise InputError(
                f"{INDEX} is missing but rank parts exist: run `sseg store merge {root}`", root
            )
        raise InputError(f"not a feature store ({INDEX} is missing)", root)
    return read_index(path)


def part_paths(root: Path) -> list[Path]:
    """Unmerged rank parts of the index, by rank."""
    return sorted(root.glob("index.rank-*.json"))


def open_shard_file(path: Path, expected: tuple[int, ...], size: int | None) -> np.ndarray:
    """Memory-map one shard file after the cheap checks: present, size, shape."""
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        raise InputError("feature shard file is missing", path) from None
    if size is not None and actual != size:
        raise InputError(
            f"feature shard file has {actual} bytes, the index says {size} "
            "(truncated or replaced; run `sseg store verify`)",
            path,
        )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"feature shard file is corrupt ({exc})", path) from exc
    if tuple(array.shape) != expected:
        raise InputError(
            f"feature shard has shape {tuple(array.shape)}, index says {expected}", path
        )
    return array


def shard_shapes(info: Mapping[str, Any], k: int, d: int) -> dict[str, tuple[int, ...]]:
    """Expected array shape of each file of a shard."""
    rows = int(info["rows"])
    return {"keyframes": (rows, k, d), "times": (rows, 2), "labels": (rows,)}


class FeatureStore:
    """Read-only view of a feature store written by :class:`FeatureStoreWriter`.

    Opening reads ``index.json`` only; a shard is memory-mapped on first use, after
    checking each file's size against the index (a truncated or replaced file is an
    :class:`InputError` naming the file). Full checksums:
    :func:`sseg.store.store_tools.verify_store`.
    """

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

    @property
    def unmerged_parts(self) -> list[Path]:
        """Rank parts not yet merged into ``index.json`` (their videos are not visible)."""
        return part_paths(self.root)

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

    def shard_file(self, video_id: str) -> Path:
        """The keyframes file holding ``video_id``."""
        return self.root / self._shards[int(self._entry(video_id)["shard"])]["keyframes"]

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
            shapes = shard_shapes(info, self.keyframes_per_shot, self.dim)
            sizes = info.get("bytes", {})
            arrays = [
                open_shard_file(self.root / info[kind], shapes[kind], sizes.get(kind))
                for kind in SHARD_KINDS
            ]
            self._open[number] = (arrays[0], arrays[1], arrays[2])
        return self._open[number]

    def load(self, video_id: str) -> VideoFeatures:
        """Features of one video; ``keyframes`` is a memmap (no copy).

        Raises:
            InputError: naming the video and the shard file, if the shard is unusable.
        """
        entry = self._entry(video_id)
        try:
            keyframes, times, labels = self._shard(int(entry["shard"]))
        except InputError as exc:
            raise InputError(f"video {video_id!r}: {exc.problem}", exc.path) from None
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
            shard_file=str(self.shard_file(video_id)),
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


def _lock(path: Path, mode: int, problem: str) -> IO[str]:
    handle = open(path, "a")  # noqa: SIM115 - held by the caller
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise InputError(problem, path.parent) from None
    return handle


def _unlock(handle: IO[str] | None) -> None:
    if handle is None or handle.closed:
        return
    with contextlib.suppress(OSError):
        fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


@contextlib.contextmanager
def exclusive_store_lock(root: Path) -> Iterator[None]:
    """Hold the store's lock exclusively (no writer may be active)."""
    handle = _lock(
        root / LOCK, fcntl.LOCK_EX, "feature store is open in another writer (try again later)"
    )
    try:
        yield
    finally:
        _unlock(handle)


class FeatureStoreWriter:
    """Append videos to a feature store, one shard of about ``shard_size`` shots at a time.

    Opening an existing store resumes it: videos already stored (indexed, or in any
    rank's part) are reported by :meth:`has` and are not added again. Videos added since
    the last flushed shard live in memory until the shard fills, ``flush_seconds`` pass
    since the first of them, or :meth:`close`; a crash loses only those.

    ``rank=None``: a direct writer (one per store, publishes to ``index.json``; it first
    merges parts left by a killed distributed extraction). ``rank=r``: rank r of a
    distributed extraction (publishes to its own part; :meth:`close` merges all parts
    when no other rank writer is open, see :attr:`merged`).
    """

    def __init__(
        self,
        path: str | Path,
        shard_size: int = 50_000,
        meta: dict[str, Any] | None = None,
        rank: int | None = None,
        flush_seconds: float | None = None,
    ):
        if shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        if rank is not None and rank < 0:
            raise ValueError("rank must be >= 0")
        self.root = Path(path)
        self.shard_size = int(shard_size)
        self.rank = rank
        self.flush_seconds = flush_seconds
        self.merged = False
        self.root.mkdir(parents=True, exist_ok=True)
        self._rank_lock: IO[str] | None = None
        busy = "feature store is open in another writer"
        if rank is None:
            self._lock = _lock(self.root / LOCK, fcntl.LOCK_EX, busy)
        else:
            self._lock = _lock(self.root / LOCK, fcntl.LOCK_SH, busy + " (not a rank writer)")
            try:
                self._rank_lock = _lock(
                    self.root / f"{LOCK}.rank-{rank:05d}", fcntl.LOCK_EX, f"{busy} of rank {rank}"
                )
            except InputError:
                _unlock(self._lock)
                raise
        try:
            self._open_index(meta)
        except BaseException:
            _unlock(self._rank_lock)
            _unlock(self._lock)
            raise
        self._pending: list[tuple[str, dict[str, Any], np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self._pending_since = 0.0
        self._closed = False

    def _open_index(self, meta: dict[str, Any] | None) -> None:
        from .store_tools import merge_parts

        main = self.root / INDEX
        if self.rank is None:
            if part_paths(self.root):
                merge_parts(self.root)  # parts left by a killed distributed extraction
            self._publish_path = main
            self._others: set[str] = set()
            stale = ".shard-*.tmp"
        else:
            self._publish_path = self.root / part_name(self.rank)
            others = [read_index(main)] if main.is_file() else []
            others += [read_index(p) for p in part_paths(self.root) if p != self._publish_path]
            self._others = {vid for index in others for vid in index["videos"]}
            self._inherited_meta = {k: v for i in others for k, v in i.get("meta", {}).items()}
            self._shape_of_others = next(
                ((i["keyframes"], i["dim"]) for i in others if i["keyframes"] is not None), None
            )
            stale = f".shard-r{self.rank:05d}-*.tmp"
        if self._publish_path.exists():
            self._index = read_index(self._publish_path)
        else:
            self._index = empty_index()
            if self.rank is not None:
                self._index["rank"] = self.rank
                self._index["meta"] = dict(self._inherited_meta)
                if self._shape_of_others is not None:
                    self._index["keyframes"], self._index["dim"] = self._shape_of_others
        if meta:
            self._index.setdefault("meta", {}).update(meta)
        self._disk_meta = json.dumps(self._index.get("meta", {}), sort_keys=True)
        if self._publish_path.exists() and meta:
            self._disk_meta = ""  # new metadata: publish at close even with no new shard
        for path in self.root.glob(stale):  # left by a killed writer
            path.unlink(missing_ok=True)

    @property
    def meta(self) -> dict[str, Any]:
        """Store metadata, live: changes are published with the next shard or at close."""
        return self._index.setdefault("meta", {})

    def has(self, video_id: str) -> bool:
        """True if ``video_id`` is stored (by any writer) or pending in this writer."""
        return (
            video_id in self._index["videos"]
            or video_id in self._others
            or any(p[0] == video_id for p in self._pending)
        )

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
        position: int | None = None,
    ) -> None:
        """Queue one video: keyframes (N, K, D), shot start/end seconds (N,), optional labels.

        ``position`` (rank writers): the video's place in the whole job's input list;
        merging orders videos by it, so every world size gives the same index order.

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
        entry: dict[str, Any] = {
            "count": int(n),
            "genres": [str(g) for g in (genres or [])],
            "labels": labels is not None,
            "fps": None if fps is None else float(fps),
        }
        if self.rank is not None and position is not None:
            entry["position"] = int(position)
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append((video_id, entry, kf16, times, lab))
        self._pending_rows += n
        overdue = (
            self.flush_seconds is not None
            and time.monotonic() - self._pending_since >= self.flush_seconds
        )
        if self._pending_rows >= self.shard_size or overdue:
            self.flush()

    def _next_stem(self) -> str:
        if self.rank is None:
            return shard_stem(len(self._index["shards"]))
        prefix = shard_stem(0, self.rank)[: -len("00000")]
        used = [
            int(info["keyframes"][len(prefix) :].split(".")[0])
            for info in self._index["shards"]
            if info["keyframes"].startswith(prefix)
        ]
        main = self.root / INDEX
        if main.is_file():  # shards of this rank merged by an earlier run
            used += [
                int(info["keyframes"][len(prefix) :].split(".")[0])
                for info in read_index(main)["shards"]
                if info["keyframes"].startswith(prefix)
            ]
        return shard_stem(max(used, default=-1) + 1, self.rank)

    def flush(self) -> None:
        """Write pending videos as one new shard, then publish it in the index."""
        from .store_tools import file_sha256

        if not self._pending:
            return
        stem = self._next_stem()
        arrays = {
            "keyframes": np.concatenate([p[2] for p in self._pending]),
            "times": np.concatenate([p[3] for p in self._pending]),
            "labels": np.concatenate([p[4] for p in self._pending]),
        }
        info: dict[str, Any] = {"rows": int(arrays["times"].shape[0])}
        sizes, digests = {}, {}
        for kind, array in arrays.items():
            name = f"{stem}.{kind}.npy"
            with atomic_path(self.root / name) as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
                sizes[kind], digests[kind] = tmp.stat().st_size, file_sha256(tmp)
            info[kind] = name
        info["bytes"], info["sha256"] = sizes, digests
        number = len(self._index["shards"])
        offset = 0
        index = json.loads(json.dumps(self._index))  # publish a copy; keep ours on failure
        for video_id, entry, kf, _, _ in self._pending:
            index["videos"][video_id] = {"shard": number, "offset": offset, **entry}
            offset += kf.shape[0]
        index["shards"].append(info)
        atomic_write_text(self._publish_path, json.dumps(index, indent=1))
        self._index = index
        self._disk_meta = json.dumps(index.get("meta", {}), sort_keys=True)
        self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        """Flush what is pending and release the store (a rank writer: merge if last)."""
        if self._closed:
            return
        try:
            self.flush()
            meta = json.dumps(self.meta, sort_keys=True)
            if not self._publish_path.exists() or meta != self._disk_meta:
                atomic_write_text(self._publish_path, json.dumps(self._index, indent=1))
                self._disk_meta = meta
        except BaseException:
            self._closed = True
            _unlock(self._rank_lock)
            _unlock(self._lock)
            raise
        self._closed = True
        _unlock(self._rank_lock)
        if self.rank is None:
            _unlock(self._lock)
        else:
            self._merge_if_last()

    def _merge_if_last(self) -> None:
        """Merge all parts if no other writer holds the store (converts our shared lock)."""
        from .store_tools import merge_parts

        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            _unlock(self._lock)  # another rank is still writing; it merges when it ends
            return
        try:
            merge_parts(self.root)
            self.merged = True
        finally:
            _unlock(self._lock)

    def __enter__(self) -> FeatureStoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Also on an error: pending videos are complete, so they are kept.
        self.close()
