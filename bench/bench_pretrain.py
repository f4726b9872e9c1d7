"""Pre-training step cost: cached features vs re-running the frozen ViT every step.

Both sides run the same pre-training step (default BaSSL-size context model: hidden 768,
8 heads, 2 layers; windows of 17 shots, 3 anchors, idw sampling) on the same windows.
The cached side reads (B, 17, 3, 512) fp16 features from a feature store; the ViT side
first encodes the 3 x 17 keyframe images of each sequence with a random-init CLIP
ViT-B/32 (pretrained=None, frozen, no grad) and then runs the same step. Reported:
sequences/s for each and the ratio (target: cached >= 50x cheaper per sequence on CPU).

Run::

    pytest bench/bench_pretrain.py --benchmark-enable      # pytest-benchmark tables
    python bench/bench_pretrain.py [--quick] [--out DIR]   # writes bench/results/<dev>-pretrain.md

Environment: ``SSEG_BENCH_THREADS`` (torch threads, default 1 on CPU: on a small shared
machine more threads than free cores make OpenMP thrash), ``SSEG_BENCH_BATCH`` (cached
batch, default 32), ``SSEG_BENCH_VIT_BATCH`` (ViT-side sequences per step, default 1).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from sseg.store.features import FeatureStore
from sseg.training.pretrain import PretrainBatch, WindowBatcher, build_objective, load_genre_bank
from sseg.training.pretrain_config import PretrainConfig
from sseg.training.synthetic import write_synthetic_store

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
THREADS = int(os.environ.get("SSEG_BENCH_THREADS", "0" if CUDA else "1"))
BATCH = int(os.environ.get("SSEG_BENCH_BATCH", "256" if CUDA else "32"))
VIT_BATCH = int(os.environ.get("SSEG_BENCH_VIT_BATCH", "4" if CUDA else "1"))
WINDOW, ANCHORS = 17, 3


class Setup:
    """A synthetic store, the default-size objective, an optimizer and a random ViT."""

    def __init__(self, root: Path, batch: int = BATCH, vit: bool = True):
        if THREADS:
            torch.set_num_threads(THREADS)
        write_synthetic_store(root / "store", 40, shots=(100, 200), dim=512, seed=0)
        self.store = FeatureStore(root / "store")
        cfg = PretrainConfig(store=str(root / "store"), out_dir=str(root / "out"))
        genres, _ = load_genre_bank(None, self.store)
        self.objective = build_objective(cfg, self.store, genres).to(DEVICE)
        self.optimizer = torch.optim.AdamW(self.objective.parameters(), lr=1e-4)
        videos = [self.store.load(v) for v in self.store.video_ids]
        self.batcher = WindowBatcher(videos, WINDOW, ANCHORS, "idw", batch, 0, device=DEVICE)
        self.vit_batcher = WindowBatcher(
            videos, WINDOW, ANCHORS, "idw", VIT_BATCH, 0, device=DEVICE
        )
        self.step = 0
        self.vit = None
        if vit:
            self.load_vit()

    def load_vit(self) -> None:
        """The random-init frozen CLIP ViT-B/32 (needs open_clip)."""
        from sseg.modeling.clip_backbone import load_clip

        self.vit, _, _ = load_clip(None, device=DEVICE)

    def train_step(self, batch: PretrainBatch, objective=None) -> float:
        loss, _ = (self.objective if objective is None else objective)(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def cached_step(self, objective=None) -> float:
        """One step on cached features (``objective``: e.g. a compiled one)."""
        self.step += 1
        return self.train_step(self.batcher(self.step, 0), objective)

    def vit_step(self) -> float:
        """One step that first re-encodes every keyframe of the windows with the ViT."""
        self.step += 1
        batch = self.vit_batcher(self.step, 0)
        b, w, k, _ = batch.keyframes.shape
        gen = torch.Generator(device="cpu").manual_seed(self.step)
        images = torch.randn(b * w * k, 3, 224, 224, generator=gen).to(DEVICE)
        with torch.no_grad():
            feats = torch.cat([self.vit.encode_image(c).float() for c in images.split(64)])
        batch.keyframes = feats.view(b, w, k, -1)
        return self.train_step(batch)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return Setup(tmp_path_factory.mktemp("bench-pretrain"))


def _sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def test_cached_step(benchmark, setup):
    benchmark.extra_info["sequences_per_step"] = BATCH
    benchmark.pedantic(lambda: (setup.cached_step(), _sync()), rounds=10, warmup_rounds=2)


def test_vit_step(benchmark, setup):
    benchmark.extra_info["sequences_per_step"] = VIT_BATCH
    benchmark.pedantic(lambda: (setup.vit_step(), _sync()), rounds=2, warmup_rounds=1)


def _time(fn, rounds: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
        _sync()
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        _sync()
        out.append(time.perf_counter() - start)
    return out


def _median(times: list[float]) -> float:
    return sorted(times)[len(times) // 2]


@contextlib.contextmanager
def _ag_backend(name: str | None):
    """Force the AG-Residual backend (``SSEG_AG_BACKEND``) for a block."""
    before = os.environ.get("SSEG_AG_BACKEND")
    if name:
        os.environ["SSEG_AG_BACKEND"] = name
    try:
        yield
    finally:
        os.environ.pop("SSEG_AG_BACKEND", None)
        if before is not None:
            os.environ["SSEG_AG_BACKEND"] = before


def main(argv: list[str] | None = None) -> int:
    """Measure the step per implementation and write ``<out>/<device>-pretrain.md``.

    Rows: the cached-feature step with the PyTorch reference AG-Residual (``eager``), the
    Triton kernels (GPU), the whole objective under ``torch.compile``, and (where open_clip
    is installed) the step that re-runs the frozen ViT. On a GPU every step runs under bf16
    autocast like ``sseg pretrain``. ``--quick``: a small batch and few rounds (dry run).
    """
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import benchlib

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batch, few rounds")
    parser.add_argument("--out", default=None, help="results folder")
    args = parser.parse_args(argv)
    batch = 8 if args.quick else BATCH
    rounds, warmup = (2, 1) if args.quick else (20, 3)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if CUDA else contextlib.nullcontext()
    table = benchlib.ProgressiveTable(
        benchlib.results_dir(args.out) / f"{benchlib.device_slug()}-pretrain.md",
        f"Pre-training step on {benchlib.device_name()}",
        [
            benchlib.environment_line(),
            f"One step = AG-Residual + keyframe mean + pseudo-boundary search + context model "
            f"(hidden 768, 8 heads, 2 layers) + L_con + L_pb, backward, AdamW; windows of "
            f"{WINDOW} shots x 3 keyframes, {ANCHORS} anchors, batch {batch}"
            + (", bf16 autocast." if CUDA else ", float32.")
            + f" Median of {rounds} steps after {warmup} warm-up steps. `eager` = PyTorch "
            "reference AG-Residual, `triton` = fused kernels, `compile` = the objective with the "
            "reference AG-Residual under torch.compile (the all-PyTorch compiled baseline).",
        ],
        ["step", "impl", "sequences/step", "ms/step", "sequences/s", "x eager", "x compile"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        s = Setup(Path(tmp), batch=batch, vit=False)
        impls = [("eager", "reference", s.objective), ("triton", "triton", s.objective)]
        impls = impls if CUDA else impls[:1]
        impls.append(("compile", "reference", torch.compile(s.objective)))
        seconds: dict[str, float] = {}
        rows: dict[str, int] = {}
        for impl, backend, objective in impls:
            with _ag_backend(backend), amp:
                try:
                    t = _median(_time(lambda o=objective: s.cached_step(o), rounds, warmup))
                except Exception as exc:  # noqa: BLE001 - report and go on
                    table.note(f"{impl}: not measured ({type(exc).__name__}: {exc})"[:300])
                    continue
            seconds[impl] = t
            rows[impl] = table.add(
                "cached features", impl, batch, f"{t * 1e3:.1f}", f"{batch / t:,.1f}",
                benchlib.ratio(seconds.get("eager"), t), "-",
            )  # fmt: skip
        if "compile" in seconds:
            for impl, row in rows.items():
                table.set(row, "x compile", benchlib.ratio(seconds["compile"], seconds[impl]))
        if importlib.util.find_spec("open_clip") is None:
            table.note("The frozen-ViT step is not measured: open_clip is not installed.")
        else:
            s.load_vit()
            with amp:
                vit = _median(_time(s.vit_step, rounds=3 if not args.quick else 1, warmup=1))
            table.add(
                "frozen ViT-B/32 re-run every step", "eager", VIT_BATCH, f"{vit * 1e3:.1f}",
                f"{VIT_BATCH / vit:,.2f}", "-", "-",
            )  # fmt: skip
            if "eager" in seconds:
                per_seq = (batch / seconds["eager"]) / (VIT_BATCH / vit)
                table.note(
                    f"**Cached features are {per_seq:.0f}x cheaper per sequence** than "
                    "re-running the ViT (eager rows; target >= 50x)."
                )
    print(table.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
