"""One decoding pass for shots and keyframes: the collector, the settled starts, and the
result, which must equal a separate keyframe pass whatever the detector settles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sseg.segmentation.keyframe_collector import KeyframeCollector
from sseg.segmentation.keyframe_features import (
    KeyframeEncoding,
    encode_collected_keyframes,
    encode_video_keyframes,
)
from sseg.segmentation.keyframes import keyframe_indices, scaled_size
from sseg.segmentation.shot_detect import SETTLE_EVERY, SETTLE_LAG, detect_shots
from sseg.segmentation.video import open_video
from sseg.shots import Shot
from sseg.testing.videos import write_transition_video, write_video


class MeanStd(torch.nn.Module):
    """Cheap stand-in image encoder: per-channel mean and spread of the CLIP input."""

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], dim=1)


def _picture(index: int) -> np.ndarray:
    return np.full((4, 6, 3), index % 256, dtype=np.uint8)


def _shot(start: int, end: int) -> Shot:
    return Shot(start, end, start / 10, end / 10)


def test_settled_shots_hand_over_their_keyframes_and_drop_the_other_frames():
    handed: list[tuple[int, int]] = []
    collector = KeyframeCollector(
        3, on_keyframes=lambda items: handed.extend((i, j) for i, j, _ in items)
    )
    for index in range(60):
        collector.add(index, _picture(index))
    collector.settle([12, 30], frontier=40)
    expected = keyframe_indices([_shot(0, 12), _shot(12, 30)], 3)
    assert handed == [(int(i), j) for row in expected for j, i in enumerate(row)]
    # Open shot from 30, frontier 40: its first keyframe is at least 30 + 11 // 6 = 31.
    assert min(collector.frames) == 31 and max(collector.frames) == 59
    assert collector.kept_bytes == sum(p.nbytes for p in collector.frames.values())


def test_finish_gives_what_it_kept_and_names_what_it_dropped():
    collector = KeyframeCollector(3)
    for index in range(60):
        collector.add(index, _picture(index))
    collector.settle([30], frontier=50)  # nothing to hand over: no callback
    # The final detection moved the start from 30 to 20: the shot 0-20 needs frames
    # that were dropped when 0-30 was settled.
    pictures, missing = collector.finish([_shot(0, 20), _shot(20, 60)])
    wanted = set(keyframe_indices([_shot(0, 20), _shot(20, 60)], 3).reshape(-1).tolist())
    assert set(pictures) | missing == wanted
    assert missing == {3, 10, 16, 26}  # the shot 0-20, and 26 (before 30 + 20 // 6)
    assert all(np.array_equal(pictures[i], _picture(i)) for i in pictures)
    assert collector.frames == {} and collector.kept_bytes == 0


def test_a_memory_budget_drops_the_oldest_frames_first():
    one = _picture(0).nbytes
    collector = KeyframeCollector(3, max_bytes=10 * one)
    for index in range(25):
        collector.add(index, _picture(index))
    assert collector.peak_bytes <= 11 * one
    # Over budget (11 frames) it sheds down to half: 0-5 go at frame 10, 6-11 at 16,
    # 12-17 at 22, so 18-24 are left.
    assert sorted(collector.frames) == list(range(18, 25))
    pictures, missing = collector.finish([_shot(0, 25)])
    assert missing == {4, 12} and set(pictures) == {20}  # keyframes 4, 12, 20


@pytest.fixture(scope="module")
def cuts_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("single_pass") / "cuts.mp4"
    return write_video(path, [[14, 9, 30], [11, 40], [8, 25, 12]], fps=10, seed=7)


@pytest.fixture(scope="module")
def fade_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("single_pass") / "fade.mp4"
    return write_transition_video(path, "fade", shot_frames=60, transition_frames=24)


def _single_pass(path, detector: str, **collector_options):
    video = open_video(path)
    encoding = KeyframeEncoding(MeanStd(), None, batch_size=4, background=True)
    collector = KeyframeCollector(
        3,
        on_keyframes=lambda items: [encoding.add(i, rgb, j == 1) for i, j, rgb in items],
        **collector_options,
    )
    detection = detect_shots(video, detector=detector, min_shot_frames=3, keyframes=collector)
    feats, thumbs = encode_collected_keyframes(encoding, collector, video, detection.shots)
    return detection, collector, feats, thumbs


@pytest.mark.parametrize(
    ("clip", "detector", "budget"),
    [
        ("cuts_video", "content", None),
        ("cuts_video", "transnetv2", None),
        ("fade_video", "content", None),
        ("cuts_video", "content", 3),  # a tiny budget: most keyframes decoded again
    ],
)
def test_one_pass_equals_a_separate_keyframe_pass(request, clip, detector, budget):
    generated = request.getfixturevalue(clip)
    options = {}
    if budget is not None:
        width, height = scaled_size(*generated_size(generated.path))
        options["max_bytes"] = budget * width * height * 3
    detection, collector, feats, thumbs = _single_pass(generated.path, detector, **options)
    separate = detect_shots(open_video(generated.path), detector=detector, min_shot_frames=3)
    assert [s.start_frame for s in detection.shots] == [s.start_frame for s in separate.shots]
    assert len(detection.shots) >= 2
    expected, expected_thumbs = encode_video_keyframes(
        MeanStd(), None, open_video(generated.path), separate.shots, batch_size=5
    )
    assert torch.equal(feats, expected)
    assert np.array_equal(thumbs, expected_thumbs)
    assert bool(collector.refetch) == (budget is not None)  # decoded twice: only over budget
    if budget is None:  # settled as it went: these keyframes were handed over during it
        frames = len(detection.frame_indices)
        early = [s for s in detection.shots if s.end_frame < frames - SETTLE_LAG - SETTLE_EVERY]
        assert early and set(keyframe_indices(early, 3).reshape(-1).tolist()) <= collector.emitted


def generated_size(path) -> tuple[int, int]:
    info = open_video(path).info
    return info.width, info.height


def test_background_encoding_raises_the_workers_error_when_closed():
    class Broken(torch.nn.Module):
        def encode_image(self, x):
            raise RuntimeError("encoder exploded")

    encoding = KeyframeEncoding(Broken(), None, batch_size=1, background=True)
    encoding.add(0, np.zeros((32, 32, 3), np.uint8))  # a full batch: sent to the worker
    with pytest.raises(RuntimeError, match="encoder exploded"):
        encoding.close()


def test_a_frame_is_encoded_once_however_often_it_is_handed_over():
    calls: list[int] = []

    class Counting(MeanStd):
        def encode_image(self, x):
            calls.append(len(x))
            return super().encode_image(x)

    encoding = KeyframeEncoding(Counting(), None, batch_size=2)
    picture = np.zeros((32, 32, 3), np.uint8)
    for index in (5, 5, 7, 5, 7):
        encoding.add(index, picture)
    encoding.flush()
    assert calls == [2] and set(encoding.features) == {5, 7}
