"""Calibration table of the proxy benchmark: MovieNet-SSeg figures vs the generated
benchmark, and the baseline APs (neighbour cosine, a context rule, random), for several
generator seeds.

    python bench/proxy_calibration.py --seeds 0,1,2 --out bench/results/cpu-proxy_calibration.md

The context rule scores shot i by 1 - cos(mean of shots i-3..i, mean of shots i+1..i+4):
a hand-written check that scenes are recoverable from a window of shots. Both rules
also run with test-time splitting (sseg.evaluation.splitting, 3 sub-shots, merged at the last one).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from sseg.atomic import atomic_write_text
from sseg.benchmarks import MOVIENET_TEST_FIGURES, proxy_statistics, write_proxy_benchmark
from sseg.benchmarks.proxy_stats import context_rule_scores, neighbour_cosine_scores
from sseg.data.annotations import select_videos
from sseg.evaluation.metrics import average_precision
from sseg.evaluation.splitting import split_long_shots
from sseg.store.features import FeatureStore

TAUS = (None, 60.0, 30.0, 10.0)  # test-time splitting thresholds (s)


def baseline_aps(store: FeatureStore, videos: list[str], seed: int) -> dict[str, float]:
    """Pooled AP of each baseline over ``videos``: neighbour cosine and the context rule
    without and with test-time splitting (``@tau``), shot duration alone, random."""
    rng = np.random.default_rng(seed)
    rules = {"neighbour_cosine": neighbour_cosine_scores, "context_rule": context_rule_scores}
    scores: dict[str, list[np.ndarray]] = {}
    labels = []
    for vid in videos:
        video = store.load(vid)
        for tau in TAUS:
            plan = split_long_shots(video.to_shot_sequence(), video.keyframes, tau)
            keyframes = plan.keyframes.float().numpy()
            for name, rule in rules.items():
                key = name if tau is None else f"{name} @{tau:g}s"
                scores.setdefault(key, []).append(plan.merge(rule(keyframes)))
        scores.setdefault("duration", []).append(video.durations)
        scores.setdefault("random", []).append(rng.random(len(video)))
        labels.append(video.labels)
    lab = np.concatenate(labels)
    return {k: average_precision(np.concatenate(v), lab) for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", help="write the Markdown table here")
    parser.add_argument("--dir", help="where to generate (default: a temporary folder)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    figures, aps, seconds = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            root = Path(args.dir or tmp) / f"proxy-{seed}"
            start = time.perf_counter()
            bench = write_proxy_benchmark(root, args.scale, seed)
            seconds.append(time.perf_counter() - start)
            store = FeatureStore(bench.store)
            test = select_videos(store, bench.split, "test")
            figures.append(proxy_statistics(store, test))
            aps.append(baseline_aps(store, test, seed))
    lines = [
        f"# Proxy benchmark calibration (scale {args.scale:g}, test split, seeds {args.seeds})",
        "",
        f"{figures[0]['videos']} test videos, {np.mean([f['shots'] for f in figures]):.0f} "
        f"shots on average; generation took {np.mean(seconds):.1f} s per benchmark (mean) on "
        "a shared 2-core machine.",
        "",
        "| figure | MovieNet-SSeg test | proxy (mean over seeds) | min | max |",
        "|---|---|---|---|---|",
    ]
    for key, target in MOVIENET_TEST_FIGURES.items():
        values = [f[key] for f in figures]
        low, high = min(values), max(values)
        lines.append(f"| {key} | {target:g} | {np.mean(values):.4g} | {low:.4g} | {high:.4g} |")
    lines += ["", "| baseline | AP mean | AP std | per seed |", "|---|---|---|---|"]
    for name in aps[0]:
        values = [100 * a[name] for a in aps]
        per_seed = ", ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {name} | {np.mean(values):.1f} | {np.std(values):.1f} | {per_seed} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
