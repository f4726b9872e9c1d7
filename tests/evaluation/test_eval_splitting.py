"""Test-time shot splitting: geometry, feature choice and mapping back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sseg.evaluation.splitting import nearest_keyframe, split_long_shots
from sseg.shots import ShotSequence


def _seq(durations, labels=None):
    ends = np.cumsum(durations)
    return ShotSequence("v", ends - np.asarray(durations, float), ends, labels=labels)


def _feats(n, k=3, d=4):
    # value encodes (shot, keyframe) so the chosen keyframe can be read back
    shot = torch.arange(n, dtype=torch.float32)[:, None, None]
    key = torch.arange(k, dtype=torch.float32)[None, :, None]
    return (shot * 10 + key).expand(n, k, d).clone()


def test_long_shot_split_into_three_with_own_keyframes():
    seq = _seq([4.0, 30.0, 5.0], labels=[0, 1, 0])
    plan = split_long_shots(seq, _feats(3), tau=10, n=3)
    assert plan.pieces.tolist() == [1, 3, 1]
    assert plan.origin.tolist() == [0, 1, 1, 1, 2]
    assert plan.part.tolist() == [0, 0, 1, 2, 0]
    np.testing.assert_allclose(plan.sequence.starts, [0, 4, 14, 24, 34])
    np.testing.assert_allclose(plan.sequence.ends, [4, 14, 24, 34, 39])
    # unsplit shots keep their keyframes; sub-shot j repeats keyframe j of shot 1
    assert plan.keyframes[0, :, 0].tolist() == [0, 1, 2]
    assert plan.keyframes[1, :, 0].tolist() == [10, 10, 10]
    assert plan.keyframes[2, :, 0].tolist() == [11, 11, 11]
    assert plan.keyframes[3, :, 0].tolist() == [12, 12, 12]
    assert plan.sequence.labels.tolist() == [0, -100, -100, 1, 0]
    assert plan.n_split == 1


def test_merge_takes_last_subshot_and_reports_inner_boundaries():
    seq = _seq([4.0, 30.0, 5.0])
    plan = split_long_shots(seq, _feats(3), tau=10)
    sub = [0.1, 0.7, 0.2, 0.9, 0.3]
    np.testing.assert_allclose(plan.merge(sub), [0.1, 0.9, 0.3])
    assert plan.intra_shot_boundaries(sub, 0.5) == [(1, pytest.approx(14.0), pytest.approx(0.7))]
    assert plan.intra_shot_boundaries(sub, 0.1) == [
        (1, pytest.approx(14.0), pytest.approx(0.7)),
        (1, pytest.approx(24.0), pytest.approx(0.2)),
    ]
    with pytest.raises(ValueError):
        plan.merge([0.1, 0.2])


def test_no_split_at_or_below_tau_and_switch_off():
    seq = _seq([10.0, 9.9, 2.0])
    plan = split_long_shots(seq, _feats(3), tau=10)
    assert plan.n_split == 0 and len(plan.sequence) == 3
    off = split_long_shots(_seq([100.0, 50.0]), _feats(2), tau=None)
    assert off.n_split == 0
    assert torch.equal(off.keyframes, _feats(2))


def test_nearest_keyframe_for_other_counts():
    assert [nearest_keyframe(j, 3, 3) for j in range(3)] == [0, 1, 2]
    # 2 sub-shots, centres at 1/4 and 3/4 -> keyframe thirds 0 and 2
    assert [nearest_keyframe(j, 2, 3) for j in range(2)] == [0, 2]
    # 6 sub-shots: two per keyframe third
    assert [nearest_keyframe(j, 6, 3) for j in range(6)] == [0, 0, 1, 1, 2, 2]
    plan = split_long_shots(_seq([60.0]), _feats(1), tau=10, n=6)
    assert plan.keyframes[:, 0, 0].tolist() == [0, 0, 1, 1, 2, 2]


def test_numpy_fp16_memmap_like_input_keeps_dtype():
    feats = _feats(2).numpy().astype(np.float16)
    plan = split_long_shots(_seq([20.0, 1.0]), feats, tau=10)
    assert plan.keyframes.dtype == torch.float16 and plan.keyframes.shape == (4, 3, 4)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0.05, 80.0), min_size=1, max_size=25),
    st.sampled_from([None, 5.0, 10.0, 30.0]),
    st.integers(1, 5),
)
def test_split_geometry_properties(durations, tau, n):
    seq = _seq(durations)
    plan = split_long_shots(seq, _feats(len(durations)), tau=tau, n=n)
    sub = plan.sequence
    # contiguous sub-shots covering exactly each original shot
    for i in range(len(seq)):
        mine = plan.origin == i
        assert sub.starts[mine][0] == pytest.approx(seq.starts[i])
        assert sub.ends[mine][-1] == seq.ends[i]
        assert (sub.ends[mine] - sub.starts[mine]).sum() == pytest.approx(durations[i])
        if tau is None or durations[i] <= tau or n == 1:
            assert mine.sum() == 1
        else:
            assert mine.sum() == n
            np.testing.assert_allclose(sub.ends[mine] - sub.starts[mine], durations[i] / n)
    # round trip: merging one-hot-by-original probabilities recovers them
    base = np.linspace(0, 1, len(seq))
    np.testing.assert_allclose(plan.merge(base[plan.origin]), base)
    assert plan.intra_shot_boundaries(np.zeros(len(sub))) == []
