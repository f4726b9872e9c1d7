"""AG-Residual layer: V' = V + phi(cos(V, G)) @ G @ W (only W is trained).

This module is the stable entry point (``from sseg.kernels import AGResidual``);
the fused Triton kernels plug in behind :func:`ag_residual`.
"""

from __future__ import annotations

import torch
from torch import nn

from .ag_residual_ref import PHI_CHOICES, ag_residual_reference


def ag_residual(
    v: torch.Tensor,
    g: torch.Tensor,
    w: torch.Tensor,
    phi: str = "identity",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Apply the genre residual to token rows ``v`` (..., D)."""
    shape = v.shape
    out = ag_residual_reference(v.reshape(-1, shape[-1]), g, g.to(w.dtype) @ w, phi, temperature)
    return out.reshape(shape)


class AGResidual(nn.Module):
    """Genre-prior residual with a frozen genre bank G and a trainable W (zero init = identity)."""

    def __init__(
        self, genre_embeddings: torch.Tensor, phi: str = "identity", temperature: float = 1.0
    ):
        super().__init__()
        if genre_embeddings.ndim != 2:
            raise ValueError("genre_embeddings must be (N_g, D)")
        if phi not in PHI_CHOICES:
            raise ValueError(f"phi must be one of {PHI_CHOICES}, got {phi!r}")
        dim = genre_embeddings.shape[1]
        self.register_buffer("genres", genre_embeddings.detach().float().clone())
        self.weight = nn.Parameter(torch.zeros(dim, dim))
        self.phi = phi
        self.temperature = temperature

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., D)."""
        return ag_residual(v, self.genres, self.weight, self.phi, self.temperature)
