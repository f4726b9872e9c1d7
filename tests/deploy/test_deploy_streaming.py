"""sseg.deploy.streaming.StreamingSegmenter: decisions W/2 shots late, equal to predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deploy_helpers import ATOL, DIM, random_videos, tiny_model

from sseg.deploy.streaming import StreamingSegmenter
from sseg.evaluation.splitting import split_long_shots
from sseg.shots import ShotSequence

pytestmark = pytest.mark.usefixtures("one_thread")


def _times(n: int, seed: int = 0, longest: float = 4.5) -> list[tuple[float, float]]:
    generator = torch.Generator().manual_seed(seed)
    durations = (torch.rand(n, generator=generator) * (longest - 0.5) + 0.5).tolist()
    times, t = [], 0.0
    for d in durations:
        times.append((t, t + d))
        t += d
    return times


def _stream(segmenter, keyframes, times):
    """Push a whole video; returns (decisions, shots received when each came)."""
    decisions, arrivals = [], []
    for i, (start, end) in enumerate(times):
        for decision in segmenter.push(keyframes[i], start, end):
            decisions.append(decision)
            arrivals.append(i + 1)
    return decisions, arrivals


@pytest.mark.parametrize("window", [1, 5, 7])
def test_stream_decisions_equal_offline_predict(window):
    model = tiny_model(window=window)
    segmenter = StreamingSegmenter(model, threshold=0.5)
    half = window // 2
    assert segmenter.lookahead == half
    for n in (0, 1, half, half + 1, 30):  # one segmenter, stream after stream
        keyframes = random_videos((n,), seed=n)[0]
        times = _times(n, seed=n)
        decisions, arrivals = _stream(segmenter, keyframes, times)
        assert segmenter.decided == max(0, n - half)
        # a fixed lookahead: shot i is decided when shot i + W/2 arrives
        assert [d.shot + half + 1 for d in decisions] == arrivals
        assert all(
            d.latency == pytest.approx(times[d.shot + half][1] - times[d.shot][1])
            for d in decisions
        )
        decisions += segmenter.flush()
        assert [d.shot for d in decisions] == list(range(n))
        assert all((d.part, d.parts) == (0, 1) for d in decisions)
        expected = model.predict(keyframes.float())
        got = torch.tensor([d.probability for d in decisions])
        torch.testing.assert_close(got, expected.reshape(-1), rtol=0, atol=ATOL)
        assert [d.is_boundary for d in decisions] == (expected >= 0.5).tolist()
        assert [d.time for d in decisions] == [end for _, end in times]
        if n:  # flushed decisions wait for the end of the stream
            assert decisions[-1].latency == 0.0
        assert segmenter.received == 0  # flush started a new stream


def test_stream_splits_long_shots_as_offline_splitting():
    model = tiny_model(window=7)
    n, tau = 25, 6.0
    keyframes = random_videos((n,), seed=3)[0]
    times = _times(n, seed=3, longest=15.0)
    segmenter = StreamingSegmenter(model, tau=tau, pieces=3)
    decisions, _ = _stream(segmenter, keyframes, times)
    decisions += segmenter.flush()
    seq = ShotSequence("v", np.array([s for s, _ in times]), np.array([e for _, e in times]))
    plan = split_long_shots(seq, keyframes, tau=tau, n=3)
    assert 3 <= plan.n_split < n
    expected = model.predict(plan.keyframes.float())
    got = torch.tensor([d.probability for d in decisions])
    torch.testing.assert_close(got, expected, rtol=0, atol=ATOL)
    assert [d.shot for d in decisions] == plan.origin.tolist()
    assert [d.part for d in decisions] == plan.part.tolist()
    assert [d.parts for d in decisions] == plan.pieces[plan.origin].tolist()
    np.testing.assert_allclose([d.time for d in decisions], plan.sequence.ends)
    last = [d.probability for d in decisions if d.part == d.parts - 1]
    np.testing.assert_allclose(last, plan.merge(expected.numpy()), rtol=0, atol=ATOL)


def test_threshold_and_lookahead_seconds():
    model = tiny_model(window=17)
    keyframes = random_videos((20,))[0]
    probs = model.predict(keyframes.float())
    threshold = float(probs.median())
    segmenter = StreamingSegmenter(model, threshold=threshold)
    decisions, _ = _stream(segmenter, keyframes, [(2.0 * i, 2.0 * i + 2.0) for i in range(20)])
    decisions += segmenter.flush()
    assert [d.is_boundary for d in decisions] == (probs >= threshold).tolist()
    assert decisions[0].latency == pytest.approx(16.0)  # 8 shots of 2 s
    assert segmenter.lookahead_seconds() == pytest.approx(8 * 2.67)


def test_bad_shots_are_refused_with_their_index():
    segmenter = StreamingSegmenter(tiny_model(window=5))
    segmenter.push(torch.zeros(3, DIM), 0.0, 1.0)
    with pytest.raises(ValueError, match="shot 1: keyframes must be"):
        segmenter.push(torch.zeros(DIM), 1.0, 2.0)
    with pytest.raises(ValueError, match="shot 1: keyframes"):
        segmenter.push(torch.zeros(2, DIM), 1.0, 2.0)
    with pytest.raises(ValueError, match="shot 1: needs finite start < end"):
        segmenter.push(torch.zeros(3, DIM), 2.0, 2.0)
    with pytest.raises(ValueError, match="before the previous shot"):
        segmenter.push(torch.zeros(3, DIM), -1.0, 2.0)
    assert segmenter.received == 1
    assert len(segmenter.flush()) == 1
    with pytest.raises(ValueError, match="tau"):
        StreamingSegmenter(tiny_model(window=5), tau=0.0)
