"""The MovieNet-calibrated proxy benchmark, written as a normal feature store.

``write_proxy_benchmark(out_dir)`` lays out::

    out_dir/proxy.json                      manifest (scale, seed, generator version), last
    out_dir/split318.json                   {"train", "val", "test", "unlabeled", "all"}
    out_dir/store/                          feature store (labels of train/val/test videos)
    out_dir/store/genre_bank.npy            definition-text genre bank (21, 512), store meta
    out_dir/store/genre_bank_names.npy      names-only genre bank (21, 512)

so ``sseg pretrain``, ``finetune`` and ``evaluate`` run on it unchanged
(``--features out_dir/store --split out_dir/split318.json``). Unlabeled videos are stored
without labels (for pre-training only). docs/proxy_benchmark.md documents the model.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write_text
from ..store.features import FeatureStoreWriter
from ..training.synthetic import save_genre_bank
from .proxy_generator import FPS, LOOKS, STRUCTURE, generate_video, make_world

VERSION = 1  # bump on any change to what a (scale, seed) generates
# videos per subset at scale 1.0 (MovieNet: 190 / 64 / 64 labelled, ~780 more unlabelled)
SUBSETS: dict[str, int] = {"train": 48, "val": 12, "test": 20, "unlabeled": 40}
MANIFEST = "proxy.json"
SPLIT = "split318.json"
STORE = "store"
BANK = "genre_bank.npy"
NAMES_BANK = "genre_bank_names.npy"


@dataclass
class ProxyBenchmark:
    """Where a generated proxy benchmark lives and how it was made."""

    store: Path
    split: Path
    genre_bank: Path
    genre_bank_names: Path
    scale: float
    seed: int


def subset_sizes(scale: float) -> dict[str, int]:
    """Videos per subset at ``scale`` (at least one each)."""
    return {name: max(1, round(count * scale)) for name, count in SUBSETS.items()}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _layout(root: Path, scale: float, seed: int) -> ProxyBenchmark:
    store = root / STORE
    return ProxyBenchmark(store, root / SPLIT, store / BANK, store / NAMES_BANK, scale, seed)


def _is_complete(root: Path, scale: float, seed: int) -> bool:
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("version") != VERSION or manifest.get("seed") != seed:
        return False
    if manifest.get("scale") != float(scale):
        return False
    bench = _layout(root, scale, seed)
    return all(p.is_file() for p in (bench.split, bench.genre_bank, bench.genre_bank_names,
                                      bench.store / "index.json"))  # fmt: skip


def write_proxy_benchmark(out_dir: str | Path, scale: float = 1.0, seed: int = 0) -> ProxyBenchmark:
    """Generate the proxy benchmark into ``out_dir`` (see the module docstring).

    Idempotent: a complete benchmark of the same ``scale``, ``seed`` and generator version
    already in ``out_dir`` is reused. Otherwise it is generated in a temporary folder beside
    ``out_dir`` and moved into place, so ``out_dir`` never holds a half-written benchmark.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    root = Path(out_dir)
    if _is_complete(root, scale, seed):
        return _layout(root, scale, seed)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        _generate(tmp, scale, seed)
        if root.exists():
            old = root.with_name(f".{root.name}.old-{os.getpid()}")
            os.replace(root, old)
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return _layout(root, scale, seed)


def _generate(root: Path, scale: float, seed: int) -> None:
    world = make_world(seed)
    sizes = subset_sizes(scale)
    split: dict[str, list[str]] = {}
    bench = _layout(root, scale, seed)
    meta = {"source": "proxy", "version": VERSION, "seed": seed, "scale": float(scale),
            "genre_bank": BANK, "genre_bank_names": NAMES_BANK}  # fmt: skip
    with FeatureStoreWriter(bench.store, meta=meta) as writer:
        for code, (subset, count) in enumerate(sizes.items()):
            ids = split.setdefault(subset, [])
            for number in range(count):
                # a larger scale keeps the videos of a smaller one
                video_id = f"proxy-{subset}-{number:04d}"
                structure, video = generate_video(world, seed, code, number)
                starts, ends = structure.times
                labels = None if subset == "unlabeled" else structure.labels
                writer.add(video_id, video.keyframes, starts, ends, structure.genres, labels, FPS)
                ids.append(video_id)
    save_genre_bank(bench.genre_bank, world.definition_bank)
    save_genre_bank(bench.genre_bank_names, world.names_bank)
    split["all"] = [v for name in ("train", "val", "test") for v in split[name]]
    atomic_write_text(bench.split, json.dumps(split, indent=1) + "\n")
    manifest = {"version": VERSION, "scale": float(scale), "seed": seed, "subsets": sizes,
                "structure": vars(STRUCTURE), "looks": vars(LOOKS)}  # fmt: skip
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=1) + "\n")
