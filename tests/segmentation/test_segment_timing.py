"""Stream timestamps (variable frame rate), display rotation and gradual transitions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sseg.segmentation.pipeline import SegmentationResult, detect_shots
from sseg.segmentation.scenes import group_scenes
from sseg.segmentation.video import open_video
from sseg.testing.videos import (
    random_look,
    random_style,
    render,
    write_frames,
    write_transition_video,
)

# First half 25 fps, second half 10 fps: the cut at frame 30 is at 1.2 s; the average
# frame rate (60 frames in 4.2 s) would put it at 2.1 s.
VFR_TIMES = [i * 0.04 for i in range(30)] + [1.2 + i * 0.1 for i in range(30)]


def _two_shots(n_a: int, n_b: int, size=(64, 48), seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    looks, styles = [random_look(rng), random_look(rng)], [random_style(rng, i) for i in (0, 1)]
    width, height = size
    return [render(looks[0], styles[0], t, width, height) for t in range(n_a)] + [
        render(looks[1], styles[1], t, width, height) for t in range(n_b)
    ]


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    write_frames(path, _two_shots(30, 30), fps=25, times=VFR_TIMES)
    return path


def test_frame_times_are_the_stream_timestamps(vfr_clip):
    video = open_video(vfr_clip)
    frames = list(video.frames(size=(32, 24)))
    assert [f.index for f in frames] == list(range(60))
    np.testing.assert_allclose([f.time for f in frames], VFR_TIMES, atol=1e-6)
    assert frames[10].duration == pytest.approx(0.04) and frames[40].duration == pytest.approx(0.1)
    assert video.end_time == pytest.approx(4.2, abs=0.07)  # last frame's duration is a guess


@pytest.mark.parametrize("detector", ["content", "transnetv2"])
def test_variable_frame_rate_cut_is_at_its_timestamp(vfr_clip, detector):
    shots, _ = detect_shots(vfr_clip, detector=detector, min_shot_frames=3)
    assert [(s.start_frame, s.end_frame) for s in shots] == [(0, 30), (30, 60)]
    assert shots[0].end_time == shots[1].start_time == pytest.approx(1.2)
    assert shots[1].end_time == pytest.approx(4.2, abs=0.07)


def test_time_and_frame_bounds_on_variable_frame_rate(vfr_clip):
    shots, _ = detect_shots(vfr_clip, detector="content", start="2.0s", end="3.5s")
    # 2.0 s is frame 38 (1.2 s + 8 x 0.1 s); frames before 3.5 s end at frame 53.
    assert (shots[0].start_frame, shots[0].start_time) == (38, pytest.approx(2.0))
    assert (shots[-1].end_frame, shots[-1].end_time) == (53, pytest.approx(3.5))
    shots, _ = detect_shots(vfr_clip, detector="content", start="10", end="45")
    assert (shots[0].start_frame, shots[0].start_time) == (10, pytest.approx(0.4))
    assert [s.start_frame for s in shots[1:]] == [30]
    assert (shots[-1].end_frame, shots[-1].end_time) == (45, pytest.approx(2.7))


def _result(path: Path, shots) -> SegmentationResult:
    info = open_video(path).info
    probs = np.ones(len(shots))
    return SegmentationResult(info, shots, probs, 0.5, group_scenes(shots, probs, 0.5))


def test_time_based_outputs_use_timestamps(vfr_clip):
    from sseg.outputs import format_module
    from sseg.segmentation.timecode import smpte_at

    shots, _ = detect_shots(vfr_clip, detector="content", min_shot_frames=3)
    result = _result(vfr_clip, shots)
    assert "00:00:01.200 --> " in format_module("vtt").render(result)
    assert "\n2,31,00:00:01.200,1.200," in format_module("csv").render(result)
    assert "START=1200" in format_module("ffmetadata").render(result)
    edl = format_module("edl").render(result).splitlines()
    assert edl[3].split()[4] == smpte_at(0, result.video.fps)
    assert edl[7].split()[4] == smpte_at(1.2, result.video.fps)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program")
def test_split_video_cuts_by_time_without_duplicating_frames(vfr_clip, tmp_path):
    from sseg.outputs.split_video import split_video

    shots, _ = detect_shots(vfr_clip, detector="content", min_shot_frames=3)
    parts = split_video(_result(vfr_clip, shots), tmp_path, "vfr")
    counts, spans = [], []
    for part in parts:
        frames = list(open_video(part).frames(size=(32, 24)))
        counts.append(len(frames))
        spans.append(frames[-1].time - frames[0].time)
    assert counts == [30, 30]
    assert spans == [pytest.approx(29 * 0.04, abs=1e-3), pytest.approx(29 * 0.1, abs=1e-3)]


def _has_display_matrix_writer() -> bool:
    import av

    return hasattr(av.video.stream.VideoStream, "set_display_rotation")


@pytest.mark.skipif(not _has_display_matrix_writer(), reason="PyAV cannot write display matrices")
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_applied_to_sizes_keyframes_and_thumbnails(tmp_path, rotation):
    import torch

    from sseg.segmentation.keyframe_features import encode_video_keyframes
    from sseg.segmentation.keyframes import keyframe_indices, keyframes_for_shots, scaled_size

    frames = _two_shots(12, 12, size=(96, 64))
    for frame in frames:
        frame[:16, :16] = 255  # white marker in the coded top-left corner
        frame[:16, -16:] = 0  # black marker in the coded top-right corner
    path = tmp_path / f"rot{rotation}.mp4"
    write_frames(path, frames, fps=10, rotation=rotation)
    video = open_video(path)
    upright = rotation == 180
    assert (video.info.width, video.info.height) == ((96, 64) if upright else (64, 96))
    assert video.info.rotation == rotation
    shown = next(iter(video.frames())).rgb
    assert shown.shape == ((64, 96, 3) if upright else (96, 64, 3))
    # Where the corners are shown after turning the frame clockwise by `rotation`.
    white, black = {90: ("tr", "br"), 180: ("br", "bl"), 270: ("bl", "tl")}[rotation]

    def corner(name: str) -> float:
        rows = slice(0, 12) if name[0] == "t" else slice(-12, None)
        cols = slice(0, 12) if name[1] == "l" else slice(-12, None)
        return float(shown[rows, cols].mean())

    assert corner(white) > 230 and corner(black) < 25

    shots, _ = detect_shots(path, detector="content", min_shot_frames=3)
    assert [s.start_frame for s in shots] == [0, 12]
    keyframes = keyframes_for_shots(path, shots)
    assert keyframes.shape[2:4] == ((224, 336) if upright else (336, 224))
    # The detector's pass gives the same keyframe pictures beside its small frames.
    size = scaled_size(video.info.width, video.info.height)
    beside = {
        f.index: f.keyframe.rgb() for f in video.frames((48, 27), draft=True, keyframe_size=size)
    }
    for row, pictures in zip(keyframe_indices(shots), keyframes, strict=True):
        assert all(np.array_equal(beside[int(i)], p) for i, p in zip(row, pictures, strict=True))

    class Mean(torch.nn.Module):
        def encode_image(self, x):
            return x.mean((2, 3))

    _, thumbs = encode_video_keyframes(Mean(), None, open_video(path), shots)
    assert thumbs.shape[2:4] == ((96, 144) if upright else (96, 64))


@pytest.mark.parametrize("detector", ["content", "transnetv2"])
def test_fade_through_black_is_one_boundary(tmp_path, detector):
    clip = write_transition_video(tmp_path / "fade.mp4", "fade")
    shots, _ = detect_shots(clip.path, detector=detector, min_shot_frames=3)
    assert len(shots) == 2
    assert abs(shots[1].start_frame - clip.shot_starts[1]) <= 2


def test_dissolve_is_a_boundary_for_transnetv2(tmp_path):
    clip = write_transition_video(tmp_path / "dissolve.mp4", "dissolve")
    shots, _ = detect_shots(clip.path, detector="transnetv2")
    assert len(shots) == 2
    assert abs(shots[1].start_frame - clip.shot_starts[1]) <= 2


def test_fade_cuts_and_merge_units():
    from sseg.segmentation.shot_detect import cuts_from_fades, merge_fade_cuts

    levels = np.array([100, 100, 80, 50, 20, 5, 4, 5, 30, 60, 90, 100, 100, 3, 3], float)
    fades = cuts_from_fades(levels)
    assert fades == [(6, 1, 11)]  # dark run 5..7 -> cut at 6; ramps widen it to 1..11
    assert merge_fade_cuts([4, 9, 20], fades) == [6, 20]
    assert cuts_from_fades(np.array([2, 2, 50, 60])) == []  # fade in from black at the start


@pytest.mark.parametrize("detector", ["content", "transnetv2"])
def test_detection_progress_bar_ends_at_100_percent(vfr_clip, monkeypatch, detector):
    import io

    from tqdm import tqdm

    import sseg.segmentation.shot_detect as shot_detect

    bars: list[tqdm] = []

    def recording_bar(total, desc, quiet):
        bars.append(tqdm(total=total + 17, desc=desc, file=io.StringIO()))  # a wrong estimate
        return bars[-1]

    monkeypatch.setattr(shot_detect, "_bar", recording_bar)
    detect_shots(vfr_clip, detector=detector, min_shot_frames=3)
    assert bars[0].n == bars[0].total == 60


def test_draft_frames_are_area_scaled_full_decodes_of_every_frame(tmp_path):
    from sseg.testing.videos import write_video

    clip = write_video(
        tmp_path / "mpeg4.mp4", [[9, 11], [10]], fps=10, size=(640, 480), codec="mpeg4"
    )
    video = open_video(clip.path)
    draft = list(video.frames(size=(48, 27), draft=True))
    full = list(video.frames(size=(48, 27)))
    assert [f.index for f in draft] == [f.index for f in full] == list(range(30))
    assert draft[0].rgb.shape == (27, 48, 3)
    assert np.abs(draft[5].rgb.astype(int) - full[5].rgb).mean() < 12  # same picture
    shots, _ = detect_shots(clip.path, detector="content", min_shot_frames=3)
    assert [s.start_frame for s in shots] == clip.shot_starts


def test_batched_transnetv2_windows_match_one_at_a_time():
    from sseg.segmentation.shot_detect import transnetv2_probs

    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (260, 27, 48, 3), dtype=np.uint8)
    frames[120:] //= 3
    one = transnetv2_probs(iter(frames), "cpu", batch_size=1)
    batched = transnetv2_probs(iter(frames), "cpu", batch_size=3)
    np.testing.assert_allclose(one, batched, atol=1e-5)
    # Passes running at once in threads: same probabilities, handed over in frame order.
    chunks: list[np.ndarray] = []
    threaded = transnetv2_probs(iter(frames), "cpu", batch_size=1, workers=3,
                                on_scored=chunks.append)  # fmt: skip
    np.testing.assert_allclose(one, threaded, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate(chunks), threaded)
    assert [len(c) for c in chunks] == [50] * 5 + [10]
