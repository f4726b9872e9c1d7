"""Feature-store maintenance: merge rank parts into ``index.json``, verify shard checksums.

Both operate on the files of :mod:`sseg.store.features` and are what ``sseg store merge`` and
``sseg store verify`` run.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import InputError
from .features import (
    BACKBONE_KEYS,
    INDEX,
    SHARD_KINDS,
    _read_index,
    empty_index,
    exclusive_store_lock,
    open_shard_file,
    part_paths,
    read_index,
    shard_shapes,
)

CHUNK = 8 << 20


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 8 MiB chunks (same as ``sha256sum``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class MergeReport:
    """What :func:`merge_parts` folded into ``index.json``."""

    parts: int = 0
    shards: int = 0
    videos: int = 0
    duplicates: list[str] = field(default_factory=list)


def _merge_meta(into: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    for key, value in meta.items():
        if key in BACKBONE_KEYS and into.get(key) not in (None, value):
            raise InputError(
                f"part records {key} {value!r}, the store {into[key]!r}: features of two "
                "backbones cannot be merged",
                path,
            )
        into.setdefault(key, value)


def merge_parts(root: str | Path) -> MergeReport:
    """Fold every rank part into ``index.json`` (atomically), then delete the parts.

    The caller must hold the store lock exclusively (a direct writer, or
    :func:`merge_store`). New videos are ordered by their recorded input position, then
    rank, then order within the rank, so the merged index does not depend on the world
    size. Idempotent: shards and videos already indexed are not added twice (a merge
    killed between writing the index and deleting the parts is finished by the next).
    """
    root = Path(root)
    parts = part_paths(root)
    report = MergeReport(parts=len(parts))
    if not parts:
        return report
    main = root / INDEX
    index = read_index(main) if main.is_file() else empty_index()
    index.setdefault("meta", {})
    known = {info["keyframes"]: i for i, info in enumerate(index["shards"])}
    incoming: list[tuple[float, int, int, str, dict[str, Any]]] = []
    for path in parts:
        part = read_index(path)
        shape = (part["keyframes"], part["dim"])
        if part["keyframes"] is not None and part["videos"]:
            if index["keyframes"] is None:
                index["keyframes"], index["dim"] = shape
            elif shape != (index["keyframes"], index["dim"]):
                raise InputError(
                    f"part holds (N, {shape[0]}, {shape[1]}) features, the store "
                    f"(N, {index['keyframes']}, {index['dim']})",
                    path,
                )
        _merge_meta(index["meta"], part.get("meta", {}), path)
        remap = {}
        for number, info in enumerate(part["shards"]):
            if info["keyframes"] not in known:
                index["shards"].append(info)
                known[info["keyframes"]] = len(index["shards"]) - 1
                report.shards += 1
            remap[number] = known[info["keyframes"]]
        rank = int(part.get("rank", 0))
        for order, (video_id, entry) in enumerate(part["videos"].items()):
            position = entry.get("position")
            key = math.inf if position is None else float(position)
            incoming.append((key, rank, order, video_id, {**entry, "shard": remap[entry["shard"]]}))
    incoming.sort(key=lambda item: item[:3])
    for *_, video_id, entry in incoming:
        entry.pop("position", None)
        if video_id in index["videos"]:
            report.duplicates.append(video_id)
            continue
        index["videos"][video_id] = entry
        report.videos += 1
    atomic_write_text(main, json.dumps(index, indent=1))
    for path in parts:
        path.unlink(missing_ok=True)
    return report


def merge_store(root: str | Path) -> MergeReport:
    """Take the store lock (refused while a writer is open) and :func:`merge_parts`."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("feature store not found (no such directory)", root)
    with exclusive_store_lock(root):
        return merge_parts(root)


@dataclass
class BadFile:
    """A shard file that failed verification, and the videos stored in it."""

    path: Path
    problem: str
    videos: list[str]

    def __str__(self) -> str:
        shown = ", ".join(self.videos[:5]) + (" ..." if len(self.videos) > 5 else "")
        return f"{self.path}: {self.problem} (videos: {shown or 'none'})"


@dataclass
class VerifyReport:
    """Result of :func:`verify_store`."""

    files: int = 0
    bytes: int = 0
    bad: list[BadFile] = field(default_factory=list)
    unverified: list[Path] = field(default_factory=list)  # no checksum recorded

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.bad


def _indexes(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = [(root / INDEX, _read_index(root))] if (root / INDEX).is_file() else []
    out += [(path, read_index(path)) for path in part_paths(root)]
    if not out:
        _read_index(root)  # raises the usual "not a feature store" error
    return out


def _check_file(path: Path, info: dict[str, Any], kind: str, shape: tuple[int, ...]) -> str | None:
    """The problem with one shard file, or None."""
    size = info.get("bytes", {}).get(kind)
    try:
        open_shard_file(path, shape, size)
    except InputError as exc:
        return exc.problem
    expected = info.get("sha256", {}).get(kind)
    if expected is not None and file_sha256(path) != expected:
        return "SHA-256 differs from the index (bytes changed in place)"
    return None


def verify_store(
    root: str | Path, progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    """Check every shard file of ``index.json`` and of unmerged rank parts.

    Each file must exist, have the recorded size and array shape, and the recorded
    SHA-256. Files of stores written before checksums existed are only checked for size
    and shape (listed in ``unverified``). ``progress(done, total)`` is called per file.
    """
    root = Path(root)
    report = VerifyReport()
    jobs = []
    for _, index in _indexes(root):
        by_shard: dict[int, list[str]] = {}
        for video_id, entry in index["videos"].items():
            by_shard.setdefault(int(entry["shard"]), []).append(video_id)
        for number, info in enumerate(index["shards"]):
            if index["keyframes"] is None:
                continue
            shapes = shard_shapes(info, index["keyframes"], index["dim"])
            for kind in SHARD_KINDS:
                jobs.append((root / info[kind], info, kind, shapes[kind], by_shard.get(number, [])))
    for done, (path, info, kind, shape, videos) in enumerate(jobs, 1):
        problem = _check_file(path, info, kind, shape)
        report.files += 1
        if problem is not None:
            report.bad.append(BadFile(path, problem, videos))
        else:
            report.bytes += path.stat().st_size
            if "sha256" not in info:
                report.unverified.append(path)
        if progress is not None:
            progress(done, len(jobs))
    return report
