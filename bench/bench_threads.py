"""Seconds per fine-tuning step of the ablation-size context model at 1, 2, ... threads.

Each thread count runs in its own process (torch's thread pools are set once per process)
on the same random windows: 2-layer context model, hidden 128, 17-shot windows of 3 x 512
keyframe features, batch 64, AdamW. Writes ``<out>/cpu-threads.md`` with the median step
time and the machine's load average, so the ``--threads auto`` default can be checked on
the machine at hand.

    python bench/bench_threads.py --threads 1,2 --steps 30 --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import json, statistics, sys, time
import torch
from torch.nn import functional as F
from sseg.modeling.context import ContextConfig
from sseg.modeling.model import SceneModel
threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
bank = torch.nn.functional.normalize(torch.randn(21, 512), dim=-1)
model = SceneModel(bank, ContextConfig(input_dim=512, hidden=128, heads=4, layers=2, window=17))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
x, valid = torch.randn(64, 17, 3, 512), torch.ones(64, 17, dtype=torch.bool)
y = (torch.rand(64) < 0.08).float()
times = []
for _ in range(steps):
    start = time.perf_counter()
    loss = F.binary_cross_entropy_with_logits(model(x, valid), y)
    opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - start)
print(json.dumps({"median": statistics.median(times[3:]), "min": min(times[3:])}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        result = subprocess.run(
            [sys.executable, "-c", WORKER, str(threads), str(args.steps)],
            capture_output=True, text=True, check=True, env=env,
        )  # fmt: skip
        rows.append((threads, json.loads(result.stdout.strip().splitlines()[-1])))
        print(threads, rows[-1][1], flush=True)
    base = rows[0][1]["median"]
    lines = [
        "# Fine-tuning step time by thread count",
        "",
        f"`python bench/bench_threads.py --threads {args.threads} --steps {args.steps}`: "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} when written "
        "(a machine shared with other jobs). Ablation-size context model, batch 64.",
        "",
        "| threads | median s/step | min s/step | median vs first row |",
        "|---:|---:|---:|---:|",
    ]
    for threads, r in rows:
        lines.append(f"| {threads} | {r['median']:.3f} | {r['min']:.3f} | "
                     f"{r['median'] / base:.2f}x |")  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu-threads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
