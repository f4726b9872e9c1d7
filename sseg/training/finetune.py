"""Supervised fine-tuning of a SceneModel on cached keyframe features.

Each step samples ``batch_size`` labelled shots (label 0 or 1; unknown -100 is
never sampled) uniformly over all training videos, builds the window of
``context.window`` shots centred on each (padded and masked at video ends), and
minimises binary cross-entropy on the centre shot's logit. ``pos_weight``
(``"auto"`` = negatives / positives of the training labels) re-weights the rare
boundary class. The AG-Residual layer (genre prior on frozen backbone features)
stays frozen unless ``train_genre`` is set; the context encoder and head train.

Sampling, seeding, optimiser, schedule, checkpoints and exact resume come from
:mod:`sseg.training.loop`. The result is written with :meth:`SceneModel.save`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import InputError
from ..modeling.model import SceneModel
from ..store.features import FeatureStore
from .loop import DistInfo, TrainConfig, Trainer, step_rng

MODEL_FILE = "model.safetensors"
UNKNOWN = -100


@dataclass
class LabelledShots:
    """Keyframes and labels of the training videos, with every labelled (video, shot)."""

    keyframes: list[np.ndarray]  # per video (N, K, D), memmaps allowed
    labels: list[np.ndarray]  # per video (N,)
    positions: np.ndarray  # (M, 2) int64: video index, shot index of each labelled shot

    @classmethod
    def from_store(
        cls, store: FeatureStore, labels: Mapping[str, np.ndarray], video_ids: Sequence[str]
    ) -> LabelledShots:
        """Collect the videos of ``video_ids`` that have labels."""
        keyframes, all_labels, positions = [], [], []
        for vid in video_ids:
            if vid not in labels:
                continue
            video = store.load(vid)
            lab = np.asarray(labels[vid], dtype=np.int64)
            if lab.shape != (len(video),):
                raise InputError(f"{vid}: {lab.size} labels for {len(video)} shots", store.root)
            known = np.nonzero(lab != UNKNOWN)[0]
            if known.size == 0:
                continue
            index = len(keyframes)
            keyframes.append(video.keyframes)
            all_labels.append(lab)
            positions.append(np.stack([np.full(known.size, index), known], axis=1))
        if not positions:
            raise InputError("no labelled shots to train on", store.root)
        return cls(keyframes, all_labels, np.concatenate(positions).astype(np.int64))

    def positive_weight(self) -> float:
        """Negatives / positives over all labelled shots (1.0 if either is absent)."""
        values = np.array([self.labels[v][i] for v, i in self.positions])
        pos, neg = int((values == 1).sum()), int((values == 0).sum())
        return neg / pos if pos and neg else 1.0

    def windows(self, picks: np.ndarray, window: int) -> tuple[torch.Tensor, ...]:
        """(B, W, K, D) float32 windows, (B, W) valid mask, (B,) float labels."""
        half = window // 2
        offsets = np.arange(-half, half + 1)
        out, valid, targets = [], [], []
        for v, i in self.positions[picks]:
            feats = self.keyframes[v]
            index = i + offsets
            ok = (index >= 0) & (index < feats.shape[0])
            block = np.asarray(feats[np.clip(index, 0, feats.shape[0] - 1)], dtype=np.float32)
            block[~ok] = 0.0
            out.append(block)
            valid.append(ok)
            targets.append(float(self.labels[v][i]))
        return (
            torch.from_numpy(np.stack(out)),
            torch.from_numpy(np.stack(valid)),
            torch.tensor(targets, dtype=torch.float32),
        )


@dataclass
class FinetuneConfig:
    """Settings of :func:`finetune` beyond the optimiser's :class:`TrainConfig`."""

    pos_weight: float | str | None = None  # None: plain BCE; "auto": neg/pos; or a number
    train_genre: bool = False


def _freeze(model: SceneModel, train_genre: bool) -> None:
    for p in model.genre_residual.parameters():
        p.requires_grad_(train_genre)
    for p in model.boundary.parameters():
        p.requires_grad_(True)


def finetune(
    model: SceneModel,
    data: LabelledShots,
    train: TrainConfig,
    options: FinetuneConfig | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device = "cpu",
    dist_info: DistInfo | None = None,
    stop_at: int | None = None,
) -> tuple[SceneModel, list[float]]:
    """Fine-tune ``model`` in place; returns it and the per-step losses.

    With ``out_dir`` the train state is checkpointed there (``resume`` continues
    from it) and the model is written to ``out_dir/model.safetensors`` when the
    run ends. ``stop_at`` ends the run early at that step (the schedule still
    spans ``train.steps``), as an interruption would.
    """
    options = options or FinetuneConfig()
    _freeze(model, options.train_genre)
    weight = options.pos_weight
    if weight == "auto":
        weight = data.positive_weight()
    pos_weight = None if weight is None else torch.tensor(float(weight), device=device)
    window = model.boundary.config.window
    info = dist_info or DistInfo()

    def batch_fn(step: int, rank: int):
        rng = step_rng(train.seed, step, rank, "finetune")
        picks = rng.integers(0, len(data.positions), size=train.batch_size)
        return tuple(t.to(device) for t in data.windows(picks, window))

    def loss_fn(net, batch):
        windows, valid, targets = batch
        logits = net(windows, valid).float()
        loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
        return loss, {}

    trainer = Trainer(model, loss_fn, batch_fn, train, out_dir, device, info)
    if resume:
        trainer.resume()
    history = trainer.fit(stop_at)
    model.meta = {
        **model.meta,
        "finetune": {"steps": trainer.step, "pos_weight": weight, **train.to_dict()},
    }
    if out_dir is not None and info.is_main:
        model.save(Path(out_dir) / MODEL_FILE)
    return model, history
