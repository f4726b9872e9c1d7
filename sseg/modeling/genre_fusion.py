"""How the genre bank G enters the shot features: one setting, ``genre_fusion``.

Every variant reads the same genre evidence from a keyframe feature v (D,):
``a(v) = phi(cos(v, G)) @ G``, the genre read-out AG-Residual uses, and every variant's
trainable part starts at zero effect, so an untrained (or not pre-trained) model is the
no-genre model and only training decides what genre adds.

* ``ag_residual``: shot = ``mean_k(v_k + a(v_k) W)``, the paper's AG-Residual;
  trains W (D, D), zero at init.
* ``none``: shot = ``mean_k(v_k)``; nothing to train.
* ``frame_concat``: shot = ``mean_k(P [v_k ; a(v_k)])``, each keyframe feature
  concatenated with its read-out and projected back to D; trains P (D, 2D), ``[I, 0]``
  at init.
* ``token_concat``: shot = ``mean_k(v_k)``, plus one extra token per window,
  ``mean over the window's shots of a(v)`` times W, after the context encoder's shot
  tokens; trains W (D, D), zero at init.

The paper's frame- and token-level concatenation act inside the ViT; the backbone here is
frozen and its outputs are cached, so both act on the projected keyframe embeddings
instead (docs/genre_prior.md). Which texts built G (definitions or bare names) is a
property of the bank, not of the fusion.
"""

from __future__ import annotations

import torch
from torch import nn

from ..kernels import AGResidual, feature_dtype
from ..kernels.ag_residual_ref import genre_affinity

FUSIONS = ("ag_residual", "none", "frame_concat", "token_concat")


class GenreFusion(AGResidual):
    """Keyframe features (..., K, D) -> shot features (..., D) (+ per-shot genre read-out).

    An :class:`AGResidual` (bank ``genres``, ``weight`` W, phi, temperature) with the
    other fusions' projections beside it, so every variant saves the same bank and W keys.
    """

    def __init__(
        self,
        genre_embeddings: torch.Tensor,
        fusion: str = "ag_residual",
        phi: str = "identity",
        temperature: float = 1.0,
    ):
        if fusion not in FUSIONS:
            raise ValueError(f"genre fusion must be one of {FUSIONS}, got {fusion!r}")
        super().__init__(genre_embeddings, phi=phi, temperature=temperature)
        self.fusion = fusion
        dim = genre_embeddings.shape[1]
        if fusion not in ("ag_residual", "token_concat"):
            self.weight.requires_grad_(False)  # unused: stays zero
        if fusion == "frame_concat":
            self.frame_proj = nn.Linear(2 * dim, dim, bias=False)
            with torch.no_grad():
                self.frame_proj.weight.zero_()
                self.frame_proj.weight[:, :dim].copy_(torch.eye(dim))

    @property
    def adds_token(self) -> bool:
        """True when the context encoder gets one extra genre token per window."""
        return self.fusion == "token_concat"

    def readout(self, keyframes: torch.Tensor) -> torch.Tensor:
        """a(v) = phi(cos(v, G)) @ G for (..., D) features, in float32."""
        flat = keyframes.reshape(-1, keyframes.shape[-1]).float()
        affinity = genre_affinity(flat, self.genres, self.phi, self.temperature)
        return (affinity @ self.genres).reshape(keyframes.shape)

    def shot_features(self, keyframes: torch.Tensor) -> torch.Tensor:
        """(..., K, D) keyframe features -> (..., D) shot features."""
        v = keyframes.to(feature_dtype(keyframes))  # bf16/fp16 under CUDA autocast
        if self.fusion == "ag_residual":
            return self.shot_mean(v)  # fused mean over keyframes
        if self.fusion == "frame_concat":
            readout = self.readout(v).to(v.dtype)
            return self.frame_proj(torch.cat([v, readout], dim=-1)).mean(dim=-2)
        return v.mean(dim=-2)

    def shot_readout(self, keyframes: torch.Tensor) -> torch.Tensor | None:
        """(..., K, D) -> (..., D) per-shot genre read-out for ``token_concat``, else None."""
        if not self.adds_token:
            return None
        return self.readout(keyframes.float()).mean(dim=-2)

    def window_token(
        self, readout: torch.Tensor | None, valid: torch.Tensor | None
    ) -> torch.Tensor | None:
        """(B, W, D) per-shot read-outs of a window -> (B, D) genre token (None if unused)."""
        if readout is None:
            return None
        if valid is None:
            pooled = readout.mean(dim=1)
        else:
            weight = valid.to(readout.dtype)[..., None]
            pooled = (readout * weight).sum(1) / weight.sum(1).clamp(min=1.0)
        return pooled @ self.weight
