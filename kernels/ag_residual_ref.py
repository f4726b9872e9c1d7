"""Pure-PyTorch reference of the AG-Residual genre prior (CPU path and test oracle).

    out = V + phi(cos(V, G)) @ (G @ W)
    shot mean: out_n = mean_k (V_nk + phi(cos(V_nk, G)) @ GW) = mean_k V_nk + (mean_k A_nk) @ GW

V: (M, D) tokens (or (..., K, D) keyframes for the shot mean), G: (N_g, D) genre text
embeddings, W: (D, D) trainable. phi is the identity (default) or a softmax over genres
with a temperature. ``genre_on`` (N_g,) float, 1 = genre in use, 0 = masked out (a
video's metadata genres): masked genres get affinity 0 (identity) or are left out of the
softmax. ``None`` uses every genre.
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


def _phi(
    sim: torch.Tensor, phi: str, temperature: float, genre_on: torch.Tensor | None = None
) -> torch.Tensor:
    if phi == "softmax":
        logits = sim / temperature
        if genre_on is not None:
            logits = logits.masked_fill(genre_on.to(sim.device) == 0, float("-inf"))
        return torch.softmax(logits, dim=-1)
    if phi != "identity":
        raise ValueError(f"phi must be one of {PHI_CHOICES}, got {phi!r}")
    return sim if genre_on is None else sim * genre_on.to(sim)


def genre_on_from_mask(mask: torch.Tensor | None, n_genres: int, device) -> torch.Tensor:
    """(N_g,) float32 1/0 from an optional bool mask; an all-False mask means every genre.

    Pure tensor ops (no host sync, no data-dependent shape), so it traces under
    ``torch.compile(fullgraph=True)``.
    """
    if mask is None:
        return torch.ones(n_genres, device=device, dtype=torch.float32)
    on = mask.to(device=device, dtype=torch.float32)
    return torch.where(on.sum() > 0, on, torch.ones_like(on))


def genre_affinity(
    v: torch.Tensor,
    g: torch.Tensor,
    phi: str = "identity",
    temperature: float = 1.0,
    genre_on: torch.Tensor | None = None,
) -> torch.Tensor:
    """phi(cos(V, G)): (M, N_g) in float32 (or float64 if V is float64)."""
    compute = torch.float64 if v.dtype == torch.float64 else torch.float32
    return _phi(_similarity(v.to(compute), g, compute), phi, temperature, genre_on)


def ag_residual_reference(
    v: torch.Tensor,
    g: torch.Tensor,
    gw: torch.Tensor,
    phi: str = "identity",
    temperature: float = 1.0,
    genre_on: torch.Tensor | None = None,
) -> torch.Tensor:
    """out = V + phi(cos(V, G)) @ GW, with GW = G @ W precomputed; same dtype as V."""
    affinity = genre_affinity(v, g, phi, temperature, genre_on)
    vc = v.to(affinity.dtype)
    return (vc + affinity @ gw.to(affinity.dtype)).to(v.dtype)


def ag_residual_shot_mean_reference(
    v: torch.Tensor,
    g: torch.Tensor,
    gw: torch.Tensor,
    phi: str = "identity",
    temperature: float = 1.0,
    genre_on: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the keyframe axis of the residual: v (..., K, D) -> (..., D), v's dtype."""
    affinity = genre_affinity(v, g, phi, temperature, genre_on)
    vc = v.to(affinity.dtype)
    return (vc.mean(dim=-2) + affinity.mean(dim=-2) @ gw.to(affinity.dtype)).to(v.dtype)
