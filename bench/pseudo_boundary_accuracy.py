"""How often each pseudo-boundary objective lands on a true scene boundary (proxy corpus).

For windows of 17 shots drawn from the proxy benchmark's labelled ``train`` videos, K
anchors are sampled as pre-training samples them (``--sampling``, default idw) and the
pseudo-boundaries between consecutive anchors are searched on the raw shot features (what
a fresh model's AG-Residual passes through) with each objective: ``sum`` (BaSSL's DTW),
``mean`` (mean similarity, the anchor's own similarity of 1 included) and ``mean_others``
(the anchor's own similarity left out). For each boundary between anchors a_k and
a_k+1 whose range holds at least one true scene end, it counts a hit when the chosen shot
ends a scene (exact) or is within one shot of one (+-1); ``degenerate`` is the share of
boundaries put right at an anchor (a one-shot segment). ``random`` picks uniformly in the
range. Writes ``<out>/cpu-pseudo_boundary_accuracy.md``.

    python bench/pseudo_boundary_accuracy.py --proxy /tmp/sseg-proxy --out bench/results
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from sseg.benchmarks import write_proxy_benchmark
from sseg.data.annotations import select_videos
from sseg.ops import pseudo_boundaries
from sseg.store.features import FeatureStore
from sseg.training.sampling import sample_anchors

MODES = ("sum", "mean", "mean_others")
WINDOW = 17


def draw_windows(store, ids, count, k, sampling, seed):
    """(x (B, W, D), anchors (B, K), labels (B, W)) from random full windows."""
    rng = np.random.default_rng(seed)
    videos = [store.load(v) for v in ids]
    xs, anchors, labels = [], [], []
    while len(xs) < count:
        video = videos[rng.integers(len(videos))]
        if len(video) < WINDOW + 1:
            continue
        start = int(rng.integers(0, len(video) - WINDOW))
        part = slice(start, start + WINDOW)
        xs.append(np.asarray(video.keyframes[part], dtype=np.float32).mean(1))
        anchors.append(sample_anchors(rng, video.durations[part], k, sampling))
        labels.append(video.labels[part])
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(anchors)), np.stack(labels)


def score(bounds: np.ndarray, anchors: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Hit rates over boundary ranges that contain a true scene end."""
    exact = near = degenerate = counted = 0
    for b in range(bounds.shape[0]):
        ends = labels[b] == 1
        for kk in range(bounds.shape[1]):
            lo, hi = anchors[b, kk], anchors[b, kk + 1]
            if not ends[lo:hi].any():
                continue
            counted += 1
            pick = bounds[b, kk]
            exact += bool(ends[pick])
            near += bool(ends[max(pick - 1, 0) : pick + 2].any())
            degenerate += pick == lo or pick == hi - 1
    return {"exact": exact / counted, "near": near / counted,
            "degenerate": degenerate / counted, "ranges": counted}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", default="/tmp/sseg-proxy")
    parser.add_argument("--windows", type=int, default=4000)
    parser.add_argument("--sampling", default="idw")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    proxy = write_proxy_benchmark(args.proxy)
    store = FeatureStore(proxy.store)
    ids = select_videos(store, str(proxy.split), "train")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for k in (2, 3, 4):
        results = {m: [] for m in (*MODES, "random")}
        for seed in seeds:
            x, anchors, labels = draw_windows(store, ids, args.windows, k, args.sampling, seed)
            a = anchors.numpy()
            for mode in MODES:
                bounds, _ = pseudo_boundaries(x, anchors, mode=mode)
                results[mode].append(score(bounds.numpy(), a, labels))
            rng = np.random.default_rng(seed + 1000)
            rand = np.stack([[rng.integers(a[b, kk], a[b, kk + 1]) for kk in range(k - 1)]
                             for b in range(len(a))])  # fmt: skip
            results["random"].append(score(rand, a, labels))
        for mode, per_seed in results.items():
            exact = np.array([r["exact"] for r in per_seed]) * 100
            near = np.array([r["near"] for r in per_seed]) * 100
            degenerate = np.array([r["degenerate"] for r in per_seed]) * 100
            rows.append((k, mode, exact, near, degenerate, per_seed[0]["ranges"]))
    lines = [
        "# Pseudo-boundary objectives on the proxy benchmark",
        "",
        f"`python bench/pseudo_boundary_accuracy.py --windows {args.windows} --sampling "
        f"{args.sampling} --seeds {args.seeds}`: {args.windows} windows of {WINDOW} shots per "
        f"seed from the {len(ids)} labelled train videos, anchors sampled by "
        f"{args.sampling}, raw shot features (keyframe means). Hit rates over anchor-to-anchor "
        "ranges that contain a true scene end; mean ± std over seeds, percent.",
        "",
        "| K | objective | exact hit | within 1 shot | at an anchor (degenerate) |",
        "|---:|---|---:|---:|---:|",
    ]
    for k, mode, exact, near, degenerate, _ in rows:
        lines.append(
            f"| {k} | {mode} | {exact.mean():.1f} ± {exact.std():.1f} | "
            f"{near.mean():.1f} ± {near.std():.1f} | {degenerate.mean():.1f} |"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu-pseudo_boundary_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
