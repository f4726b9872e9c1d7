"""Warm startup of ``sseg segment`` (imports + model loading, before the first frame).

Each run is a fresh interpreter: ``import torch``, the cached demo SceneModel, then the
demo backbone, either open_clip's full model (``load_backbone``, the path ``segment`` used
before) or the open_clip-free image tower (``load_image_backbone``, what it uses now).
The two alternate in the same run; the report gives medians and their ratio.

    python bench/bench_startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
from sseg.segmentation.pipeline import load_scene_model
from sseg.segmentation import keyframe_features as kf
model, _ = load_scene_model(None, "cpu")
t2 = time.perf_counter()
loader = getattr(kf, sys.argv[1])
loader(None, seed=model.meta.get("backbone_seed"), device="cpu")
t3 = time.perf_counter()
print(json.dumps({"torch": t1 - t0, "scene_model": t2 - t1, "backbone": t3 - t2,
                  "total": t3 - t0, "open_clip": "open_clip" in sys.modules}))
"""
PATHS = {"open_clip (before)": "load_backbone", "image tower (now)": "load_image_backbone"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from sseg.segmentation.demo import DEMO_SEED, ensure_demo_model
    from sseg.segmentation.keyframe_features import load_image_backbone

    ensure_demo_model()  # warm: demo model and image-tower cache exist
    load_image_backbone(None, seed=DEMO_SEED)
    results: dict[str, list[dict]] = {name: [] for name in PATHS}
    for _ in range(args.runs):
        for name, loader in PATHS.items():
            out = subprocess.run(
                [sys.executable, "-c", PROBE, loader], capture_output=True, text=True, check=True
            )
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"| path | torch | scene model | backbone | total (median of {args.runs}) |")
    print("|---|---|---|---|---|")
    totals = {}
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("torch", "scene_model",
                                                                  "backbone", "total")}  # fmt: skip
        totals[name] = med["total"]
        print(f"| {name} | {med['torch']:.2f} s | {med['scene_model']:.2f} s | "
              f"{med['backbone']:.2f} s | {med['total']:.2f} s |")  # fmt: skip
    before, now = totals.values()
    print(f"\nstartup now / before: {now / before:.2f}")


if __name__ == "__main__":
    main()
