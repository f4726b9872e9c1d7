"""Learning curves of the context model against simple trained baselines on the proxy.

Trains, on the same windows of the proxy benchmark's ``train`` split (same steps, batch,
optimiser, seed): the context model as it was (``version=1``: raw inputs, unit-scale
positions, centre-token head), the context model as it is (``version=2``), logistic
regression on the window's neighbour cosines, and an MLP over the window's unit shot
features. Every ``--every`` steps: train loss (mean since the last point), validation loss
and AP on the ``val`` split; at the end, AP on ``test`` next to the untrained rules
(neighbour cosine, context rule). Writes ``<out>/<device>-learning_curves.md``.

    python bench/learning_curves.py --proxy /tmp/proxy --steps 1500 --out bench/results
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sseg.benchmarks import context_rule_scores, neighbour_cosine_scores, write_proxy_benchmark
from sseg.data.annotations import load_labels, select_videos
from sseg.evaluation.metrics import average_precision
from sseg.modeling.context import ContextConfig
from sseg.modeling.model import SceneModel
from sseg.store.features import FeatureStore
from sseg.training.finetune import LabelledShots

WINDOW = 17


def unit_shots(windows: torch.Tensor) -> torch.Tensor:
    """(B, W, K, D) keyframe windows -> (B, W, D) unit shot features."""
    return F.normalize(windows.float().mean(-2), dim=-1, eps=1e-6)


class NeighbourCosineLogistic(nn.Module):
    """Logistic regression on cos(shot j, shot j+1) for every adjacent pair of the window."""

    def __init__(self, window: int):
        super().__init__()
        # Standardised inputs: neighbour cosines vary by ~0.1 around ~0.8, which plain
        # SGD-scale weights cannot use within a short run.
        self.norm = nn.BatchNorm1d(window - 1)
        self.linear = nn.Linear(window - 1, 1)

    def forward(self, windows: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        s = unit_shots(windows)
        cos = (s[:, :-1] * s[:, 1:]).sum(-1) * (valid[:, :-1] & valid[:, 1:])
        return self.linear(self.norm(cos)).squeeze(-1)


class WindowMLP(nn.Module):
    """MLP over the concatenated unit shot features of the window."""

    def __init__(self, window: int, dim: int, hidden: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(window * dim, hidden), nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden, 1)
        )

    def forward(self, windows: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        s = unit_shots(windows) * valid[..., None]
        return self.mlp(s.flatten(1)).squeeze(-1)


def context_model(bank: torch.Tensor, version: int) -> SceneModel:
    cfg = ContextConfig(input_dim=bank.shape[1], hidden=128, heads=4, layers=2,
                        window=WINDOW, version=version)  # fmt: skip
    return SceneModel(bank, cfg)


def evaluate(model: nn.Module, data: LabelledShots, batch: int = 512) -> tuple[float, float]:
    """(BCE loss, AP) over every labelled shot of ``data``."""
    model.eval()
    logits, targets = [], []
    with torch.no_grad():
        for start in range(0, len(data.positions), batch):
            picks = np.arange(start, min(start + batch, len(data.positions)))
            windows, valid, y = data.windows(picks, WINDOW)
            logits.append(model(windows, valid).float())
            targets.append(y)
    model.train()
    logit, target = torch.cat(logits), torch.cat(targets)
    loss = float(F.binary_cross_entropy_with_logits(logit, target))
    return loss, average_precision(torch.sigmoid(logit).numpy(), target.long().numpy())


def train(name, model, train_data, val_data, steps, every, seed, lr):
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    curve, losses, start = [], [], time.perf_counter()
    for step in range(steps):
        scale = min(1.0, (step + 1) / (steps // 10)) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        picks = rng.integers(0, len(train_data.positions), size=64)
        windows, valid, y = train_data.windows(picks, WINDOW)
        loss = F.binary_cross_entropy_with_logits(model(windows, valid).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % every == 0 or step + 1 == steps:
            val_loss, val_ap = evaluate(model, val_data)
            curve.append((step + 1, float(np.mean(losses)), val_loss, val_ap))
            losses = []
            took = time.perf_counter() - start
            text = f"{name:>22} step {step + 1:5d} train {curve[-1][1]:.4f} val {val_loss:.4f}"
            print(f"{text} AP {100 * val_ap:.2f} ({took:.0f} s)", flush=True)
    return curve


def rule_ap(store: FeatureStore, ids, labels, rule) -> float:
    scores = [rule(np.asarray(store.load(v).keyframes, dtype=np.float32)) for v in ids]
    return average_precision(np.concatenate(scores), np.concatenate([labels[v] for v in ids]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", default="/tmp/sseg-proxy", help="proxy benchmark folder")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--models", default="context_v1,context_v2,logistic_cosines,window_mlp")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    torch.set_num_threads(1)

    proxy = write_proxy_benchmark(args.proxy)
    store = FeatureStore(proxy.store)
    ids = {s: select_videos(store, str(proxy.split), s) for s in ("train", "val", "test")}
    labels = load_labels(None, store, ids["train"] + ids["val"] + ids["test"])
    data = {s: LabelledShots.from_store(store, labels, v) for s, v in ids.items()}
    bank = torch.from_numpy(np.load(proxy.genre_bank))
    builders = {
        "context_v1": lambda: context_model(bank, 1),
        "context_v2": lambda: context_model(bank, 2),
        "logistic_cosines": lambda: NeighbourCosineLogistic(WINDOW),
        "window_mlp": lambda: WindowMLP(WINDOW, bank.shape[1]),
    }
    results = {}
    for name in args.models.split(","):
        torch.manual_seed(args.seed)
        model = builders[name]()
        curve = train(name, model, data["train"], data["val"], args.steps, args.every,
                      args.seed, args.lr)  # fmt: skip
        results[name] = (curve, evaluate(model, data["test"])[1])

    test = ids["test"]
    rules = {
        "neighbour cosine (untrained)": rule_ap(store, test, labels, neighbour_cosine_scores),
        "context rule, 4 shots a side (untrained)": rule_ap(store, ids["test"], labels,
                                                            context_rule_scores),
    }  # fmt: skip
    lines = [
        "# Learning curves on the proxy benchmark",
        "",
        f"`python bench/learning_curves.py --steps {args.steps} --every {args.every} "
        f"--seed {args.seed} --lr {args.lr}`; {platform.machine()}, torch {torch.__version__}, "
        f"1 thread, load average {os.getloadavg()[0]:.1f} (shared machine). Same windows "
        f"(17 shots), batch 64, AdamW with warm-up and cosine decay, BCE. Proxy scale 1: "
        f"{len(ids['train'])} train / {len(ids['val'])} val / {len(ids['test'])} test videos.",
        "",
        "| model | step | train loss | val loss | val AP |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (curve, _) in results.items():
        for step, train_loss, val_loss, val_ap in curve:
            lines.append(f"| {name} | {step} | {train_loss:.4f} | {val_loss:.4f} | "
                         f"{100 * val_ap:.2f} |")  # fmt: skip
    lines += ["", "| model | test AP |", "|---|---:|"]
    for name, (_, test_ap) in results.items():
        lines.append(f"| {name} (trained) | {100 * test_ap:.2f} |")
    for name, ap in rules.items():
        lines.append(f"| {name} | {100 * ap:.2f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "cpu-learning_curves.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
