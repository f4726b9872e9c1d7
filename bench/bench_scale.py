"""Pre-training at scale: steps/s, windows/s and memory on stores of up to 1 million shots.

Stores of 10k, 100k and 1M shots (videos of 1000 shots, K=3, D=512 float16: 3 GB at 1M)
are generated straight into the feature-store format (random features: the data path
does not care what the numbers are). Each run is a fresh process running the real
``sseg pretrain`` loop (:func:`sseg.training.pretrain.run_pretraining`, default model: hidden 768,
8 heads, 2 layers; windows of 17, 3 anchors, idw) and reports, from its
``metrics.csv``: median step time, steps/s, windows/s, the time a step waited for its
batch (``data_ms``), and the process's anonymous resident memory (heap; the memmapped
shards are page cache, shared and evictable) and peak RSS. The 1M store also runs with
the prefetch off, the baseline for the background prefetch.

Run (the same script on a GPU machine; batch 256 there)::

    python bench/bench_scale.py            # writes bench/results/<dev>-scale.md

Environment: ``SSEG_BENCH_STEPS`` (default 12 on CPU, 200 on CUDA),
``SSEG_BENCH_BATCH`` (default 32 on CPU, 256 on CUDA), ``SSEG_BENCH_SIZES``
(comma-separated shot counts, default ``10000,100000,1000000``), ``SSEG_BENCH_THREADS``
(torch threads, default 2 on CPU), ``SSEG_BENCH_DIR`` (where stores go; default a temp
folder, removed at the end).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from sseg.atomic import atomic_write_text

CUDA = torch.cuda.is_available()
STEPS = int(os.environ.get("SSEG_BENCH_STEPS", "200" if CUDA else "12"))
BATCH = int(os.environ.get("SSEG_BENCH_BATCH", "256" if CUDA else "32"))
SIZES = [int(s) for s in os.environ.get("SSEG_BENCH_SIZES", "10000,100000,1000000").split(",")]
THREADS = int(os.environ.get("SSEG_BENCH_THREADS", "0" if CUDA else "2"))
SHOTS_PER_VIDEO = 1000
WARMUP = 3  # steps left out of the timing (first-call costs, prefetch start)
HEADER = (
    "| shots | windows | prefetch | ms/step | steps/s | windows/s | data_ms "
    "| heap MiB (growth) | peak RSS MiB |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|"
)


def generate_store(path: Path, shots: int, seed: int = 0) -> None:
    """A store of ``shots`` random shots in videos of 1000 (shards of 50k shots)."""
    from sseg.store.features import FeatureStoreWriter

    rng = np.random.default_rng(seed)
    with FeatureStoreWriter(path, shard_size=50_000, meta={"source": "bench"}) as writer:
        for v in range(0, shots, SHOTS_PER_VIDEO):
            n = min(SHOTS_PER_VIDEO, shots - v)
            feats = rng.standard_normal((n, 3, 512), dtype=np.float32)
            ends = np.cumsum(rng.lognormal(1.0, 0.8, size=n))
            starts = np.concatenate([[0.0], ends[:-1]])
            writer.add(f"v{v // SHOTS_PER_VIDEO:05d}", feats, starts, ends)


CHILD = """
import json, os, sys
import torch
from sseg.training.pretrain import run_pretraining
from sseg.training.pretrain_config import PretrainConfig
from sseg.training.train_log import read_metrics

threads = int(sys.argv[5])
if threads:
    torch.set_num_threads(threads)
cfg = PretrainConfig(store=sys.argv[1], out_dir=sys.argv[2], steps=int(sys.argv[3]),
                     batch_size=int(sys.argv[4]), prefetch=int(sys.argv[6]), warmup_steps=1,
                     checkpoint_every=0, checkpoint_minutes=0.0)
