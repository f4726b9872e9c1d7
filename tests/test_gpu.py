"""End-to-end checks on a CUDA device (bench/gpu_run.sh runs them; skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu


def test_pretrain_step_on_cuda(make_synthetic_store):
    """One pre-training step on the GPU: kernels, CUDA pseudo-boundary op, bf16 autocast."""
    from sseg.pretrain import WindowBatcher, build_objective, load_genre_bank
    from sseg.pretrain_config import PretrainConfig

    store = make_synthetic_store(4, shots=(40, 60), dim=64)
    cfg = PretrainConfig(store=str(store.root), out_dir="unused")
    genres, _ = load_genre_bank(None, store)
    objective = build_objective(cfg, store, genres).cuda()
    videos = [store.load(v) for v in store.video_ids]
    batch = WindowBatcher(videos, 17, 3, "idw", 8, 0, device="cuda")(0, 0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, metrics = objective(batch)
    loss.backward()
    assert torch.isfinite(loss)
    weight = objective.scene.genre_residual.weight
    assert weight.grad is not None and torch.isfinite(weight.grad).all()
