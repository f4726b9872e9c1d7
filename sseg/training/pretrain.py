"""Duration-aware pseudo-boundary pre-training on cached keyframe features.

One step, for a batch of B windows of W shots (keyframes (B, W, K, D)):

1. shot features ``v = SceneModel.shot_features(keyframes)`` (AG-Residual + keyframe mean);
2. K_a anchors per window (:mod:`sseg.training.sampling`, ``idw`` by default) and the
   pseudo-boundaries between them from :func:`sseg.ops.pseudo_boundaries` on ``v``
   (no gradient: the search is a discrete argmax);
3. the context encoder turns ``v`` into tokens ``h`` (B, W, H);
4. ``L_con``: InfoNCE between each pseudo-scene's mean projected token and its anchor's
   projected token (cosine / temperature 0.1). Negatives are the anchors of every
   window of the global batch: anchors are gathered across ranks with
   ``torch.distributed.nn.functional.all_gather``, so gradients flow to every rank;
5. ``L_pb``: per-token BCE of the shared boundary head, pseudo-boundary shots are the
   positives; positives and negatives each get half of the weight (class-balanced).
   The last real shot of a window is left out (whether a scene ends there is unknown).

``loss = con_weight * L_con + pb_weight * L_pb``. The trained :class:`SceneModel`
(AG-Residual W, context encoder, head) is saved with :meth:`SceneModel.save` and is
directly the initialisation for fine-tuning; the L_con projection head is dropped.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..atomic import atomic_write_text
from ..errors import InputError
from ..modeling.context import ContextConfig
from ..modeling.model import SceneModel
from ..store.features import FeatureStore, backbone_info
from .loop import (
    STATE_FILE,
    DistInfo,
    TrainConfig,
    Trainer,
    global_class_balanced_mean,
    init_distributed,
    lock_out_dir,
    seed_everything,
)
from .pretrain_config import PretrainConfig
from .pretrain_data import PretrainData, StoreWindowBatcher
from .train_log import pseudo_boundary_stats

MODEL_FILE = "model.safetensors"
SUMMARY_FILE = "pretrain_summary.json"


@dataclass
class PretrainBatch:
    """Windows of cached features with their anchors."""

    keyframes: torch.Tensor  # (B, W, K, D) float16/float32
    valid: torch.Tensor  # (B, W) bool
    lengths: torch.Tensor  # (B,) int64
    anchors: torch.Tensor  # (B, K_a) int64, sorted, < lengths

    def to(self, device: torch.device | str) -> PretrainBatch:
        """Copy to ``device``."""
        return PretrainBatch(*(t.to(device, non_blocking=True) for t in self.__dict__.values()))


class WindowBatcher(StoreWindowBatcher):
    """``(step, rank) -> PretrainBatch`` on ``device``: a pure function of (seed, step,
    rank); see :class:`sseg.training.pretrain_data.StoreWindowBatcher`."""

    def __init__(self, *args: Any, device: torch.device | str = "cpu", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.device = torch.device(device)

    def __call__(self, step: int, rank: int) -> PretrainBatch:
        return super().__call__(step, rank).to(self.device)


def _gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``x`` from all ranks (gradients flow back); returns it and our offset."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    from torch.distributed.nn.functional import all_gather

    parts = all_gather(x.contiguous())
    return torch.cat(parts), dist.get_rank() * x.shape[0]


_warned_cpu_search = False


def search_boundaries(
    shots: torch.Tensor, anchors: torch.Tensor, lengths: torch.Tensor, mode: str
) -> torch.Tensor:
    """Pseudo-boundaries (B, K-1) of detached shot features, on their device.

    On CUDA without the compiled ``sseg._dtw_cuda`` kernel the search runs on the CPU
    (C++ backend) and the result is copied back, with a one-time warning.
    """
    global _warned_cpu_search
    from ..ops.pseudo_boundary import pseudo_boundaries

    x = shots.detach().float()
    if x.is_cuda and importlib.util.find_spec("sseg._dtw_cuda") is None:
        if not _warned_cpu_search:
            _warned_cpu_search = True
            warnings.warn(
                "sseg._dtw_cuda is not built: the pseudo-boundary search runs on the CPU "
                "(build with SSEG_BUILD_CUDA=1 for the GPU kernel)",
                stacklevel=2,
            )
        bounds, _ = pseudo_boundaries(x.cpu(), anchors.cpu(), lengths.cpu(), mode)
        return bounds.to(shots.device, non_blocking=True)
    # the sampler's anchors are valid by construction and NaN features surface as a NaN
    # loss, so the GPU search skips its checks: no host sync in the training step
    return pseudo_boundaries(x, anchors, lengths, mode, check=not x.is_cuda)[0]


def segment_ids(boundaries: torch.Tensor, width: int) -> torch.Tensor:
    """(B, K-1) boundaries (last shot of each segment) -> (B, W) segment index per shot."""
    t = torch.arange(width, device=boundaries.device)
    return (t[None, :, None] > boundaries[:, None, :]).sum(-1)


def balanced_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE where positives and negatives (within ``mask``) each weigh one half, the two
    classes counted over the global batch of all ranks (so the loss and its gradient do
    not depend on the world size; :func:`sseg.training.loop.global_class_balanced_mean`)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    pos, neg = mask & (target > 0.5), mask & (target <= 0.5)
    return global_class_balanced_mean(bce, [pos, neg])


class PretrainObjective(nn.Module):
    """SceneModel + contrastive projection head; ``forward(batch) -> (loss, metrics)``."""

    def __init__(
        self,
        scene: SceneModel,
        proj_dim: int = 128,
        temperature: float = 0.1,
        con_weight: float = 1.0,
        pb_weight: float = 1.0,
        dtw_mode: str = "mean",
        gather_negatives: bool = True,
    ):
        super().__init__()
        self.scene = scene
        hidden = scene.boundary.config.hidden
        self.con_head = nn.Sequential(
            nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, proj_dim)
        )
        self.temperature = temperature
        self.con_weight, self.pb_weight = con_weight, pb_weight
        self.dtw_mode = dtw_mode
        self.gather_negatives = gather_negatives

    def forward(self, batch: PretrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Both losses on one batch."""
        valid = batch.valid
        shots, tokens = self.scene.encode(batch.keyframes, valid)
        bounds = search_boundaries(shots, batch.anchors, batch.lengths, self.dtw_mode)
        b, w = valid.shape
        k = batch.anchors.shape[1]

        # L_con: pseudo-scene mean vs its anchor, all anchors of the global batch as keys.
        z = self.con_head(tokens).float()
        member = F.one_hot(segment_ids(bounds, w), k).float() * valid[..., None]  # (B, W, k)
        means = torch.einsum("bwk,bwp->bkp", member, z) / member.sum(1)[..., None].clamp(min=1)
        anchor_z = z.gather(1, batch.anchors[..., None].expand(-1, -1, z.shape[-1]))
        queries = F.normalize(means.reshape(b * k, -1), dim=-1)
        keys = F.normalize(anchor_z.reshape(b * k, -1), dim=-1)
        offset = 0
        if self.gather_negatives:
            keys, offset = _gather_with_grad(keys)
        logits = queries @ keys.T / self.temperature
        targets = offset + torch.arange(b * k, device=logits.device)
        l_con = F.cross_entropy(logits, targets)

        # L_pb: per-token pseudo-boundary prediction with the shared boundary head.
        pb_logits = self.scene.boundary.head(tokens)
        target = torch.zeros_like(pb_logits, dtype=torch.float32).scatter_(1, bounds, 1.0)
        mask = valid.clone()
        mask[torch.arange(b, device=mask.device), batch.lengths - 1] = False
        l_pb = balanced_bce(pb_logits, target, mask)

        loss = self.con_weight * l_con + self.pb_weight * l_pb
        with torch.no_grad():
            acc = (logits.argmax(-1) == targets).float().mean()
        stats = pseudo_boundary_stats(pb_logits, target, mask)
        return loss, {"l_con": l_con.item(), "l_pb": l_pb.item(), "con_acc": acc.item(), **stats}


