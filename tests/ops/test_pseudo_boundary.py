"""Pseudo-boundary search vs brute force over every boundary tuple (both modes, padding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pb_bruteforce import brute_force

from sseg.ops import pseudo_boundaries, pseudo_boundaries_reference
from sseg.ops.pseudo_boundary_bassl import dtw_boundaries_loop

MAX_L = {2: 64, 3: 32, 4: 18, 5: 13}  # keeps the brute force cheap
MARGIN = 1e-3  # boundaries are compared exactly when the optimum is unique by this much
NOISE = 2e-6  # float32 error bound on scores per unit of scale (tie tolerance: 1e-5)


@st.composite
def problems(draw, ks=(2, 3, 4, 5)):
    k = draw(st.sampled_from(ks))
    n = draw(st.integers(k, MAX_L[k]))
    pad = draw(st.integers(0, 5))
    anchors = sorted(draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True)))
    dim = draw(st.sampled_from([1, 2, 7, 32]))
    kind = draw(st.sampled_from(["gauss", "clusters", "scaled"]))
    garbage = draw(st.sampled_from(["nan", "inf", "huge", "random"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "clusters":  # few prototypes plus noise: scene-like structure
        protos = rng.normal(size=(3, dim))
        x = protos[rng.integers(0, 3, size=n)] + 0.3 * rng.normal(size=(n, dim))
    else:
        x = rng.normal(size=(n, dim))
        if kind == "scaled":
            x *= 10.0 ** rng.uniform(-3, 3, size=(n, 1))
    filler = {
        "nan": np.full((pad, dim), np.nan),
        "inf": np.full((pad, dim), np.inf),
        "huge": np.full((pad, dim), 1e30),
        "random": rng.normal(size=(pad, dim)),
    }[garbage]
    x = np.concatenate([x, filler]).astype(np.float32)
    return x, anchors, n


def _run(fn, x, anchors, n, mode):
    bounds, scores = fn(
        torch.from_numpy(x)[None], torch.tensor([anchors]), torch.tensor([n]), mode=mode
    )
    assert bounds.dtype == torch.int64 and scores.dtype == torch.float32
    return tuple(bounds[0].tolist()), float(scores[0])


def _check_against_brute(fn, problem, mode):
    x, anchors, n = problem
    expected, best, clearance, _ = brute_force(x, anchors, n, mode)
    got, score = _run(fn, x, anchors, n, mode)
    for k, b in enumerate(got):
        assert anchors[k] <= b < anchors[k + 1]
    scale = float(len(anchors)) if mode == "mean" else float(n)
    # the chosen tuple scores within the tie tolerance (1e-5 * scale) of the optimum
    assert score == pytest.approx(best, abs=2e-5 * scale + 1e-5)
    if clearance > NOISE * scale:  # the tie rule's answer is unambiguous in float32
        assert got == expected


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("mode", ["mean", "sum", "mean_others"])
@_SETTINGS
@given(problem=problems(ks=(2,)))
def test_k2_matches_brute_force(mode, problem):
    _check_against_brute(pseudo_boundaries, problem, mode)
    _check_against_brute(pseudo_boundaries_reference, problem, mode)


@pytest.mark.parametrize("mode", ["mean", "sum", "mean_others"])
@_SETTINGS
@given(problem=problems(ks=(3, 4, 5)))
def test_k3_to_5_match_brute_force(mode, problem):
    _check_against_brute(pseudo_boundaries, problem, mode)
    _check_against_brute(pseudo_boundaries_reference, problem, mode)


@settings(max_examples=100, deadline=None)
@given(problem=problems(ks=(2,)))
def test_sum_mode_k2_is_bassl_argmax_of_prefix_sums(problem):
    x, anchors, n = problem
    xv = x[:n].astype(np.float64)
    norm = np.linalg.norm(xv, axis=1) + 1e-8
    sims = (xv @ xv[anchors].T) / (norm[:, None] * norm[anchors][None, :])
    gain = np.cumsum(sims[:, 0] - sims[:, 1])[anchors[0] : anchors[1]]
    order = np.sort(gain)
    got, _ = _run(pseudo_boundaries, x, anchors, n, "sum")
    if len(order) == 1 or order[-1] - order[-2] > MARGIN:
        assert got == (anchors[0] + int(np.argmax(gain)),)


@settings(max_examples=60, deadline=None)
@given(problem=problems(ks=(2, 3, 4, 5)))
def test_sum_mode_equals_per_sequence_dtw(problem):
    x, anchors, n = problem
    expected, _, _, margin = brute_force(x, anchors, n, "sum")
    got, _ = _run(pseudo_boundaries, x, anchors, n, "sum")
    dtw = dtw_boundaries_loop(torch.from_numpy(x)[None], torch.tensor([anchors]), torch.tensor([n]))
    if margin > MARGIN * n:  # a clear optimum: the DTW (no tie rule) finds it too
        assert got == expected == tuple(dtw[0].tolist())


@pytest.mark.parametrize("mode", ["mean", "sum", "mean_others"])
def test_garbage_after_length_is_ignored(mode):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(64, 40, 16, generator=gen)
    lengths = torch.randint(5, 31, (64,), generator=gen)
    anchors = torch.stack(
        [torch.sort(torch.randperm(int(n), generator=gen)[:4]).values for n in lengths]
    )
    base_b, base_s = pseudo_boundaries(x, anchors, lengths, mode)
    for fill in (float("nan"), float("inf"), 1e30, -5.0):
        y = x.clone()
        y[torch.arange(40)[None, :] >= lengths[:, None]] = fill
        b, s = pseudo_boundaries(y, anchors, lengths, mode)
        assert torch.equal(b, base_b) and torch.equal(s, base_s)
        rb, rs = pseudo_boundaries_reference(y, anchors, lengths, mode)
        assert torch.equal(rb, base_b)
        torch.testing.assert_close(rs, base_s)
    # trimming the padding away changes nothing either
    for i in range(8):
        n = int(lengths[i])
        b, s = pseudo_boundaries(x[i : i + 1, :n], anchors[i : i + 1], mode=mode)
        assert torch.equal(b[0], base_b[i]) and s[0] == base_s[i]
