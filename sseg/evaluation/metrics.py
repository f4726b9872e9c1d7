"""Scene-boundary metrics following the MovieNet-SSeg protocol as BaSSL computes it.

Every metric takes per-shot boundary probabilities (``probs[i]`` = P(shot i is
the last shot of a scene)) and labels (1 boundary, 0 not, -100 unknown).

Conventions (see docs/evaluation.md):

* Shots labelled -100 are removed before anything is computed, exactly as if
  they were absent from the annotation (BaSSL only scores labelled shots).
* A shot is *predicted* a boundary according to the protocol (:data:`PROTOCOLS`):
  ``"bassl"`` (default) counts ``prob >= threshold`` for F1 (BaSSL's torchmetrics
  F1) but ``prob > threshold`` for Recall, Recall@3s and mIoU (BaSSL takes the
  argmax of the two-class softmax, and ``argmax`` picks "no boundary" on a 0.5
  tie); ``"inclusive"`` counts ``prob >= threshold`` everywhere.
* **AP(total)** (key ``"AP"``): average precision pooled over all labelled shots
  of all videos, ``sum_n (R_n - R_{n-1}) P_n`` over distinct score thresholds
  (ties grouped), equal to scikit-learn's ``average_precision_score``; 0.0 with
  no positives. **AP(avg)** (key ``"mAP"``): the same per video, averaged over
  videos that have a positive.
* **F1**: pooled over all labelled shots, ``2TP / (2TP + FP + FN)``; 0.0 if undefined.
* **Recall**: per video TP / (TP + FN) at the threshold, then averaged.
* **Recall@3s**: per video, a ground-truth boundary shot ``i`` is hit when a
  labelled shot ``j`` with ``|i - j| <= 5`` is predicted a boundary and its end
  time is within 3 s of shot ``i``'s end time (strictly less); then averaged.
* Recall metrics skip videos without any ground-truth boundary (BaSSL scores
  them 0; every MovieNet-SSeg video has boundaries, so the numbers agree there).
* **mIoU**: per video, scenes are built from labels as runs of labelled shots
  closed by a boundary shot; shots after the last boundary belong to no scene.
  A scene spans ``[start of its first shot, end of its last shot)`` in seconds;
  IoU is over time. mIoU = mean of (mean over GT scenes of the best IoU with a
  predicted scene) and (the same from predicted to GT); 0.0 for a video with
  no predicted boundary; then averaged over videos with at least one GT scene.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

UNKNOWN = -100
NEIGHBOUR_SHOTS = 5
RECALL_SECONDS = 3.0
PROTOCOLS = ("bassl", "inclusive")


def predicted_boundaries(probs, threshold: float = 0.5, strict: bool = False) -> np.ndarray:
    """Boolean boundary decisions: ``probs > threshold`` if ``strict`` else ``>=``."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs > threshold if strict else probs >= threshold