def load_genre_bank(
    path: str | Path | None, store: FeatureStore, seed: int = 0
) -> tuple[torch.Tensor, str]:
    """The (G, D) genre bank and where it came from.

    Order: ``path`` (a ``.npy`` array or a ``.safetensors`` file with tensor ``genres``),
    then the store's own ``genre_bank.npy`` (written by ``sseg extract`` and the
    synthetic generator), else a placeholder of 21 seeded random unit vectors (warned:
    the genre prior then carries no genre knowledge).
    """
    from .synthetic import random_genre_bank

    if path is None and store.meta.get("genre_bank"):
        path = store.root / store.meta["genre_bank"]
    if path is None:
        warnings.warn(
            "no genre bank given and none in the feature store: using a random placeholder",
            stacklevel=2,
        )
        return torch.from_numpy(random_genre_bank(store.dim, seed)), "placeholder"
    path = Path(path)
    if not path.is_file():
        raise InputError("genre bank file not found", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            bank = load_file(str(path))["genres"]
        else:
            bank = torch.from_numpy(np.load(path, allow_pickle=False))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read genre bank ({exc})", path) from exc
    if bank.ndim != 2 or bank.shape[1] != store.dim:
        raise InputError(f"genre bank has shape {tuple(bank.shape)}, need (G, {store.dim})", path)
    return bank.float(), str(path)


def _device(name: str, dist_info: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist_info.enabled:
        name = f"cuda:{dist_info.local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def build_objective(cfg: PretrainConfig, store: FeatureStore, genres: torch.Tensor):
    """The SceneModel (and its L_con head) described by ``cfg``."""
    context = ContextConfig(
        input_dim=store.dim, hidden=cfg.hidden, heads=cfg.heads, layers=cfg.layers,
        window=cfg.window, dropout=cfg.dropout,
    )  # fmt: skip
    meta = {"pretrained": {"store": cfg.store, "sampling": cfg.sampling, "anchors": cfg.anchors,
                           "dtw_mode": cfg.dtw_mode, "steps": cfg.steps,
                           "genre_fusion": cfg.genre_fusion},
            **backbone_info(store)}  # fmt: skip
    scene = SceneModel(genres, context, cfg.phi, cfg.genre_temperature, meta, cfg.genre_fusion)
    return PretrainObjective(
        scene, cfg.proj_dim, cfg.temperature, cfg.con_weight, cfg.pb_weight, cfg.dtw_mode,
        cfg.gather_negatives,
    )  # fmt: skip


def run_pretraining(
    cfg: PretrainConfig,
    resume: bool = False,
    progress: bool = True,
    video_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Pre-train as configured (one process, or one rank under torchrun); returns a summary.

    ``video_ids`` restricts training to those store videos (default: all). Without
    ``resume``, an ``out_dir`` that already holds a training state is refused.
    """
    dist_info = init_distributed(None if cfg.device == "auto" else cfg.device)
    try:
        with lock_out_dir(cfg.out_dir, dist_info):
            return _run(cfg, resume, progress, dist_info, video_ids)
    finally:
        if dist_info.enabled:
            import torch.distributed as dist

            dist.destroy_process_group()


def _run(
    cfg: PretrainConfig,
    resume: bool,
    progress: bool,
    dist_info: DistInfo,
    video_ids: list[str] | None = None,
) -> dict:
    device = _device(cfg.device, dist_info)
    out_dir = Path(cfg.out_dir)
    if not resume and (out_dir / STATE_FILE).exists():
        raise InputError(
            f"{STATE_FILE} already exists: pass --resume to continue, or use another out_dir",
            out_dir,
        )
    store = FeatureStore(cfg.store)
    if len(store) == 0:
        raise InputError("feature store holds no videos", store.root)
    genres, genre_source = load_genre_bank(cfg.genre_bank, store, cfg.seed)
    seed_everything(cfg.seed)  # identical initial weights on every rank
    objective = build_objective(cfg, store, genres)
    data = PretrainData(cfg, store, dist_info, device, video_ids)  # videos, batcher, validation
    batcher = data.batcher
    if batcher.index.skipped and dist_info.is_main:
        warnings.warn(
            f"{len(batcher.index.skipped)} video(s) have fewer than {cfg.anchors} shots "
            "and are not used for pre-training",
            stacklevel=2,
        )
    train_cfg = TrainConfig(
        steps=cfg.steps, lr=cfg.lr, min_lr_ratio=cfg.min_lr_ratio,
        warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer,
        clip_grad=cfg.clip_grad, amp=cfg.amp, seed=cfg.seed, batch_size=cfg.batch_size,
        checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, progress=progress,
        extra={"pretrain": cfg.to_dict()}, checkpoint_minutes=cfg.checkpoint_minutes,
    )  # fmt: skip
    trainer = Trainer(
        objective, lambda model, batch: model(batch), batcher, train_cfg, out_dir, device,
        dist_info,
    )  # fmt: skip
    if resume:
        trainer.resume()
    data.attach(objective, trainer, out_dir)
    try:
        history = trainer.fit()
    finally:
        data.close()
    summary = {
        "steps": trainer.step,
        "first_loss": history[0] if history else None,
        "last_loss": history[-1] if history else None,
        "windows": len(batcher.index),
        "videos": data.videos,
        **data.summary(),
        "world_size": dist_info.world_size,
        "rank": dist_info.rank,
        "genre_bank": genre_source,
        "model": str(out_dir / MODEL_FILE),
    }
    if dist_info.is_main:
        objective.scene.save(out_dir / MODEL_FILE)
        atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary, indent=1))
    summary["history"] = history
    summary["objective"] = objective
    return summary
