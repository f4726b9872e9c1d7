"""SceneModel: genre residual on cached keyframe features + context boundary model.

Input to the model is frozen backbone features per keyframe, (N, K, D) for N
shots with K keyframes each (K=3; 1 for sub-shots from test-time splitting).
A shot feature is the mean over its keyframes of AG-Residual(keyframe feature).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .context import BoundaryModel, ContextConfig, predict_boundaries
from .errors import InputError
from .kernels import AGResidual, feature_dtype

FORMAT = "sseg.scene_model.v1"


class SceneModel(nn.Module):
    """Everything after the frozen backbone, saved and loaded as one safetensors file."""

    def __init__(
        self,
        genre_embeddings: torch.Tensor,
        context: ContextConfig | None = None,
        phi: str = "identity",
        temperature: float = 1.0,
        meta: dict[str, Any] | None = None,
    ):
        super().__init__()
        context = context or ContextConfig(input_dim=genre_embeddings.shape[1])
        if context.input_dim != genre_embeddings.shape[1]:
            raise ValueError("context input_dim must equal the genre embedding dim")
        self.genre_residual = AGResidual(genre_embeddings, phi=phi, temperature=temperature)
        self.boundary = BoundaryModel(context)
        self.meta = dict(meta or {})

    def shot_features(self, keyframes: torch.Tensor) -> torch.Tensor:
        """(..., K, D) keyframe features -> (..., D) genre-enriched shot features."""
        return self.genre_residual.shot_mean(keyframes.to(feature_dtype(keyframes)))

    def forward(self, keyframes: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, W, K, D) windows of keyframe features -> (B,) centre-shot logits."""
        return self.boundary(self.shot_features(keyframes), valid)

    @torch.no_grad()
    def predict(self, keyframes: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """P(shot ends a scene) for each of N shots of one video: (N, K, D) -> (N,)."""
        return predict_boundaries(self.boundary, self.shot_features(keyframes), batch_size)

    def config(self) -> dict[str, Any]:
        """JSON-able description sufficient to rebuild the module."""
        return {
            "format": FORMAT,
            "context": self.boundary.config.to_dict(),
            "phi": self.genre_residual.phi,
            "temperature": self.genre_residual.temperature,
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        """Atomically write weights + config to a safetensors file."""
        save_checkpoint(path, self.state_dict(), self.config())

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> SceneModel:
        """Rebuild a model saved by :meth:`save`; clear error if the file is not one."""
        tensors, config = load_checkpoint(path, device)
        if config.get("format") != FORMAT:
            raise InputError(f"not an sseg scene model (format={config.get('format')!r})", path)
        model = cls(
            tensors["genre_residual.genres"],
            ContextConfig(**config["context"]),
            phi=config["phi"],
            temperature=config["temperature"],
            meta=config.get("meta"),
        )
        try:
            model.load_state_dict(tensors)
        except RuntimeError as exc:
            raise InputError(f"weights do not match the model config ({exc})", path) from exc
        return model.to(device)
