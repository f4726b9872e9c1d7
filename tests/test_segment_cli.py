"""``sseg segment`` / ``sseg demo-model`` end to end, and ``sseg.segment`` in Python.

A small demo model is built once into a temporary cache (the real builder with
fewer corpus images and steps), so these tests exercise the whole pipeline on
tiny generated videos in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import sseg
from sseg import demo
from sseg.cli import main
from sseg.model import SceneModel
from sseg.testing.videos import write_damaged_video, write_video


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("cache")
    mp.setenv("SSEG_CACHE_DIR", str(root))
    mp.setattr(demo, "LOOKS", 3)
    mp.setattr(demo, "VARIANTS", 2)
    mp.setattr(demo, "STEPS", 15)
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("videos") / "two_scenes.mp4"
    return write_video(path, [[8, 9], [10, 8]], fps=10, seed=5)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_demo_model_command_builds_a_loadable_deterministic_model(cache, capsys):
    assert main(["demo-model", "-q"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == demo.demo_model_path() and path.parent == cache
    model = SceneModel.load(path)
    assert model.meta["demo"] is True and model.meta["backbone_seed"] == demo.DEMO_SEED
    again = cache / "again.safetensors"
    assert main(["demo-model", "-q", "--output", str(again)]) == 0
    a, b = SceneModel.load(path).state_dict(), SceneModel.load(again).state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_segment_writes_requested_formats(cache, clip, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "segment", str(clip.path), "-o", str(out), "--detector", "content",
        "--min-shot-len", "3", "--json", "--csv", "--vtt", "--html", "-q",
        "--precision", "fp16",
    ]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "two_scenes.mp4: 4 shots" in captured.out and "Scene" in captured.out
    assert "needs a CUDA device; using fp32" in captured.err
    assert _files(out) == [
        "two_scenes.chapters.vtt",
        "two_scenes.report.html",
        "two_scenes.scenes.csv",
        "two_scenes.scenes.json",
        "two_scenes.shots.csv",  # formats add up: the default set stays
    ]
    data = json.loads((out / "two_scenes.scenes.json").read_text())
    assert [s["start_frame"] for s in data["shots"]] == clip.shot_starts
    assert data["shots"][-1]["end_frame"] == clip.num_frames
    covered = [i for scene in data["scenes"] for i in scene["shots"]]
    assert covered == [0, 1, 2, 3]
    rows = (out / "two_scenes.scenes.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + data["num_scenes"]


def test_python_api_with_splitting_and_thresholds(cache, clip):
    result = sseg.segment(clip.path, detector="content", min_shot_frames=3, tau=0.5, threshold=1.0)
    assert len(result.shots) == 4 and result.probabilities.shape == (4,)
    assert ((result.probabilities >= 0) & (result.probabilities <= 1)).all()
    assert len(result.scenes) == 1  # threshold 1.0: a single scene
    assert result.keyframes.shape[:2] == (4, 1)  # middle-keyframe thumbnails for reports
    assert {"shot_detection", "keyframes_and_encoding", "inference", "total"} <= set(result.timings)
    for b in result.intra_shot_boundaries:  # every shot (>= 0.8 s) was split in 3
        shot = result.shots[b.shot_index]
        assert shot.start_time < b.time < shot.end_time and b.probability >= 1.0
    low = sseg.segment(clip.path, detector="content", min_shot_frames=3, threshold=0.0)
    assert len(low.scenes) == 4  # threshold 0: every shot is a scene
    assert len(low.intra_shot_boundaries) == 0  # shots are shorter than tau = 10 s


def test_demo_flag_segments_the_real_clip(cache, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["segment", "--demo", "--detector", "content", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bikes.mp4: 6 shots")
    assert _files(tmp_path / "sseg_out") == [
        "bikes.scenes.csv",
        "bikes.scenes.json",
        "bikes.shots.csv",
    ]


def test_no_cut_and_one_frame_videos_give_one_scene(cache, tmp_path, capsys):
    for name, scenes in [("still.mp4", [[25]]), ("single.mp4", [[1]])]:
        video = write_video(tmp_path / name, scenes, fps=10)
        out = tmp_path / f"out-{name}"
        assert (
            main(["segment", str(video.path), "-o", str(out), "--detector", "content", "-q"]) == 0
        )
        data = json.loads((out / f"{Path(name).stem}.scenes.json").read_text())
        assert data["num_scenes"] == 1 and data["num_shots"] == 1
        assert data["scenes"][0]["end_frame"] == scenes[0][0]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda d: d / "missing.mp4", 2, "file not found"),
        (lambda d: _write(d / "text.mp4", b"hello, not a video\n" * 10), 3, "not a video"),
        (lambda d: _write(d / "zero.mp4", b""), 3, "empty"),
        (lambda d: _write(d / "cut.mp4", _bikes()[:150_000]), 3, "not a video"),
    ],
)
def test_bad_inputs_exit_with_one_line_and_no_outputs(tmp_path, capsys, make, code, message):
    video = make(tmp_path)
    out = tmp_path / "out"
    assert main(["segment", str(video), "-o", str(out), "-q"]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sseg segment: error:")
    assert str(video) in err and message in err
    assert _files(out) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", "soon"], "invalid timecode"),
        (["--threshold", "1.5"], "--threshold must be within"),
        (
            ["--device", "cuda"]
            if not __import__("torch").cuda.is_available()
            else ["--device", "tpu"],
            "device",
        ),
        (["--model", "nope.safetensors"], "checkpoint file not found"),
    ],
)
def test_bad_options_exit_2(cache, clip, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    argv = ["segment", str(clip.path), "-o", str(out), "--detector", "content", "-q", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert _files(out) == []


def test_split_video_without_ffmpeg_fails_before_work(clip, tmp_path, capsys, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    out = tmp_path / "out"
    assert main(["segment", str(clip.path), "-o", str(out), "--split-video", "-q"]) == 2
    assert "needs the ffmpeg program" in capsys.readouterr().err
    assert _files(out) == []


def test_missing_input_is_a_usage_error(capsys):
    assert main(["segment", "-q"]) == 2
    assert "give a VIDEO file, or --demo" in capsys.readouterr().err


def _bikes() -> bytes:
    return demo.demo_video_path().read_bytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_model_without_backbone_needs_clip_weights(cache, clip, tmp_path, capsys):
    import torch

    from sseg.context import ContextConfig

    torch.manual_seed(1)
    path = tmp_path / "finetuned.safetensors"
    SceneModel(torch.randn(21, 512), ContextConfig(512, hidden=32, heads=2, window=5)).save(path)
    base = ["segment", str(clip.path), "--detector", "content", "--min-shot-len", "3", "-q"]
    out = tmp_path / "out"
    assert main([*base, "--model", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pass --clip-weights PATH" in err and "finetuned.safetensors" in err
    assert _files(out) == []
    assert main([*base, "--model", str(path), "--clip-weights", "random", "-o", str(out)]) == 0
    assert "4 shots" in capsys.readouterr().out
    missing = tmp_path / "ViT-B-32.pt"
    assert main([*base, "--model", str(path), "--clip-weights", str(missing)]) == 2
    assert "ViT-B-32.pt" in capsys.readouterr().err


def test_unreadable_frames_mid_file_are_skipped_and_reported(cache, tmp_path, capsys):
    video = write_damaged_video(tmp_path / "damaged.mp4")
    out = tmp_path / "out"
    argv = ["segment", str(video), "-o", str(out), "--detector", "content", "--min-shot-len", "3"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "sseg: warning:" in err and "unreadable" in err
    data = json.loads((out / "damaged.scenes.json").read_text())
    assert data["skipped_frames"] >= 1 and data["num_shots"] >= 1


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_gpu_segmentation_matches_cpu(cache, clip, precision):
    cpu = sseg.segment(clip.path, detector="transnetv2", device="cpu")
    gpu = sseg.segment(clip.path, detector="transnetv2", device="cuda", precision=precision)
    assert [s.start_frame for s in gpu.shots] == [s.start_frame for s in cpu.shots]
    tolerance = 1e-3 if precision == "fp32" else 5e-2
    np.testing.assert_allclose(gpu.probabilities, cpu.probabilities, atol=tolerance)
