"""Pure-PyTorch reference of the AG-Residual genre prior (CPU path and test oracle).

    out = V + phi(cos(V, G)) @ (G @ W)

V: (M, D) tokens, G: (N_g, D) genre text embeddings, W: (D, D) trainable.
phi is the identity (default) or a softmax over genres with a temperature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PHI_CHOICES = ("identity", "softmax")
EPS = 1e-6  # as F.normalize(eps=1e-6): rows with |V| < EPS are divided by EPS


def _similarity(v: torch.Tensor, g: torch.Tensor, compute: torch.dtype) -> torch.Tensor:
    """cos(V, G) = (V @ Ĝ^T) / max(|V|, eps): V is never normalised in memory (fewer passes)."""
    g_hat = F.normalize(g.to(compute), dim=-1, eps=EPS)
    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(EPS)
    return (v @ g_hat.T) / norm


def _phi(sim: torch.Tensor, phi: str, temperature: float) -> torch.Tensor:
    if phi == "softmax":
        return torch.softmax(sim / temperature, dim=-1)
    if phi != "identity":
        raise ValueError(f"phi must be one of {PHI_CHOICES}, got {phi!r}")
    return sim


def genre_affinity(
    v: torch.Tensor, g: torch.Tensor, phi: str = "identity", temperature: float = 1.0
) -> torch.Tensor:
    """phi(cos(V, G)): (M, N_g) in float32 (or float64 if V is float64)."""
    compute = torch.float64 if v.dtype == torch.float64 else torch.float32
    return _phi(_similarity(v.to(compute), g, compute), phi, temperature)


def ag_residual_reference(
    v: torch.Tensor,
    g: torch.Tensor,
    gw: torch.Tensor,
    phi: str = "identity",
    temperature: float = 1.0,
) -> torch.Tensor:
    """out = V + phi(cos(V, G)) @ GW, with GW = G @ W precomputed; same dtype as V."""
    compute = torch.float64 if v.dtype == torch.float64 else torch.float32
    vc = v.to(compute)
    affinity = _phi(_similarity(vc, g, compute), phi, temperature)
    return torch.addmm(vc, affinity, gw.to(compute)).to(v.dtype)
