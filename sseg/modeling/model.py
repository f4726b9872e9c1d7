"""SceneModel: genre fusion on cached keyframe features + context boundary model.

Input to the model is frozen backbone features per keyframe, (N, K, D) for N
shots with K keyframes each (K=3; 1 for sub-shots from test-time splitting).
A shot feature is the mean over its keyframes of the genre-fused keyframe feature
(:mod:`sseg.modeling.genre_fusion`; default AG-Residual).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import InputError
from .context import BoundaryModel, ContextConfig, centred_windows, predict_boundaries
from .genre_fusion import GenreFusion

FORMAT = "sseg.scene_model.v1"


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Weights created inside come from ``seed`` alone; torch's global CPU random state is
    restored afterwards (so fine-tuning from a fresh model repeats bit for bit)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class SceneModel(nn.Module):
    """Everything after the frozen backbone, saved and loaded as one safetensors file.

    ``genre_residual`` is the shot-level part (:class:`~sseg.modeling.genre_fusion.GenreFusion`:
    the genre bank and its trainable weights); ``boundary`` is the context encoder + head.
    """

    def __init__(
        self,
        genre_embeddings: torch.Tensor,
        context: ContextConfig | None = None,
        phi: str = "identity",
        temperature: float = 1.0,
        meta: dict[str, Any] | None = None,
        genre_fusion: str = "ag_residual",
    ):
        super().__init__()
        extra = 1 if genre_fusion == "token_concat" else 0
        context = context or ContextConfig(input_dim=genre_embeddings.shape[1])
        if context.input_dim != genre_embeddings.shape[1]:
            raise ValueError("context input_dim must equal the genre embedding dim")
        if context.extra_tokens != extra:
            context = ContextConfig(**{**context.to_dict(), "extra_tokens": extra})
        self.genre_residual = GenreFusion(genre_embeddings, genre_fusion, phi, temperature)
        self.boundary = BoundaryModel(context)
        self.meta = dict(meta or {})

    @property
    def genre_fusion(self) -> str:
        """How genre enters: ``ag_residual``, ``none``, ``frame_concat``, ``token_concat``."""
        return self.genre_residual.fusion

    def shot_features(self, keyframes: torch.Tensor) -> torch.Tensor:
        """(..., K, D) keyframe features -> (..., D) genre-enriched shot features."""
        return self.genre_residual.shot_features(keyframes)

    def encode(
        self, keyframes: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, W, K, D) windows -> shot features (B, W, D) and context tokens (B, W, H)."""
        shots = self.shot_features(keyframes)
        if valid is not None:
            shots = shots * valid[..., None].to(shots.dtype)
        return shots, self.boundary.encoder(shots, valid, self._extra(keyframes, valid))

    def _extra(self, keyframes: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor | None:
        token = self.genre_residual.window_token(self.genre_residual.shot_readout(keyframes), valid)
        return None if token is None else token[:, None]

    def forward(self, keyframes: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, W, K, D) windows of keyframe features -> (B,) centre-shot logits."""
        extra = self._extra(keyframes, valid)
        return self.boundary(self.shot_features(keyframes), valid, extra)

    @torch.no_grad()
    def predict(self, keyframes: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """P(shot ends a scene) for each of N shots of one video: (N, K, D) -> (N,)."""
        readout = self.genre_residual.shot_readout(keyframes)
        extra = None
        if readout is not None:
            windows, valid = centred_windows(readout, self.boundary.config.window)
            extra = self.genre_residual.window_token(windows, valid)[:, None]
        return predict_boundaries(self.boundary, self.shot_features(keyframes), batch_size, extra)

    def fresh_context(self, context: ContextConfig | None = None, seed: int = 0) -> SceneModel:
        """A copy with the same shot-level part (bank + trained genre weights) and a newly
        initialised context encoder and head (``context`` or this model's config)."""
        config = context or self.boundary.config
        with seeded_init(seed):
            model = SceneModel(
                self.genre_residual.genres,
                config,
                self.genre_residual.phi,
                self.genre_residual.temperature,
                self.meta,
                self.genre_fusion,
            )
        model.genre_residual.load_state_dict(self.genre_residual.state_dict())
        return model.to(self.genre_residual.genres.device)

    def fresh_head(self, seed: int = 0) -> SceneModel:
        """Replace the boundary head with a newly initialised one (from ``seed``, the global
        random state untouched); keeps the context encoder. Returns ``self``."""
        with seeded_init(seed):
            self.boundary.head = self.boundary.new_head()
        return self

    def config(self) -> dict[str, Any]:
        """JSON-able description sufficient to rebuild the module."""
        return {
            "format": FORMAT,
            "context": self.boundary.config.to_dict(),
            "phi": self.genre_residual.phi,
            "temperature": self.genre_residual.temperature,
            "genre_fusion": self.genre_fusion,
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
        try:
            model = cls(
                tensors["genre_residual.genres"],
                ContextConfig(**{"version": 1, **config["context"]}),  # v1 predates the key
                phi=config["phi"],
                temperature=config["temperature"],
                meta=config.get("meta"),
                genre_fusion=config.get("genre_fusion", "ag_residual"),
            )
            model.load_state_dict(tensors)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise InputError(f"weights do not match the model config ({exc})", path) from exc
        return model.to(device)
