"""Output formats rendered from a hand-made result, and atomic all-or-nothing writing."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest

from sseg import outputs
from sseg.errors import InputError
from sseg.outputs import csv_format, edl_format, html_format, split_video, vtt_format
from sseg.pipeline import IntraShotBoundary, SegmentationResult
from sseg.scenes import group_scenes
from sseg.shots import Shot
from sseg.video import VideoInfo

FPS = 25.0


@pytest.fixture
def result() -> SegmentationResult:
    bounds = [0, 30, 76, 137, 187, 242, 250]
    shots = [Shot(a, b, a / FPS, b / FPS) for a, b in zip(bounds, bounds[1:], strict=False)]
    probs = np.array([0.8, 0.1, 0.55, 0.2, 0.3, 0.4])
    info = VideoInfo("clips/My Clip.mp4", FPS, 250, 10.0, 64, 48, "h264")
    keyframes = np.random.default_rng(0).integers(0, 255, (6, 3, 24, 32, 3), dtype=np.uint8)
    return SegmentationResult(
        video=info,
        shots=shots,
        probabilities=probs,
        threshold=0.5,
        scenes=group_scenes(shots, probs, 0.5),
        intra_shot_boundaries=[IntraShotBoundary(2, 4.0, 100, 0.7)],
        timings={"shot_detection": 1.0, "total": 2.0},
        detector="content",
        model="demo.safetensors",
        keyframes=keyframes,
    )


def test_json_lists_scenes_shots_and_probabilities(result):
    data = json.loads(outputs.format_module("json").render(result))
    assert data["num_scenes"] == 3 and data["num_shots"] == 6
    assert [s["shots"] for s in data["scenes"]] == [[0], [1, 2], [3, 4, 5]]
    assert data["scenes"][1]["start_frame"] == 30 and data["scenes"][1]["end_frame"] == 137
    assert data["scenes"][1]["end_timecode"] == "00:00:05.480"
    assert data["scenes"][1]["boundary_probability"] == pytest.approx(0.55)
    assert [s["ends_scene"] for s in data["shots"]] == [True, False, True, False, False, True]
    assert data["intra_shot_boundaries"][0]["frame"] == 100
    assert data["video"]["fps"] == FPS


def test_csv_follows_pyscenedetect_columns(result):
    rows = list(csv.reader(io.StringIO(csv_format.render(result))))
    assert tuple(rows[0]) == csv_format.COLUMNS
    assert len(rows) == 4
    second = dict(zip(rows[0], rows[2], strict=True))
    assert second["Scene Number"] == "2"
    assert second["Start Frame"] == "31"  # 1-based, as PySceneDetect
    assert second["End Frame"] == "137"
    assert second["Start Timecode"] == "00:00:01.200"
    assert second["Length (frames)"] == "107"
    assert float(second["Length (seconds)"]) == pytest.approx(107 / FPS)


def test_edl_vtt_ffmetadata(result):
    edl = edl_format.render(result)
    events = re.findall(r"^(\d{3})  AX .* (\S+) (\S+) (\S+) (\S+)$", edl, flags=re.M)
    assert [e[0] for e in events] == ["001", "002", "003"]
    assert events[1][1:3] == ("00:00:01:05", "00:00:05:12")  # source in/out (frames 30, 137)
    assert events[2][3] == events[1][4]  # record timeline is contiguous
    assert "FCM: NON-DROP FRAME" in edl
    vtt = vtt_format.render(result)
    assert vtt.startswith("WEBVTT\n")
    assert "00:00:01.200 --> 00:00:05.480\nScene 2" in vtt
    meta = outputs.format_module("ffmetadata").render(result)
    assert meta.startswith(";FFMETADATA1")
    assert meta.count("[CHAPTER]") == 3 and "START=1200\nEND=5480" in meta


def test_html_is_self_contained_with_plot_and_thumbnails(result):
    page = html_format.render(result)
    assert page.count("data:image/jpeg;base64,") == 6  # one thumbnail per shot
    assert "<svg" in page and "threshold 0.5" in page
    assert page.count("<circle") == 6
    assert "My Clip.mp4" in page
    assert not re.search(r'(src|href)="(https?:|/)', page)  # nothing external


def test_write_outputs_is_all_or_nothing(result, tmp_path, monkeypatch):
    written = outputs.write_outputs(result, tmp_path / "out", "clip", ("json", "csv", "vtt"))
    assert sorted(p.name for p in written) == [
        "clip.chapters.vtt",
        "clip.scenes.csv",
        "clip.scenes.json",
    ]
    assert all(p.stat().st_mode & 0o044 for p in written)  # readable beyond the owner
    target = tmp_path / "failing"

    def broken(_result):
        raise RuntimeError("disk full")

    monkeypatch.setattr(html_format, "render", broken)
    with pytest.raises(RuntimeError):
        outputs.write_outputs(result, target, "clip", ("json", "csv", "html"))
    assert not target.exists() or list(target.iterdir()) == []


def test_write_failure_removes_files_already_written(result, tmp_path, monkeypatch):
    import sseg.atomic

    calls = {"n": 0}
    real = sseg.atomic.atomic_path

    def flaky(path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("no space left on device")
        return real(path)

    monkeypatch.setattr(sseg.atomic, "atomic_path", flaky)
    with pytest.raises(OSError):
        outputs.write_outputs(result, tmp_path, "clip", ("json", "csv", "edl"))
    assert list(tmp_path.iterdir()) == []


def test_split_video_without_ffmpeg_is_a_clear_error(result, tmp_path, monkeypatch):
    monkeypatch.setattr(split_video.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="needs the ffmpeg program"):
        split_video.split_video(result, tmp_path, "clip")
    assert list(tmp_path.iterdir()) == []


def _fake_ffmpeg(folder, body: str):
    script = folder / "ffmpeg"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


def test_split_video_calls_ffmpeg_per_scene(result, tmp_path, monkeypatch):
    log = tmp_path / "calls.txt"
    # Records its arguments and writes the last one (the output file), as ffmpeg would.
    fake = _fake_ffmpeg(
        tmp_path, f'echo "$@" >> {log}\nfor a; do last="$a"; done\necho x > "$last"\n'
    )
    monkeypatch.setattr(split_video.shutil, "which", lambda name: fake)
    out = tmp_path / "out"
    written = split_video.split_video(result, out, "clip")
    assert [p.name for p in written] == [f"clip-Scene-00{i}.mp4" for i in (1, 2, 3)]
    calls = log.read_text().splitlines()
    assert len(calls) == 3
    # scene 2: 1.2 s .. 5.48 s, both ends 0.5 ms early (frames exactly at 1.2 s in, 5.48 s out)
    assert "-ss 1.199500" in calls[1] and "-t 4.280000" in calls[1]
    assert "-fps_mode passthrough" in calls[1]  # frames keep their timestamps (VFR)
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in written]


def test_split_video_failure_leaves_nothing(result, tmp_path, monkeypatch):
    from sseg.errors import VideoError

    fake = _fake_ffmpeg(tmp_path, 'echo "Invalid data found when processing input" >&2\nexit 1\n')
    monkeypatch.setattr(split_video.shutil, "which", lambda name: fake)
    out = tmp_path / "out"
    with pytest.raises(VideoError, match="ffmpeg could not cut scene 1: Invalid data"):
        split_video.split_video(result, out, "clip")
    assert not out.exists() or list(out.iterdir()) == []
