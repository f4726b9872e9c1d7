"""Scene-boundary metrics: hand-computed cases and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseg.evaluation import metrics


def _reference_ap(probs, labels):
    """Direct definition: sum over distinct thresholds t (descending) of (R_t - R_prev) P_t."""
    probs, labels = np.asarray(probs, float), np.asarray(labels) == 1
    total, prev_recall = 0.0, 0.0
    for t in sorted(set(probs.tolist()), reverse=True):
        chosen = probs >= t
        tp = (chosen & labels).sum()
        rec = tp / labels.sum()
        total += (rec - prev_recall) * tp / chosen.sum()
        prev_recall = rec
    return total


def test_ap_hand_computed():
    # sorted: 0.9(+) P=1 R=.5 | 0.8(-) P=.5 R=.5 | 0.7(+) P=2/3 R=1 | 0.6(-) P=.5 R=1
    # AP = .5*1 + 0*.5 + .5*(2/3) + 0 = 5/6
    assert metrics.average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(5 / 6)


def test_ap_groups_tied_scores():
    # threshold .5 takes both tied shots: P=1/2 R=1/2; threshold .2: P=2/3 R=1
    # AP = .5*.5 + .5*(2/3) = 7/12 (not 0.75, which splitting the tie favourably would give)
    assert metrics.average_precision([0.5, 0.5, 0.2], [0, 1, 1]) == pytest.approx(7 / 12)
    assert metrics.average_precision([0.5, 0.5, 0.2], [1, 0, 1]) == pytest.approx(7 / 12)


def test_unknown_labels_are_ignored():
    probs = [0.9, 0.99, 0.8, 0.7, 0.6]
    labels = [1, metrics.UNKNOWN, 0, 1, 0]
    assert metrics.average_precision(probs, labels) == pytest.approx(5 / 6)
    assert metrics.f1_score(probs, labels) == metrics.f1_score([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])


def test_ap_without_positives_is_zero():
    assert metrics.average_precision([0.3, 0.4], [0, 0]) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5).map(lambda x: x / 5), st.integers(0, 1)),
        min_size=1,
        max_size=40,
    )
)
def test_ap_matches_definition_and_is_invariant_to_monotone_maps(pairs):
    probs = np.array([p for p, _ in pairs])
    labels = np.array([y for _, y in pairs])
    if labels.sum() == 0:
        return
    ap = metrics.average_precision(probs, labels)
    assert ap == pytest.approx(_reference_ap(probs, labels))
    assert metrics.average_precision(np.exp(3 * probs) - 7, labels) == pytest.approx(ap)
    assert metrics.average_precision(probs**3, labels) == pytest.approx(ap)


def test_f1_hand_computed():
    # predicted [1,0,1,0] vs gt [1,1,0,0]: TP=1 FP=1 FN=1 -> 2/(2+1+1) = 0.5
    assert metrics.f1_score([0.9, 0.4, 0.6, 0.1], [1, 1, 0, 0]) == pytest.approx(0.5)
    # threshold is inclusive: 0.5 counts as a boundary
    assert metrics.f1_score([0.5], [1]) == 1.0


def test_recall_at_3s_uses_shot_end_times_strictly():
    ends = np.arange(1, 11, dtype=float)  # 1 s shots, shot i ends at i+1
    labels = np.zeros(10, int)
    labels[2] = 1  # ends at 3 s
    near = np.zeros(10)
    near[4] = 1  # ends at 5 s: 2 s away, 2 shots away -> hit
    far = np.zeros(10)
    far[5] = 1  # ends at 6 s: exactly 3 s away -> miss (strict)
    assert metrics.recall_at_seconds(near, labels, ends) == 1.0
    assert metrics.recall_at_seconds(far, labels, ends) == 0.0
    assert metrics.recall(near, labels) == 0.0  # exact recall misses it


def test_recall_at_3s_neighbourhood_is_five_shots():
    ends = np.arange(1, 21, dtype=float) * 0.1  # tiny shots: time never limits
    labels = np.zeros(20, int)
    labels[3] = 1
    five = np.zeros(20)
    five[8] = 1
    six = np.zeros(20)
    six[9] = 1
    assert metrics.recall_at_seconds(five, labels, ends) == 1.0
    assert metrics.recall_at_seconds(six, labels, ends) == 0.0


def test_miou_hand_computed():
    starts = np.arange(6, dtype=float)
    ends = starts + 1
    gt = [0, 1, 0, 0, 1, 0]  # GT scenes [0,2) [2,5); shot 5 after the last boundary: no scene
    pred = [0.1, 0.2, 0.3, 0.1, 0.9, 0.0]  # one predicted scene [0,5)
    # GT->pred: [0,2)~[0,5) = 2/5, [2,5)~[0,5) = 3/5 -> 0.5
    # pred->GT: [0,5) best is [2,5) = 3/5 -> 0.6 ; mIoU = (0.5 + 0.6) / 2 = 0.55
    assert metrics.scene_miou(pred, gt, starts, ends) == pytest.approx(0.55)
    # predicted scenes [0,3) [3,5): every best match is 2/3 in both directions
    pred2 = [0, 0, 1, 0, 1, 0]
    assert metrics.scene_miou(pred2, gt, starts, ends) == pytest.approx(2 / 3)
    # no predicted boundary at all scores 0
    assert metrics.scene_miou(np.zeros(6), gt, starts, ends) == 0.0


def test_miou_is_over_time_not_shot_count():
    starts = np.array([0.0, 1.0, 2.0, 12.0])
    ends = np.array([1.0, 2.0, 12.0, 13.0])
    gt = [1, 0, 1, 1]  # scenes [0,1) [1,12) [12,13)
    pred = [0, 0, 1, 1]  # scenes [0,12) [12,13)
    # GT->pred: 1/12, 11/12, 1 -> 2/3 ; pred->GT: 11/12, 1 -> 23/24
    expected = 0.5 * (2 / 3 + 23 / 24)
    assert metrics.scene_miou(pred, gt, starts, ends) == pytest.approx(expected)


def test_evaluate_pools_ap_and_averages_recall_per_video():
    probs = {"a": [0.9, 0.2, 0.8], "b": [0.6, 0.7]}
    labels = {"a": [1, 0, 1], "b": [0, 1]}
    times = {
        "a": (np.array([0.0, 1, 2]), np.array([1.0, 2, 3])),
        "b": (np.array([0.0, 10]), np.array([10.0, 20])),
    }
    out = metrics.evaluate(probs, labels, times)
    pooled = metrics.average_precision([0.9, 0.2, 0.8, 0.6, 0.7], [1, 0, 1, 0, 1])
    assert out["AP"] == pytest.approx(pooled)
    # pooled: 0.9+ 0.8+ 0.7+ 0.6- 0.2- -> AP 1.0 ; per-video both 1.0
    assert out["AP"] == pytest.approx(1.0) and out["mAP"] == pytest.approx(1.0)
    # F1 pooled: predicted 0.9,0.8,0.6,0.7 -> TP 3 FP 1 FN 0 -> 6/7
    assert out["F1"] == pytest.approx(6 / 7)
    assert out["Recall"] == 1.0 and out["videos"] == 2 and out["shots"] == 5
    # b: GT scenes [0,20); predicted [0,10) [10,20) -> GT->pred 0.5, pred->GT 0.5 -> 0.5
    assert out["per_video"]["b"]["mIoU"] == pytest.approx(0.5)
    assert out["per_video"]["a"]["mIoU"] == pytest.approx(1.0)
    assert out["mIoU"] == pytest.approx(0.75)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 1), min_size=2, max_size=30), min_size=1, max_size=4))
def test_perfect_prediction_scores_one(label_lists):
    label_lists = [ls[:-1] + [1] for ls in label_lists]  # every video has a boundary
    labels = {f"v{i}": np.array(ls) for i, ls in enumerate(label_lists)}
    probs = {k: v.astype(float) for k, v in labels.items()}
    times = {}
    for k, v in labels.items():
        starts = np.cumsum(np.r_[0.0, np.full(v.size - 1, 2.5)])
        times[k] = (starts, starts + 2.5)
    out = metrics.evaluate(probs, labels, times)
    for name in ("AP", "mAP", "F1", "Recall", "Recall@3s", "mIoU"):
        assert out[name] == pytest.approx(1.0), name


def test_evaluate_rejects_mismatched_inputs():
    with pytest.raises(ValueError):
        metrics.evaluate({"a": [0.1]}, {"b": [1]}, {"a": ([0.0], [1.0])})
    with pytest.raises(ValueError):
        metrics.evaluate({"a": [0.1, 0.2]}, {"a": [1]}, {"a": ([0.0], [1.0])})
