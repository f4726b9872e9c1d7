"""End-to-end checks on a CUDA device (bench/gpu_run.sh runs them; skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu


def test_pretrain_step_on_cuda(make_synthetic_store):
    """One pre-training step on the GPU: kernels, CUDA pseudo-boundary op, bf16 autocast."""
    from sseg.training.pretrain import WindowBatcher, build_objective, load_genre_bank
    from sseg.training.pretrain_config import PretrainConfig

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


def _cuda_ext_built() -> bool:
    import importlib.util

    return importlib.util.find_spec("sseg._dtw_cuda") is not None


@pytest.mark.skipif(not _cuda_ext_built(), reason="sseg._dtw_cuda is not built")
def test_unchecked_pseudo_boundaries_never_sync_and_checked_ones_raise():
    from sseg.errors import InputError
    from sseg.ops import pseudo_boundaries

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 17, 512, generator=gen).cuda()
    anchors = torch.tensor([[0, 8, 16]] * 64).cuda()
    lengths = torch.full((64,), 17).cuda()
    pseudo_boundaries(x, anchors, lengths, check=False)  # warm-up (workspace, module load)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        bounds, scores = pseudo_boundaries(x, anchors, lengths, check=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    reference, _ = pseudo_boundaries(x.cpu(), anchors.cpu(), lengths.cpu())
    assert torch.equal(bounds.cpu(), reference)
    x[5, 3, 0] = float("nan")
    with pytest.raises(InputError, match=r"x\[5\] has NaN/inf"):
        pseudo_boundaries(x, anchors, lengths)
    assert torch.isnan(pseudo_boundaries(x, anchors, lengths, check=False)[1][5])


@pytest.mark.parametrize("phi", ["identity", "softmax"])
def test_bf16_shot_features_end_to_end_without_host_syncs(phi):
    """fp16 store features -> bf16 fused shot mean under autocast -> bf16 out; dW only."""
    from sseg.kernels import ag_residual_shot_mean_reference

    from sseg.modeling.model import SceneModel

    g = torch.nn.functional.normalize(torch.randn(21, 512), dim=-1)
    model = SceneModel(g, phi=phi, temperature=0.1).cuda()
    with torch.no_grad():
        model.genre_residual.weight.normal_(0, 0.02)
    keyframes = torch.randn(8, 17, 3, 512).half().cuda()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model.shot_features(keyframes)
        out.float().square().mean().backward()
        return out

    step()  # autotune / compile outside the sync check
    model.zero_grad()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.dtype == torch.bfloat16 and out.shape == (8, 17, 512)
    w = model.genre_residual.weight.detach().clone().requires_grad_()
    ref = ag_residual_shot_mean_reference(keyframes.float(), g.cuda(), g.cuda() @ w, phi, 0.1)
    ref.square().mean().backward()
    err = (out.float() - ref).abs().max() / ref.abs().max()
    assert err < 3e-2, f"shot features: relative error {err:.2e}"
    grad = model.genre_residual.weight.grad
    grad_err = (grad - w.grad).abs().max() / w.grad.abs().max()
    assert grad_err < 5e-2, f"dW: relative error {grad_err:.2e}"