def strict_for(protocol: str) -> bool:
    """Whether Recall, Recall@3s and mIoU use ``prob > threshold`` under ``protocol``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return protocol == "bassl"


def _arrays(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if probs.shape != labels.shape:
        raise ValueError(f"{probs.shape[0]} probabilities for {labels.shape[0]} labels")
    return probs, labels


def average_precision(probs, labels) -> float:
    """Area under the step precision-recall curve (sklearn's ``average_precision_score``)."""
    probs, labels = _arrays(probs, labels)
    keep = labels != UNKNOWN
    probs, labels = probs[keep], labels[keep] == 1
    positives = int(labels.sum())
    if positives == 0:
        return 0.0
    order = np.argsort(-probs, kind="mergesort")
    probs, labels = probs[order], labels[order]
    # last index of every run of equal scores = one threshold
    last = np.r_[np.nonzero(np.diff(probs))[0], probs.size - 1]
    tp = np.cumsum(labels)[last]
    predicted = last + 1
    precision = tp / predicted
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _counts(probs, labels, threshold: float, strict: bool = False) -> tuple[int, int, int]:
    probs, labels = _arrays(probs, labels)
    keep = labels != UNKNOWN
    pred = predicted_boundaries(probs[keep], threshold, strict)
    gt = labels[keep] == 1
    return int((pred & gt).sum()), int((pred & ~gt).sum()), int((~pred & gt).sum())


def f1_score(probs, labels, threshold: float = 0.5) -> float:
    """F1 at ``prob >= threshold`` (either protocol); 0.0 with no positive and no prediction."""
    tp, fp, fn = _counts(probs, labels, threshold)
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom else 0.0


def recall(probs, labels, threshold: float = 0.5, strict: bool = False) -> float | None:
    """TP / (TP + FN) for one video; ``None`` when it has no ground-truth boundary."""
    tp, _, fn = _counts(probs, labels, threshold, strict)
    return tp / (tp + fn) if tp + fn else None


def recall_at_seconds(
    probs,
    labels,
    end_times,
    threshold: float = 0.5,
    seconds: float = RECALL_SECONDS,
    neighbours: int = NEIGHBOUR_SHOTS,
    strict: bool = False,
) -> float | None:
    """Share of GT boundaries with a predicted boundary within ``neighbours`` shots and
    ``seconds`` of end time; ``None`` when the video has no ground-truth boundary."""
    probs, labels = _arrays(probs, labels)
    end_times = np.asarray(end_times, dtype=np.float64).reshape(-1)
    if end_times.shape != labels.shape:
        raise ValueError(f"{end_times.shape[0]} end times for {labels.shape[0]} labels")
    known = labels != UNKNOWN
    hit_candidates = known & predicted_boundaries(probs, threshold, strict)
    gt = np.nonzero(known & (labels == 1))[0]
    if gt.size == 0:
        return None
    hits = 0
    for i in gt:
        lo, hi = max(0, i - neighbours), min(labels.size, i + neighbours + 1)
        close = np.abs(end_times[lo:hi] - end_times[i]) < seconds
        hits += bool(np.any(hit_candidates[lo:hi] & close))
    return hits / gt.size


def scenes_from_labels(labels, starts, ends) -> list[tuple[float, float]]:
    """Scenes as ``(start_time, end_time)``: runs of labelled shots closed by a 1.

    Unknown (-100) shots are skipped; shots after the last boundary form no scene.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    scenes = []
    first = None
    for i in np.nonzero(labels != UNKNOWN)[0]:
        if first is None:
            first = i
        if labels[i] == 1:
            scenes.append((float(starts[first]), float(ends[i])))
            first = None
    return scenes


def _interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = min(a[1], b[1]) - max(a[0], b[0])
    if inter <= 0:
        return 0.0
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def _directional_miou(source: list, target: list) -> float:
    return float(np.mean([max(_interval_iou(s, t) for t in target) for s in source]))


def scene_miou(
    probs, labels, starts, ends, threshold: float = 0.5, strict: bool = False
) -> float | None:
    """Mean of the two directional best-match scene IoUs for one video.

    ``None`` when the ground truth has no scene (no labelled boundary).
    """
    probs, labels = _arrays(probs, labels)
    decided = predicted_boundaries(probs, threshold, strict).astype(np.int64)
    pred_labels = np.where(labels == UNKNOWN, UNKNOWN, decided)
    gt_scenes = scenes_from_labels(labels, starts, ends)
    if not gt_scenes:
        return None
    pred_scenes = scenes_from_labels(pred_labels, starts, ends)
    if not pred_scenes:
        return 0.0
    return 0.5 * (
        _directional_miou(gt_scenes, pred_scenes) + _directional_miou(pred_scenes, gt_scenes)
    )


def _mean(values: Sequence[float | None]) -> float:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else 0.0


def evaluate(
    probs_per_video: Mapping[str, Sequence[float] | np.ndarray],
    labels_per_video: Mapping[str, Sequence[int] | np.ndarray],
    times: Mapping[str, tuple[np.ndarray, np.ndarray]],
    threshold: float = 0.5,
    protocol: str = "bassl",
) -> dict:
    """All metrics over a set of videos.

    Args:
        probs_per_video: video id -> (N,) boundary probabilities.
        labels_per_video: video id -> (N,) labels (1, 0, -100 unknown); same ids.
        times: video id -> (starts, ends) shot times in seconds, each (N,).
        threshold: decision threshold (see ``protocol`` for ``>`` versus ``>=``).
        protocol: ``"bassl"`` or ``"inclusive"`` (module docstring).
    Returns:
        ``{"AP", "mAP", "AP(total)", "AP(avg)", "F1", "Recall", "Recall@3s",
        "mIoU", "threshold", "protocol", "videos", "shots", "boundaries",
        "per_video": {id: {...}}}``; metrics are fractions in [0, 1].
        ``"AP(total)"`` equals ``"AP"`` and ``"AP(avg)"`` equals ``"mAP"``.
    """
    strict = strict_for(protocol)
    if set(probs_per_video) != set(labels_per_video):
        missing = sorted(set(labels_per_video) ^ set(probs_per_video))
        raise ValueError(f"predictions and labels cover different videos: {missing[:5]}")
    per_video: dict[str, dict] = {}
    all_probs, all_labels = [], []
    for vid in sorted(probs_per_video):
        probs, labels = _arrays(probs_per_video[vid], labels_per_video[vid])
        if vid not in times:
            raise ValueError(f"{vid}: no shot times given")
        starts, ends = (np.asarray(t, dtype=np.float64).reshape(-1) for t in times[vid])
        if starts.shape != labels.shape or ends.shape != labels.shape:
            raise ValueError(f"{vid}: shot times do not match {labels.size} labels")
        all_probs.append(probs)
        all_labels.append(labels)
        known = labels != UNKNOWN
        per_video[vid] = {
            "AP": average_precision(probs, labels) if (labels == 1).any() else None,
            "F1": f1_score(probs, labels, threshold),
            "Recall": recall(probs, labels, threshold, strict),
            "Recall@3s": recall_at_seconds(probs, labels, ends, threshold, strict=strict),
            "mIoU": scene_miou(probs, labels, starts, ends, threshold, strict),
            "shots": int(known.sum()),
            "boundaries": int((labels == 1).sum()),
        }
    probs = np.concatenate(all_probs) if all_probs else np.zeros(0)
    labels = np.concatenate(all_labels) if all_labels else np.zeros(0, dtype=np.int64)
    rows = per_video.values()
    ap_total = average_precision(probs, labels)
    ap_avg = _mean([r["AP"] for r in rows])
    return {
        "AP": ap_total,
        "mAP": ap_avg,
        "AP(total)": ap_total,
        "AP(avg)": ap_avg,
        "F1": f1_score(probs, labels, threshold),
        "Recall": _mean([r["Recall"] for r in rows]),
        "Recall@3s": _mean([r["Recall@3s"] for r in rows]),
        "mIoU": _mean([r["mIoU"] for r in rows]),
        "threshold": threshold,
        "protocol": protocol,
        "videos": len(per_video),
        "shots": int((labels != UNKNOWN).sum()),
        "boundaries": int((labels == 1).sum()),
        "per_video": per_video,
    }
