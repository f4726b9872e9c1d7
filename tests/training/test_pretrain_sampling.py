"""Anchor and window sampling: exact distributions, determinism, rank sharding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sseg.training.sampling import WindowIndex, anchor_probabilities, sample_anchors

DURATIONS = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
CHI2_DF14_P001 = 36.123  # chi-square critical value, 14 degrees of freedom, p = 0.001


def _pair_probabilities(p: np.ndarray) -> dict[tuple[int, int], float]:
    """Exact P({i, j}) of two successive draws without replacement."""
    return {
        (i, j): p[i] * p[j] / (1 - p[i]) + p[j] * p[i] / (1 - p[j])
        for i, j in itertools.combinations(range(len(p)), 2)
    }


def test_per_draw_probabilities():
    p = anchor_probabilities(DURATIONS, "idw")
    np.testing.assert_allclose(p, (1 / DURATIONS) / (1 / DURATIONS).sum())
    q = anchor_probabilities(DURATIONS, "dw")
    np.testing.assert_allclose(q, DURATIONS / DURATIONS.sum())
    np.testing.assert_allclose(anchor_probabilities(DURATIONS, "uniform"), 1 / 6)
    assert np.isfinite(anchor_probabilities(np.array([0.0, 1.0]), "idw")).all()
    with pytest.raises(ValueError, match="unknown anchor mode"):
        anchor_probabilities(DURATIONS, "nope")


@pytest.mark.parametrize("mode", ["idw", "dw"])
def test_pair_frequencies_match_the_specified_distribution(mode):
    """Chi-square goodness of fit of sampled anchor pairs to the exact distribution."""
    rng = np.random.default_rng(0)
    trials = 20_000
    expected = _pair_probabilities(anchor_probabilities(DURATIONS, mode))
    counts = dict.fromkeys(expected, 0)
    for _ in range(trials):
        a, b = sample_anchors(rng, DURATIONS, 2, mode)
        counts[(int(a), int(b))] += 1
    chi2 = sum((counts[k] - trials * e) ** 2 / (trials * e) for k, e in expected.items())
    assert chi2 < CHI2_DF14_P001, chi2
    # and the other mode's distribution is rejected: the test has power
    other = _pair_probabilities(anchor_probabilities(DURATIONS, "dw" if mode == "idw" else "idw"))
    chi2_other = sum((counts[k] - trials * e) ** 2 / (trials * e) for k, e in other.items())
    assert chi2_other > 100 * CHI2_DF14_P001


def test_idw_prefers_short_shots_and_dw_long_ones():
    rng = np.random.default_rng(1)
    durations = rng.permutation(np.geomspace(0.3, 30.0, 17))
    freq = {m: np.zeros(17) for m in ("idw", "dw", "uniform")}
    for mode in freq:
        for _ in range(3000):
            freq[mode][sample_anchors(rng, durations, 3, mode)] += 1
    order = np.argsort(durations)
    short, long_ = order[:4], order[-4:]
    assert freq["idw"][short].sum() > 3 * freq["idw"][long_].sum()
    assert freq["dw"][long_].sum() > 3 * freq["dw"][short].sum()
    rho_idw = np.corrcoef(np.argsort(np.argsort(freq["idw"])), np.argsort(order))[0, 1]
    rho_dw = np.corrcoef(np.argsort(np.argsort(freq["dw"])), np.argsort(order))[0, 1]
    assert rho_idw < -0.9 and rho_dw > 0.9
    np.testing.assert_allclose(freq["uniform"] / 3000, 3 / 17, atol=0.04)


@pytest.mark.parametrize("mode", ["idw", "dw", "uniform", "side"])
def test_anchors_sorted_distinct_in_range_and_deterministic(mode):
    for k in (2, 3, 5):
        a = sample_anchors(np.random.default_rng(5), DURATIONS, k, mode)
        b = sample_anchors(np.random.default_rng(5), DURATIONS, k, mode)
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.int64 and len(a) == k
        assert (np.diff(a) > 0).all() and a[0] >= 0 and a[-1] < len(DURATIONS)
        if mode == "side":
            assert a[0] == 0 and a[-1] == len(DURATIONS) - 1
    with pytest.raises(ValueError):
        sample_anchors(np.random.default_rng(0), DURATIONS[:2], 3, mode)
    with pytest.raises(ValueError):
        sample_anchors(np.random.default_rng(0), DURATIONS, 1, mode)


def test_window_index_covers_every_shot_and_shards_by_rank():
    counts = [40, 17, 5, 1, 23]
    index = WindowIndex(counts, window=17, min_shots=3, stride=4)
    assert index.skipped == [3]
    covered = {v: np.zeros(n, bool) for v, n in enumerate(counts)}
    for v, s, n in zip(index.videos, index.starts, index.lengths, strict=True):
        assert s + n <= counts[v] and n == min(17, counts[v])
        covered[v][s : s + n] = True
    assert all(c.all() for v, c in covered.items() if v != 3)
    # one epoch split over 2 ranks x 3 per step: disjoint, and a permutation of all windows
    n = len(index)
    seen = []
    for step in range(n // 6 + 1):
        r0 = index.batch(seed=9, step=step, rank=0, world=2, size=3)
        r1 = index.batch(seed=9, step=step, rank=1, world=2, size=3)
        seen += [(w.video, w.start) for w in r0 + r1]
    first_epoch = seen[:n]
    assert len(set(first_epoch)) == n
    assert index.batch(9, 4, 1, 2, 3) == index.batch(9, 4, 1, 2, 3)
    assert index.batch(9, 4, 1, 2, 3) != index.batch(10, 4, 1, 2, 3)
