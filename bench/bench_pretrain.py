"""Pre-training step cost: cached features vs re-running the frozen ViT every step.

Both sides run the same pre-training step (default BaSSL-size context model: hidden 768,
8 heads, 2 layers; windows of 17 shots, 3 anchors, idw sampling) on the same windows.
The cached side reads (B, 17, 3, 512) fp16 features from a feature store; the ViT side
first encodes the 3 x 17 keyframe images of each sequence with a random-init CLIP
ViT-B/32 (pretrained=None, frozen, no grad) and then runs the same step. Reported:
sequences/s for each and the ratio (target: cached >= 50x cheaper per sequence on CPU).

Run::

    pytest bench/bench_pretrain.py --benchmark-enable      # pytest-benchmark tables
    python bench/bench_pretrain.py                         # writes bench/results/<dev>-pretrain.md

Environment: ``SSEG_BENCH_THREADS`` (torch threads, default 1 on CPU: on a small shared
machine more threads than free cores make OpenMP thrash), ``SSEG_BENCH_BATCH`` (cached
batch, default 32), ``SSEG_BENCH_VIT_BATCH`` (ViT-side sequences per step, default 1).
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from sseg.atomic import atomic_write_text
from sseg.features import FeatureStore
from sseg.pretrain import PretrainBatch, WindowBatcher, build_objective, load_genre_bank
from sseg.pretrain_config import PretrainConfig
from sseg.synthetic import write_synthetic_store

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
THREADS = int(os.environ.get("SSEG_BENCH_THREADS", "0" if CUDA else "1"))
BATCH = int(os.environ.get("SSEG_BENCH_BATCH", "256" if CUDA else "32"))
VIT_BATCH = int(os.environ.get("SSEG_BENCH_VIT_BATCH", "4" if CUDA else "1"))
WINDOW, ANCHORS = 17, 3


class Setup:
    """A synthetic store, the default-size objective, an optimizer and a random ViT."""

    def __init__(self, root: Path):
        if THREADS:
            torch.set_num_threads(THREADS)
        write_synthetic_store(root / "store", 40, shots=(100, 200), dim=512, seed=0)
        self.store = FeatureStore(root / "store")
        cfg = PretrainConfig(store=str(root / "store"), out_dir=str(root / "out"))
        genres, _ = load_genre_bank(None, self.store)
        self.objective = build_objective(cfg, self.store, genres).to(DEVICE)
        self.optimizer = torch.optim.AdamW(self.objective.parameters(), lr=1e-4)
        videos = [self.store.load(v) for v in self.store.video_ids]
        self.batcher = WindowBatcher(videos, WINDOW, ANCHORS, "idw", BATCH, 0, device=DEVICE)
        self.vit_batcher = WindowBatcher(
            videos, WINDOW, ANCHORS, "idw", VIT_BATCH, 0, device=DEVICE
        )
        from sseg.clip_backbone import load_clip

        self.vit, _, _ = load_clip(None, device=DEVICE)
        self.step = 0

    def train_step(self, batch: PretrainBatch) -> float:
        loss, _ = self.objective(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def cached_step(self) -> float:
        """One step on cached features."""
        self.step += 1
        return self.train_step(self.batcher(self.step, 0))

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


def main() -> None:
    """Measure both and write ``bench/results/<device>-pretrain.md``."""
    with tempfile.TemporaryDirectory() as tmp:
        s = Setup(Path(tmp))
        cached = sorted(_time(s.cached_step, rounds=20, warmup=3))
        vit = sorted(_time(s.vit_step, rounds=3, warmup=1))
    cached_med, vit_med = cached[len(cached) // 2], vit[len(vit) // 2]
    cached_rate, vit_rate = BATCH / cached_med, VIT_BATCH / vit_med
    ratio = cached_rate / vit_rate
    if CUDA:
        device = torch.cuda.get_device_name()
    else:
        device = f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()})"
    rows = [
        ("cached features", BATCH, cached_med, cached_rate),
        ("frozen ViT-B/32 re-run every step", VIT_BATCH, vit_med, vit_rate),
    ]
    table = "\n".join(f"| {name} | {b} | {t * 1000:.1f} | {r:.2f} |" for name, b, t, r in rows)
    text = f"""# Pre-training step: cached features vs re-running the frozen backbone

Device: {device}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s),
Python {sys.version.split()[0]}. Generated by `python bench/bench_pretrain.py`.

One step = pseudo-boundary search + context model (hidden 768, 8 heads, 2 layers) +
L_con + L_pb, backward, AdamW, on windows of {WINDOW} shots x 3 keyframes, {ANCHORS} anchors.
The ViT side additionally encodes all {WINDOW * 3} keyframe images of each sequence with a
random-init CLIP ViT-B/32 (no grad) before the step (random pixels: same compute as real
keyframes). Median of 20 (cached) / 3 (ViT) steps; on a shared machine absolute times vary,
the ratio is the stable figure.

| step | sequences/step | ms/step (median) | sequences/s |
|---|---:|---:|---:|
{table}

**Cached features are {ratio:.0f}x cheaper per sequence** (target >= 50x).
"""
    out = Path(__file__).parent / "results" / f"{'gpu' if CUDA else 'cpu'}-pretrain.md"
    atomic_write_text(out, text)
    print(text)


if __name__ == "__main__":
    main()
