"""Small scene models and videos shared by the tests of sseg.deploy."""

from __future__ import annotations

import torch

from sseg.modeling.context import ContextConfig
from sseg.modeling.model import SceneModel

DIM = 32
KEYFRAMES = 3
# predict() itself differs by one float32 ulp (6e-8 near 0.5) between batch sizes: GEMM
# blocking depends on the number of windows per call. Deployment paths batch differently.
ATOL = 1e-6


def tiny_model(window: int = 7, phi: str = "identity", seed: int = 0) -> SceneModel:
    """A random scene model with a non-zero genre residual and dropout (eval must turn it off)."""
    generator = torch.Generator().manual_seed(seed)
    cfg = ContextConfig(input_dim=DIM, hidden=32, heads=2, layers=2, window=window, dropout=0.1)
    model = SceneModel(torch.randn(21, DIM, generator=generator), cfg, phi=phi, temperature=0.5)
    with torch.no_grad():
        model.genre_residual.weight.copy_(0.05 * torch.randn(DIM, DIM, generator=generator))
    return model


def random_videos(lengths: tuple[int, ...], seed: int = 1) -> list[torch.Tensor]:
    """fp16 (N, K, D) keyframe features per video, as the feature store holds them."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(n, KEYFRAMES, DIM, generator=generator).half() for n in lengths]
