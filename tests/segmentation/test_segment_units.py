"""Timecodes, scene grouping, keyframe placement and detector post-processing."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseg.errors import InputError
from sseg.segmentation.keyframes import keyframe_indices
from sseg.segmentation.scenes import boundary_shots, group_scenes
from sseg.segmentation.shot_detect import (
    cuts_from_content,
    cuts_from_transitions,
    rgb_to_hsv,
    shots_from_cuts,
)
from sseg.segmentation.timecode import format_smpte, format_timecode, parse_timecode, to_frame
from sseg.shots import Shot


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("125", 5.0),  # frames at 25 fps
        ("12.5s", 12.5),
        ("12.5", 12.5),
        ("3s", 3.0),
        ("01:02:03.500", 3723.5),
        ("02:03", 123.0),
        ("00:00:00", 0.0),
        (50, 2.0),
        (1.25, 1.25),
    ],
)
def test_parse_timecode_forms(text, seconds):
    assert parse_timecode(text, 25.0) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "-1s", "00:61:00", "1:2:3:4", "", "12.5ms", "nans"])
def test_parse_timecode_rejects(text):
    with pytest.raises(InputError, match="invalid timecode"):
        parse_timecode(text, 25.0)


@given(st.integers(min_value=0, max_value=360_000_000))
def test_format_parse_roundtrip_to_the_millisecond(millis):
    text = format_timecode(millis / 1000)
    assert len(text.split(":")[0]) >= 2 and text[-4] == "."
    assert round(parse_timecode(text, 30.0) * 1000) == millis


def test_smpte_and_frames():
    assert format_smpte(0, 25) == "00:00:00:00"
    assert format_smpte(25 * 3661 + 7, 25) == "01:01:01:07"
    assert to_frame(1.0, 25) == 25
    assert to_frame(0.039, 25) == 0


def _shots(lengths: list[int], fps: float = 10.0) -> list[Shot]:
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return [
        Shot(int(s), int(s + n), s / fps, (s + n) / fps)
        for s, n in zip(starts, lengths, strict=True)
    ]


def test_group_scenes_runs_end_at_boundary_shots():
    shots = _shots([5, 5, 5, 5, 5])
    scenes = group_scenes(shots, np.array([0.1, 0.9, 0.5, 0.2, 0.3]), threshold=0.5)
    assert [s.shot_indices for s in scenes] == [[0, 1], [2], [3, 4]]
    assert (scenes[0].start_frame, scenes[0].end_frame) == (0, 10)
    assert scenes[-1].end_time == pytest.approx(2.5)
    with pytest.raises(ValueError):
        group_scenes(shots, np.zeros(4))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=40),
    st.floats(0.01, 1.0),
)
def test_scenes_partition_the_shots(probs, threshold):
    shots = _shots([3] * len(probs))
    scenes = group_scenes(shots, np.array(probs), threshold)
    covered = [i for s in scenes for i in s.shot_indices]
    assert covered == list(range(len(probs)))
    assert boundary_shots(np.array(probs), threshold)[-1] == len(probs) - 1
    for scene in scenes[:-1]:
        assert probs[scene.last_shot] >= threshold
    ends = {s.last_shot for s in scenes}
    assert all(p < threshold for i, p in enumerate(probs[:-1]) if i not in ends)


def test_keyframes_sit_at_centres_of_thirds():
    shots = [Shot(0, 30, 0, 1), Shot(30, 31, 1, 1.04), Shot(31, 33, 1.04, 1.1)]
    idx = keyframe_indices(shots, k=3)
    assert idx[0].tolist() == [5, 15, 25]
    assert idx[1].tolist() == [30, 30, 30]  # one-frame shot: all three are that frame
    assert idx[2].tolist() == [31, 32, 32]
    assert (idx >= np.array([[s.start_frame] for s in shots])).all()
    assert (idx < np.array([[s.end_frame] for s in shots])).all()


def test_hsv_matches_colorsys_in_opencv_ranges():
    rgb = np.random.default_rng(0).integers(0, 256, (200, 3), dtype=np.uint8)
    ours = rgb_to_hsv(rgb)
    for (r, g, b), (h, s, v) in zip(rgb, ours, strict=True):
        eh, es, ev = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        if es > 0:
            diff = abs(h - eh * 180) % 180
            assert min(diff, 180 - diff) < 0.01
        assert s == pytest.approx(es * 255, abs=0.01)
        assert v == pytest.approx(ev * 255, abs=0.01)


def test_transition_runs_become_single_cuts():
    probs = np.array([0, 0.9, 0, 0, 0.6, 0.7, 0.8, 0, 0, 0.95])
    # hard cut flagged at frame 1 -> new shot at 2; run 4..6 -> middle 5 -> new shot at 6;
    # a flag on the last frame has no following shot.
    assert cuts_from_transitions(probs, 0.5) == [2, 6]
    assert cuts_from_transitions(np.zeros(5), 0.5) == []


def test_content_cuts_respect_min_shot_length():
    scores = np.array([0, 40, 0, 40, 0, 0, 40, 10, 27])
    assert cuts_from_content(scores, 27, 1) == [1, 3, 6, 8]
    assert cuts_from_content(scores, 27, 3) == [3, 6]


def test_shots_from_cuts_are_contiguous_and_use_frame_indices():
    frames = np.array([10, 11, 12, 14, 15, 16])  # frame 13 was unreadable
    shots = shots_from_cuts(frames, [3], end_frame=17, fps=10.0)
    assert [(s.start_frame, s.end_frame) for s in shots] == [(10, 14), (14, 17)]
    assert shots[1].start_time == pytest.approx(1.4)


def test_transnetv2_waits_only_for_the_device_while_models_load(monkeypatch):
    """TransNetV2 needs (device, precision), known once torch is imported: it does not wait
    for the SceneModel and CLIP, and a loading error before that point reaches it."""
    import threading

    import sseg.segmentation.pipeline as pipeline

    release = threading.Event()

    def slow_load(on_device=None, **_):
        on_device("cpu", "bf16")
        release.wait(10)
        return "models"

    monkeypatch.setattr(pipeline, "load_models", slow_load)
    loading = pipeline.load_models_in_background()
    assert pipeline._device_and_precision(loading) == ("cpu", "bf16")
    assert not loading.done()  # still loading the models
    release.set()
    assert loading.result(10) == "models"

    def failing_load(on_device=None, **_):
        raise InputError("no such device")

    monkeypatch.setattr(pipeline, "load_models", failing_load)
    with pytest.raises(InputError, match="no such device"):
        pipeline._device_and_precision(pipeline.load_models_in_background())
