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
from sseg.cli import main
from sseg.modeling.model import SceneModel
from sseg.segmentation import demo
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

    from sseg.modeling.context import ContextConfig

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


def test_segment_on_cpu_imports_neither_open_clip_torchvision_nor_triton(cache, clip, tmp_path):
    import os
    import subprocess
    import sys

    demo.ensure_demo_model()  # built here (with open_clip), with its image-tower cache
    out = tmp_path / "out"
    code = (
        "import json, sys; from sseg.cli import main; "
        f"rc = main(['segment', {str(clip.path)!r}, '-o', {str(out)!r}, '--detector', "
        "'content', '--min-shot-len', '3', '--device', 'cpu', '-q']); "
        "print(json.dumps([rc, [m for m in ('open_clip', 'torchvision', 'timm', 'triton') "
        "if m in sys.modules]]))"
    )
    env = {**os.environ, "SSEG_CACHE_DIR": str(cache)}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [0, []]
    assert json.loads((out / "two_scenes.scenes.json").read_text())["num_shots"] == 4


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


# --- output checks before work, output selection, many inputs -------------------------


def _no_work(monkeypatch):
    """Make any model load or decode fail the test: the command must stop before them."""
    import sseg.segmentation.pipeline
    import sseg.segmentation.video

    def forbidden(*_args, **_kwargs):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(sseg.segmentation.pipeline, "load_scene_model", forbidden)
    monkeypatch.setattr(sseg.segmentation.pipeline, "segment", forbidden)
    monkeypatch.setattr(sseg.segmentation.video, "open_video", forbidden)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-o", "{file}/out"], "cannot create the output folder: {file} is not a folder"),
        (["-o", "{file}"], "output path exists and is not a folder"),
        (["--split-filename", "x"], "--split-filename goes with --split-video"),
        (["--copy"], "--copy goes with --split-video"),
        (["--image-format", "png"], "--image-format goes with --save-images"),
        (["--save-images", "--num-images", "2", "--image-filename", "$SCENE_NUMBER"], "same name"),
        (["--save-images", "--num-images", "0"], "--num-images must be 1 or more"),
        (["--num-images", "2"], "--num-images goes with --save-images"),
        (
            ["--name", "x", "-i", "{copy}"],
            "--name gives one file name stem, but there are 2 inputs",
        ),
        (["{folder}"], "would write the same output files"),
        (["{empty}"], "folder holds no video files"),
        (["{missing}"], "missing.mp4: file not found"),
    ],
)
def test_bad_outputs_and_inputs_stop_before_any_work(
    clip, tmp_path, capsys, monkeypatch, extra, message
):
    note = tmp_path / "notes.txt"
    note.write_text("not a folder")
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "two_scenes.mkv").write_bytes(b"same stem as the clip")
    (tmp_path / "empty").mkdir()
    (tmp_path / "copy.mp4").write_bytes(b"")
    names = {
        "file": str(note),
        "clip": str(clip.path),
        "copy": str(tmp_path / "copy.mp4"),
        "folder": str(folder),
        "empty": str(tmp_path / "empty"),
        "missing": str(tmp_path / "missing.mp4"),
    }
    extra = [arg.format(**names) for arg in extra]
    if "-o" not in extra:
        extra += ["-o", str(tmp_path / "out")]
    _no_work(monkeypatch)
    assert main(["segment", str(clip.path), *extra, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sseg segment: error:")
    assert message.format(**names) in err
    assert not (tmp_path / "out").exists()


def test_split_template_problems_stop_before_any_work(clip, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/ffmpeg")
    argv = ["segment", str(clip.path), "-o", str(tmp_path / "o"), "--split-video"]
    assert main([*argv, "--split-filename", "$VIDEO_NAME-$SCENE"]) == 2
    assert "unknown variable $SCENE" in capsys.readouterr().err
    assert main([*argv, "--split-filename", "$SCENE_NUMBER.webm"]) == 2
    assert "re-encoded clips are H.264/AAC" in capsys.readouterr().err
    (tmp_path / "o" / "two_scenes.scenes.json").mkdir(parents=True)
    assert main(argv) == 2
    assert "two_scenes.scenes.json: an output file would replace" in capsys.readouterr().err


def _plan(argv: list[str]):
    from sseg.cli import build_parser
    from sseg.commands import segment

    args = build_parser().parse_args(["segment", *argv])
    return segment._output_plan(args, segment._jobs(args))


def test_formats_add_up_and_the_default_set_is_in_help(clip, tmp_path, capsys):
    out = ["-o", str(tmp_path / "o")]
    assert _plan([str(clip.path), *out]).formats == ("json", "csv", "shot_csv")
    assert _plan([str(clip.path), *out, "--html", "--edl"]).formats == (
        "json",
        "csv",
        "shot_csv",
        "edl",
        "html",
    )
    only = _plan([str(clip.path), *out, "--html", "--no-default-formats", "--csv"])
    assert only.formats == ("csv", "html")
    assert _plan([str(clip.path), *out, "--no-default-formats"]).formats == ()
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the default set (JSON, scene CSV, shot CSV) is always written" in text
    assert "--no-default-formats" in text and "--keep-going" in text


def test_many_inputs_load_the_model_once_and_print_a_summary(
    cache, clip, tmp_path, capsys, monkeypatch
):
    import sseg.segmentation.pipeline

    folder = tmp_path / "folder"
    folder.mkdir()
    write_video(folder / "b.mp4", [[6, 5]], fps=10, seed=2)
    write_video(folder / "c.mkv", [[7]], fps=10, seed=3)
    (folder / "notes.txt").write_text("not a video, not an input")
    loads = []
    real = sseg.segmentation.pipeline.load_scene_model
    monkeypatch.setattr(
        sseg.segmentation.pipeline,
        "load_scene_model",
        lambda *a, **k: loads.append(a) or real(*a, **k),
    )
    out = tmp_path / "out"
    argv = ["segment", str(clip.path), str(folder), str(clip.path), "-o", str(out)]
    assert main([*argv, "--detector", "content", "--min-shot-len", "3", "-q"]) == 0
    assert len(loads) == 1
    stdout = capsys.readouterr().out
    assert "Summary: 3 videos, 3 done, 0 failed" in stdout
    rows = stdout.split("Summary:")[1].strip().splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["0", "0", "0"]
    assert [row.split()[1] for row in rows] == ["4", "2", "1"]  # shots per video
    assert _files(out) == sorted(
        f"{stem}.{end}"
        for stem in ("two_scenes", "b", "c")
        for end in ("scenes.json", "scenes.csv", "shots.csv")
    )


def test_keep_going_reports_one_exit_status_per_video(cache, clip, tmp_path, capsys):
    bad = _write(tmp_path / "text.mp4", b"hello, not a video\n" * 10)
    missing = tmp_path / "missing.mp4"
    second = write_video(tmp_path / "second.mp4", [[6]], fps=10, seed=4)
    out = tmp_path / "out"
    base = ["segment", "-o", str(out), "--detector", "content", "--min-shot-len", "3", "-q"]
    inputs = [str(clip.path), str(bad), str(missing), str(second.path)]
    assert main([*base, *inputs, "--keep-going"]) == 3  # the first failure's status
    captured = capsys.readouterr()
    rows = captured.out.split("Summary:")[1].strip().splitlines()
    assert rows[0] == "4 videos, 2 done, 2 failed"
    assert [row.split()[0] for row in rows[2:]] == ["0", "3", "2", "0"]
    assert (
        "text.mp4 (not a video file" in captured.out
        and "missing.mp4 (file not found)" in captured.out
    )
    assert captured.err.count("sseg segment: error:") == 2
    assert "second.scenes.json" in _files(out) and "text.scenes.json" not in _files(out)
    # without --keep-going: stop at the first failure, the rest not run
    out2 = tmp_path / "out2"
    argv = [*base[:1], "-o", str(out2), *base[3:], str(bad), str(second.path)]
    assert main(argv) == 3
    captured = capsys.readouterr()
    assert "1 failed, 1 not run" in captured.out
    assert captured.err.strip().startswith("sseg segment: error:") and "text.mp4" in captured.err
    assert "second.scenes.json" not in _files(out2)


@pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="needs ffmpeg")
def test_save_images_and_stream_copy_clips_end_to_end(cache, clip, tmp_path, capsys):
    import av

    out = tmp_path / "out"
    argv = [
        "segment", str(clip.path), "-o", str(out), "--detector", "content",
        "--min-shot-len", "3", "-q", "--threshold", "0", "--save-images", "--num-images", "2",
        "--split-video", "--copy", "--split-filename", "$VIDEO_NAME-clip-$SCENE_NUMBER",
        "--no-default-formats", "--shot-csv",
    ]  # fmt: skip
    assert main(argv) == 0
    files = _files(out)
    clips = [f for f in files if "-clip-" in f]
    assert clips == [f"two_scenes-clip-00{i}.mp4" for i in (1, 2, 3, 4)]  # threshold 0: 4
    assert len([f for f in files if f.endswith(".jpg")]) == 8  # 2 per scene
    assert "two_scenes.shots.csv" in files and "two_scenes.scenes.json" not in files
    with av.open(str(out / clips[0])) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) >= 1
    capsys.readouterr()
