"""Predict boundary probabilities over a feature store and score them.

Used by ``sseg evaluate`` and ``sseg ablate``. Test-time splitting
(:mod:`sseg.splitting`) happens per video; probabilities are mapped back to the
original shots before scoring, so every setting is scored on the same shots.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from . import metrics
from .errors import InputError
from .features import FeatureStore, check_same_backbone
from .model import SceneModel
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
) -> dict:
    """:func:`sseg.metrics.evaluate` over the videos that have both probabilities and labels."""
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
        {v: probs[v] for v in common}, {v: labels[v] for v in common}, times, threshold
    )


METRIC_COLUMNS = ("AP", "F1", "mIoU", "Recall", "Recall@3s")


def format_table(rows: Sequence[tuple[str, Mapping]], first: str = "") -> str:
    """Fixed-width table of the metric columns (percent, 2 decimals); None shows as '-'."""
    width = max([len(first)] + [len(name) for name, _ in rows])
    lines = [first.ljust(width) + "".join(f"{c:>11}" for c in METRIC_COLUMNS)]
    for name, row in rows:
        cells = []
        for column in METRIC_COLUMNS:
            value = row.get(column)
            cells.append(f"{'-':>11}" if value is None else f"{100 * value:>11.2f}")
        lines.append(name.ljust(width) + "".join(cells))
    return "\n".join(lines)