summary = run_pretraining(cfg, progress=False)
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
kib = lambda key: int(status[key].split()[0]) if key in status else -1
rows = read_metrics(cfg.out_dir)
print(json.dumps({"step_ms": [float(r["step_ms"]) for r in rows],
                  "data_ms": [float(r["data_ms"]) for r in rows],
                  "windows": summary["windows"], "rss_anon_kib": kib("RssAnon"),
                  "rss_file_kib": kib("RssFile"), "peak_kib": kib("VmHWM")}))
"""


def measure(store: Path, out: Path, prefetch: int) -> dict:
    """One pre-training run in a fresh process; its timings and memory."""
    cmd = [sys.executable, "-c", CHILD, str(store), str(out), str(STEPS), str(BATCH),
           str(THREADS), str(prefetch)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    step_ms = np.median(result["step_ms"][WARMUP:])
    data_ms = np.median(result["data_ms"][WARMUP:])
    return {**result, "step_ms": step_ms, "data_ms": data_ms}


def main() -> None:
    """Generate the stores, measure, write ``bench/results/<device>-scale.md``."""
    root = Path(os.environ.get("SSEG_BENCH_DIR") or tempfile.mkdtemp(prefix="sseg-scale-"))
    rows = []
    try:
        for shots in SIZES:
            store = root / f"store{shots}"
            if not (store / "index.json").is_file():
                generate_store(store, shots)
            runs = [2] if shots != max(SIZES) else [2, 0]
            for prefetch in runs:
                r = measure(store, root / f"run{shots}-{prefetch}", prefetch)
                rows.append((shots, prefetch, r))
                shutil.rmtree(root / f"run{shots}-{prefetch}", ignore_errors=True)
    finally:
        if not os.environ.get("SSEG_BENCH_DIR"):
            shutil.rmtree(root, ignore_errors=True)
    if CUDA:
        device = torch.cuda.get_device_name()
    else:
        device = f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()})"
    base_anon = rows[0][2]["rss_anon_kib"]
    lines = []
    for shots, prefetch, r in rows:
        steps_s = 1000 / r["step_ms"]
        lines.append(
            f"| {shots:,} | {r['windows']:,} | {'on (2)' if prefetch else 'off'} | "
            f"{r['step_ms']:.0f} | {steps_s:.2f} | {steps_s * BATCH:.1f} | {r['data_ms']:.1f} | "
            f"{r['rss_anon_kib'] / 1024:.0f} (+{(r['rss_anon_kib'] - base_anon) / 1024:.0f}) | "
            f"{r['peak_kib'] / 1024:.0f} |"
        )
    big = [r for s, _, r in rows if s == max(SIZES)]
    ratio = ""
    if len(big) == 2:
        on, off = big
        ratio = (
            f"\nAt {max(SIZES):,} shots the prefetch cuts the wait for data from "
            f"{off['data_ms']:.1f} to {on['data_ms']:.1f} ms per step; steps/s with/without "
            f"prefetch: {off['step_ms'] / on['step_ms']:.2f}x.\n"
        )
    text = f"""# Pre-training at scale: throughput and memory vs store size

Device: {device}, torch {torch.__version__}, {THREADS or "default"} torch thread(s),
Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f} at the end.
Generated by `python bench/bench_scale.py`.

Default model (hidden 768, 8 heads, 2 layers), windows of 17 shots x 3 keyframes x 512,
3 anchors (idw), batch {BATCH} windows, {STEPS} steps per run (median of the steps after
the first {WARMUP}); each run a fresh process over a generated store (videos of
{SHOTS_PER_VIDEO} shots, float16 shards of 50k shots, memory-mapped). `data_ms`: time a
step waited for its batch. Memory: anonymous resident memory at the end (heap; the
shards are shared, evictable page cache) with the growth over the smallest store, and
the peak RSS (page cache of the shards read included). Shared machine: absolute times
vary, compare within the table.

{HEADER}
{chr(10).join(lines)}
{ratio}"""
    out = Path(__file__).parent / "results" / f"{'gpu' if CUDA else 'cpu'}-scale.md"
    atomic_write_text(out, text)
    print(text)


if __name__ == "__main__":
    main()
