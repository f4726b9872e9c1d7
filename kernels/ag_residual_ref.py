"""Pure-PyTorch reference of the AG-Residual genre prior (CPU path and test oracle).

    out = V + phi(cos(V, G)) @ (G @ W)

V: (M, D) tokens, G: (N_g, D) genre text embeddings, W: (D, D) trainable.
phi is the identity (default) or a softmax over genres with a temperature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PHI_CHOICES = ("identity", "softmax")


def genre_affinity(
    v: torch.Tensor, g: torch.Tensor, phi: str = "identity", temperature: float = 1.0
) -> torch.Tensor:
    """phi(cos(V, G)): (M, N_g) in float32 (or float64 if V is float64)."""
    compute = torch.float64 if v.dtype == torch.float64 else torch.float32
    sim = (
        F.normalize(v.to(compute), dim=-1, eps=1e-6)
        @ F.normalize(g.to(compute), dim=-1, eps=1e-6).T
    )
    if phi == "softmax":
        return torch.softmax(sim / temperature, dim=-1)
    if phi != "identity":
        raise ValueError(f"phi must be one of {PHI_CHOICES}, got {phi!r}")
    return sim


def ag_residual_reference(
    v: torch.Tensor,
    g: torch.Tensor,
    gw: torch.Tensor,
    phi: str = "identity",
    temperature: float = 1.0,
) -> torch.Tensor:
    """out = V + phi(cos(V, G)) @ GW, with GW = G @ W precomputed; same dtype as V."""
    affinity = genre_affinity(v, g, phi, temperature)
    return (v.to(affinity.dtype) + affinity @ gw.to(affinity.dtype)).to(v.dtype)
