"""Output formats rendered from a hand-made result, and atomic all-or-nothing writing."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil

import numpy as np
import pytest

from sseg import outputs
from sseg.errors import InputError
from sseg.outputs import (
    csv_format,
    edl_format,
    html_format,
    images,
    naming,
    split_video,
    vtt_format,
)
from sseg.segmentation.pipeline import IntraShotBoundary, SegmentationResult
from sseg.segmentation.scenes import group_scenes
from sseg.segmentation.video import VideoInfo
from sseg.shots import Shot

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


# --- shot list CSV, file-name templates, clips and images ------------------------------


def test_shot_csv_lists_every_shot_in_the_scene_csv_layout(result):
    rows = list(csv.reader(io.StringIO(outputs.format_module("shot_csv").render(result))))
    assert tuple(rows[0]) == csv_format.COLUMNS
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6"]
    third = dict(zip(rows[0], rows[3], strict=True))  # shot frames 76..137
    assert third["Start Frame"] == "77" and third["End Frame"] == "137"
    assert third["Length (frames)"] == "61" and third["Start Timecode"] == "00:00:03.040"
    assert outputs.DEFAULT_FORMATS == ("json", "csv", "shot_csv")
    paths = outputs.output_paths("out", "clip", outputs.DEFAULT_FORMATS)
    assert paths["shot_csv"].name == "clip.shots.csv"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("$VIDEO_NAME-$SCENE_NUM", "unknown variable $SCENE_NUM"),
        ("$VIDEO_NAME-Scene", "every file would get the same name"),
        ("clips/$SCENE_NUMBER", "a file name, not a path"),
        ("cost$-$SCENE_NUMBER", "starts no variable"),
        ("  ", "empty"),
    ],
)
def test_bad_split_templates_are_input_errors(template, message):
    with pytest.raises(InputError, match=re.escape(message)):
        split_video.split_template(template)


def test_templates_fill_pyscenedetect_variables(result):
    with pytest.raises(InputError, match=r"write \$\{VIDEO_NAME\} when letters"):
        split_video.split_template("$VIDEO_NAME_$SCENE_NUMBER")
    template = split_video.split_template("${VIDEO_NAME}_${SCENE_NUMBER}_$START_FRAME-$END_FRAME")
    scene = result.scenes[1]
    name = split_video.clip_name(template, ".mp4", "movie", scene, total=3)
    assert name == "movie_002_30-137.mp4"
    timed = split_video.split_template("$VIDEO_NAME $START_TIME.mkv")
    assert split_video.clip_name(timed, ".mkv", "m", scene, 3) == "m 00;00;01.200.mkv"
    with pytest.raises(InputError, match=r"several input videos need \$VIDEO_NAME"):
        split_video.split_template("Scene-$SCENE_NUMBER", many_videos=True)
    assert naming.scene_number(4, 1200) == "0005" and naming.scene_number(0, 7) == "001"
    assert naming.image_number(0, 3) == "01" and naming.image_number(9, 12) == "010"


def test_clip_extension_follows_template_copy_and_codec_rules():
    default = split_video.split_template(None)
    assert split_video.clip_extension(default, "a.mkv", copy=False) == ".mp4"
    assert split_video.clip_extension(default, "a.MKV", copy=True) == ".mkv"
    assert split_video.clip_extension(default, "a.xyz", copy=True) == ".mp4"
    webm = split_video.split_template("$SCENE_NUMBER.webm")
    assert split_video.clip_extension(webm, "a.webm", copy=True) == ".webm"
    with pytest.raises(InputError, match="H.264/AAC, which .webm cannot hold"):
        split_video.clip_extension(webm, "a.webm", copy=False)
    with pytest.raises(InputError, match="unknown clip container .abc"):
        split_video.clip_extension(split_video.split_template("$SCENE_NUMBER.abc"), "a.mp4", True)


def test_ffmpeg_commands_for_reencode_and_stream_copy(result):
    scene = result.scenes[1]
    encode = split_video.ffmpeg_command("ffmpeg", "in.mkv", scene, "t.tmp", ".mp4", copy=False)
    copy = split_video.ffmpeg_command("ffmpeg", "in.mkv", scene, "t.tmp", ".mkv", copy=True)
    for command in (encode, copy):
        text = " ".join(command)
        assert "-ss 1.199500 -i in.mkv -t 4.280000" in text and command[-1] == "t.tmp"
        assert command.index("-ss") < command.index("-i")  # input seeking
    assert "libx264" in encode and encode[encode.index("-f") + 1] == "mp4"
    assert "-c copy" in " ".join(copy) and "libx264" not in copy
    assert copy[copy.index("-f") + 1] == "matroska"


def test_split_video_copy_uses_template_and_source_container(result, tmp_path, monkeypatch):
    log = tmp_path / "calls.txt"
    fake = _fake_ffmpeg(
        tmp_path, f'echo "$@" >> {log}\nfor a; do last="$a"; done\necho x > "$last"\n'
    )
    monkeypatch.setattr(split_video.shutil, "which", lambda name: fake)
    template = split_video.split_template("$VIDEO_NAME-part$SCENE_NUMBER")
    result.video = VideoInfo("clips/movie.mkv", FPS, 250, 10.0, 64, 48, "h264")
    written = split_video.split_video(result, tmp_path / "o", "movie", copy=True, template=template)
    assert [p.name for p in written] == [f"movie-part00{i}.mkv" for i in (1, 2, 3)]
    assert all("-c copy" in line for line in log.read_text().splitlines())


@pytest.mark.parametrize(
    ("start", "end", "n", "margin", "expected"),
    [
        (0, 30, 3, 1, [1, 14, 28]),  # start + margin, middle, end - 1 - margin
        (30, 137, 1, 1, [83]),  # one image: the middle frame
        (10, 12, 3, 1, [10, 10, 11]),  # a 2-frame scene stays inside the scene
        (5, 6, 4, 1, [5, 5, 5, 5]),
        (0, 100, 4, 0, [0, 37, 62, 99]),
    ],
)
def test_image_frames_spread_over_the_scene(start, end, n, margin, expected):
    frames = images.image_frames(start, end, n, margin)
    assert frames == expected
    assert all(start <= f < max(end, start + 1) for f in frames)


def test_image_template_and_options_are_checked():
    with pytest.raises(InputError, match="same name"):
        images.image_template("$VIDEO_NAME-$SCENE_NUMBER", per_scene=3)
    assert images.image_template("$VIDEO_NAME-$SCENE_NUMBER", per_scene=1)
    assert images.image_template("$VIDEO_NAME-$FRAME_NUMBER", per_scene=3)
    for bad, message in [
        ({"per_scene": 0}, "--num-images must be 1 or more"),
        ({"quality": 101}, "--image-quality"),
        ({"image_format": "gif"}, "--image-format"),
        ({"height": 0}, "--image-height"),
    ]:
        with pytest.raises(InputError, match=message):
            images.ImageOptions(**bad)


def _real_clip_result(path):
    """A generated 10 fps clip (shots of 12, 8, 10 frames) and a result with 2 scenes."""
    from sseg.testing.videos import write_video

    video = write_video(path, [[12, 8], [10]], fps=10, seed=3)
    bounds = [*video.shot_starts, video.num_frames]
    shots = [Shot(a, b, a / 10, b / 10) for a, b in zip(bounds, bounds[1:], strict=False)]
    probs = np.array([0.1, 0.9, 0.2])
    info = VideoInfo(str(video.path), 10.0, video.num_frames, video.num_frames / 10, 64, 48, "h264")
    return video, SegmentationResult(info, shots, probs, 0.5, group_scenes(shots, probs, 0.5))


def test_save_images_decodes_the_chosen_frames(tmp_path):
    video, res = _real_clip_result(tmp_path / "v.mp4")
    options = images.ImageOptions(
        per_scene=2,
        image_format="png",
        height=24,
        template=images.image_template("$VIDEO_NAME-$SCENE_NUMBER-$IMAGE_NUMBER-f$FRAME_NUMBER", 2),
    )
    written = images.save_images(res, tmp_path / "img", "v", options)
    assert [p.name for p in written] == [
        "v-001-01-f1.png",
        "v-001-02-f18.png",
        "v-002-01-f21.png",
        "v-002-02-f28.png",
    ]
    from PIL import Image

    with Image.open(written[0]) as image:
        assert image.size == (32, 24) and image.format == "PNG"
    # the image is the frame it names: compare with a direct decode of frame 18
    from sseg.segmentation.video import open_video

    frame = next(f for f in open_video(video.path).frames(size=(32, 24), wanted={18}))
    with Image.open(written[1]) as image:
        assert np.abs(np.asarray(image).astype(int) - frame.rgb).mean() < 1.0


def test_output_dir_checks_before_any_work(tmp_path):
    from sseg.outputs.paths import check_output_dir, check_output_files

    note = tmp_path / "notes.txt"
    note.write_text("x")
    with pytest.raises(InputError, match="notes.txt is not a folder"):
        check_output_dir(note / "out" / "deeper")
    with pytest.raises(InputError, match="exists and is not a folder"):
        check_output_dir(note)
    check_output_dir(tmp_path / "new" / "folder")  # creatable: fine
    (tmp_path / "clip.scenes.json").mkdir()
    with pytest.raises(InputError, match="would replace the folder"):
        check_output_files([tmp_path / "clip.scenes.csv", tmp_path / "clip.scenes.json"])
    assert not (tmp_path / "new").exists()  # checking creates nothing


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program")
@pytest.mark.parametrize("copy", [False, True])
def test_split_video_with_real_ffmpeg(tmp_path, copy):
    import av

    _, res = _real_clip_result(tmp_path / "v.mkv")
    written = split_video.split_video(res, tmp_path / "clips", "v", copy=copy)
    assert [p.name for p in written] == (
        ["v-Scene-001.mkv", "v-Scene-002.mkv"] if copy else ["v-Scene-001.mp4", "v-Scene-002.mp4"]
    )
    for path, scene in zip(written, res.scenes, strict=True):
        with av.open(str(path)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        if copy:  # starts at the key frame at or before the scene: never fewer frames
            assert frames >= scene.num_frames
        else:  # re-encoded: frame exact
            assert frames == scene.num_frames
