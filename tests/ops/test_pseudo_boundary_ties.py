"""Tie rule: among tuples within the tie tolerance of the best, the lexicographically
smallest wins; checked on one-hot shots against exact (Fraction) brute force."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pb_bruteforce import all_tuples, pick_within, tie_tolerance

from sseg.ops import pseudo_boundaries, pseudo_boundaries_reference

BACKENDS = [pseudo_boundaries, pseudo_boundaries_reference]


@st.composite
def one_hot_problems(draw):
    """Shots are one-hot vectors: every cosine is exactly 0.0 or 1.0 in float32."""
    k = draw(st.integers(2, 5))
    n = draw(st.integers(k, {2: 40, 3: 20, 4: 14, 5: 12}[k]))
    classes = draw(st.integers(1, 3))
    cats = draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n))
    anchors = sorted(draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True)))
    return np.array(cats), anchors


def _exact_scores(cats: np.ndarray, anchors: list[int], mode: str):
    """Exact (Fraction) score of every tuple, in lexicographic order."""
    n = len(cats)
    tuples = all_tuples(anchors).tolist()
    scores = []
    for bounds in tuples:
        edges = [-1, *bounds, n - 1]
        total = Fraction(0)
        for k in range(len(anchors)):
            seg = cats[edges[k] + 1 : edges[k + 1] + 1]
            hits = Fraction(int((seg == cats[anchors[k]]).sum()))
            total += hits / len(seg) if mode == "mean" else hits
        scores.append(total)
    return tuples, scores


def _expected(cats: np.ndarray, anchors: list[int], mode: str):
    """Tie rule in exact arithmetic, or None where a score sits within float32 noise of
    the tie threshold (then the rule cannot be checked on this problem)."""
    tuples, scores = _exact_scores(cats, anchors, mode)
    tol = Fraction(tie_tolerance(len(cats), len(anchors), mode))
    index, clearance = pick_within(scores, tol)
    scale = len(cats) if mode == "sum" else len(anchors)
    return tuple(tuples[index]) if clearance > 2e-6 * scale else None


def _solve(fn, cats, anchors, mode):
    x = torch.eye(3)[torch.from_numpy(cats)][None]
    bounds, _ = fn(x, torch.tensor([anchors]), mode=mode)
    return tuple(bounds[0].tolist())


@pytest.mark.parametrize("mode", ["sum", "mean"])
@pytest.mark.parametrize("fn", BACKENDS, ids=["op", "reference"])
@settings(max_examples=120, deadline=None)
@given(problem=one_hot_problems())
def test_ties_go_to_lexicographically_smallest_tuple(fn, mode, problem):
    cats, anchors = problem
    expected = _expected(cats, anchors, mode)
    if expected is not None:
        assert _solve(fn, cats, anchors, mode) == expected


@pytest.mark.parametrize("mode", ["sum", "mean"])
@pytest.mark.parametrize("fn", BACKENDS, ids=["op", "reference"])
def test_identical_shots_put_every_boundary_at_its_anchor(fn, mode):
    x = torch.zeros(3, 12, 5)
    x[..., 1] = 2.0  # every cosine is exactly 1.0
    anchors = torch.tensor([[0, 4, 9], [2, 3, 11], [5, 6, 7]])
    bounds, scores = fn(x, anchors, mode=mode)
    assert torch.equal(bounds, anchors[:, :-1])
    if mode == "mean":
        torch.testing.assert_close(scores, torch.full((3,), 3.0))


@pytest.mark.parametrize("fn", BACKENDS, ids=["op", "reference"])
def test_exact_tie_that_float32_rounding_splits(fn):
    # (1, 2, 9) and (1, 8, 9) both score 1 + 1 + 3/7 + 1/3 exactly, but the DP's
    # partial sums differ in the last bit; the tolerance keeps the earliest tuple.
    cats = np.array([0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0])
    _, scores = _exact_scores(cats, [0, 2, 9, 10], "mean")
    assert scores.count(max(scores)) >= 2
    assert _solve(fn, cats, [0, 2, 9, 10], "mean") == (1, 2, 9)
    assert _expected(cats, [0, 2, 9, 10], "mean") == (1, 2, 9)


@pytest.mark.parametrize("fn", BACKENDS, ids=["op", "reference"])
def test_lexicographic_not_last_boundary_first(fn):
    # Exactly two optimal tuples, (1, 4) and (2, 3), both scoring 7/3: the earliest
    # first boundary wins even though the other has the earlier last boundary.
    cats = np.array([0, 0, 1, 2, 1, 0, 0])
    anchors = [0, 3, 5]
    exact = {}
    for b0, b1 in all_tuples(anchors).tolist():
        edges = [-1, b0, b1, len(cats) - 1]
        exact[(b0, b1)] = sum(
            Fraction(
                int((cats[edges[k] + 1 : edges[k + 1] + 1] == cats[anchors[k]]).sum()),
                edges[k + 1] - edges[k],
            )
            for k in range(3)
        )
    best = max(exact.values())
    assert sorted(t for t, v in exact.items() if v == best) == [(1, 4), (2, 3)]
    assert _solve(fn, cats, anchors, "mean") == (1, 4)
