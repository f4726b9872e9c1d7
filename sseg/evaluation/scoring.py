"""Predict boundary probabilities over a feature store and score them.

Used by ``sseg evaluate`` and ``sseg ablate``. Test-time splitting
(:mod:`sseg.evaluation.splitting`) happens per video; probabilities are mapped back to the
original shots before scoring, so every setting is scored on the same shots.
:func:`score_benchmark` scores predictions against a benchmark's ground truth
(:mod:`sseg.data.benchmark`), per annotator where there are several.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.annotations import check_times
from ..data.benchmark import Benchmark
from ..data.predictions import ShotPredictions, align_predictions
from ..errors import InputError
from ..modeling.model import SceneModel
from ..store.features import FeatureStore, check_same_backbone
from . import metrics
from .splitting import split_long_shots


def predict_store(
    model: SceneModel,
    store: FeatureStore,
    video_ids: Sequence[str],
    tau: float | None = 10.0,
    n: int = 3,
    device: str | torch.device = "cpu",
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """(video id -> (N,) probabilities per original shot, video id -> shots split)."""
    expected = model.boundary.config.input_dim
    if store.dim is not None and store.dim != expected:
        problem = f"store features are {store.dim}-d but the model takes {expected}-d"
        raise InputError(problem, store.root)
    check_same_backbone(model.meta, store)
    model = model.to(device).eval()
    probs: dict[str, np.ndarray] = {}
    split_counts: dict[str, int] = {}
    for vid in video_ids:
        video = store.load(vid)
        plan = split_long_shots(video.to_shot_sequence(), video.keyframes, tau=tau, n=n)
        feats = plan.keyframes.to(device=device, dtype=torch.float32)
        sub = model.predict(feats).double().cpu().numpy()
        probs[vid] = plan.merge(sub)
        split_counts[vid] = plan.n_split
        if progress is not None:
            progress(vid)
    return probs, split_counts


def score(
    probs: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    store: FeatureStore,
    threshold: float = 0.5,
    protocol: str = "bassl",
) -> dict:
    """:func:`sseg.evaluation.metrics.evaluate` over the videos that have both probabilities and
    labels."""
    common = [vid for vid in labels if vid in probs]
    if not common:
        raise InputError("no video has both predictions and labels", store.root)
    times = {}
    for vid in common:
        video = store.load(vid)
        if len(probs[vid]) != len(video):
            problem = f"video {vid!r}: {len(probs[vid])} predictions for {len(video)} shots"
            raise InputError(problem, store.root)
        times[vid] = (video.starts, video.ends)
    return metrics.evaluate(
        {v: probs[v] for v in common}, {v: labels[v] for v in common}, times, threshold, protocol
    )


MEAN_KEYS = ("AP", "mAP", "AP(total)", "AP(avg)", "F1", "Recall", "Recall@3s", "mIoU")


@dataclass
class BenchmarkScore:
    """Metrics per annotator, their summary, and which videos were left out."""

    results: dict[str, dict]  # annotator -> metrics.evaluate() result
    summary: dict  # the single annotator's result, or the mean over annotators
    missing: list[str] = field(default_factory=list)  # benchmark videos without predictions
    unscored: list[str] = field(default_factory=list)  # predicted videos outside the benchmark


def mean_over_annotators(results: Mapping[str, Mapping]) -> dict:
    """Mean of every metric over annotators; counts of the first, mean boundary count."""
    rows = list(results.values())
    out: dict = {key: float(np.mean([r[key] for r in rows])) for key in MEAN_KEYS}
    out.update(
        threshold=rows[0]["threshold"],
        protocol=rows[0]["protocol"],
        videos=rows[0]["videos"],
        shots=rows[0]["shots"],
        boundaries=float(np.mean([r["boundaries"] for r in rows])),
        annotators=len(rows),
    )
    return out


def dense_predictions(probs: Mapping[str, np.ndarray]) -> dict[str, ShotPredictions]:
    """One prediction per shot (``0..N-1``) for each video, as read from a file."""
    return {
        vid: ShotPredictions(np.arange(len(p), dtype=np.int64), np.asarray(p, np.float64))
        for vid, p in probs.items()
    }


def score_benchmark(
    predictions: Mapping[str, ShotPredictions],
    benchmark: Benchmark,
    store: FeatureStore | None = None,
    threshold: float = 0.5,
    protocol: str = "bassl",
    predictions_path: str | Path | None = None,
) -> BenchmarkScore:
    """Score predictions against every annotator of ``benchmark``.

    Shot times come from ``store`` when given (its shot counts must equal the
    annotation's), else from the annotation. Predictions are aligned to the shots
    by :func:`sseg.data.predictions.align_predictions`.
    """
    source = benchmark.source
    where = predictions_path if predictions_path is not None else source
    scored = [v for v in benchmark.video_ids if v in predictions]
    if store is not None:
        scored = [v for v in scored if v in store]
    if not scored:
        raise InputError("no video has both predictions and labels", source)
    probs: dict[str, np.ndarray] = {}
    times: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    labels: dict[str, dict[str, np.ndarray]] = {a: {} for a in benchmark.annotators}
    for vid in scored:
        truths = benchmark.load(vid)
        first = truths[benchmark.annotators[0]]
        if store is not None and benchmark.kind != "store":
            n_store = store.num_shots(vid)
            if len(first) != n_store:
                problem = f"video {vid!r} has {len(first)} shots here but {n_store} in the store"
                raise InputError(problem, source)
            if benchmark.kind == "jsonl":
                check_times(first, store, source)
            video = store.load(vid)
            times[vid] = (video.starts, video.ends)
        else:
            times[vid] = (first.starts, first.ends)
        probs[vid] = align_predictions(predictions[vid], first.labels, vid, where)
        for annotator in benchmark.annotators:
            labels[annotator][vid] = truths[annotator].labels
    results = {
        a: metrics.evaluate(probs, labels[a], times, threshold, protocol)
        for a in benchmark.annotators
    }
    single = len(results) == 1
    summary = next(iter(results.values())) if single else mean_over_annotators(results)
    selected = set(benchmark.video_ids)
    return BenchmarkScore(
        results,
        summary,
        missing=[v for v in benchmark.video_ids if v not in probs],
        unscored=sorted(v for v in predictions if v not in selected),
    )


METRIC_COLUMNS = ("AP", "F1", "mIoU", "Recall", "Recall@3s")
BENCHMARK_COLUMNS = ("AP(total)", "AP(avg)", "F1", "mIoU", "Recall", "Recall@3s")


def format_table(
    rows: Sequence[tuple[str, Mapping]], first: str = "", columns: Sequence[str] = METRIC_COLUMNS
) -> str:
    """Fixed-width table of metric ``columns`` (percent, 2 decimals); None shows as '-'."""
    width = max([len(first)] + [len(name) for name, _ in rows])
    lines = [first.ljust(width) + "".join(f"{c:>11}" for c in columns)]
    for name, row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            cells.append(f"{'-':>11}" if value is None else f"{100 * value:>11.2f}")
        lines.append(name.ljust(width) + "".join(cells))
    return "\n".join(lines)
