"""Shot encoder: frozen CLIP image tower + AG-Residual genre prior + mean over keyframes.

Injection point ``"projected"`` (the only one): AG-Residual acts on CLIP's final
projected image embedding, the space the genre text embeddings live in. The frozen
backbone's output per keyframe (:meth:`ShotEncoder.encode_keyframes`) can therefore be
computed once and cached (``sseg.store.features``); pre-training and fine-tuning then run only
the cheap part (:meth:`ShotEncoder.shot_features`, the same math as
``sseg.modeling.model.SceneModel.shot_features``). Injecting earlier (e.g. on the CLS token
before the projection) would need the backbone at every step and cannot use that cache,
so it is not offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..kernels import AGResidual, feature_dtype
from .clip_vision import CLIP_MEAN, CLIP_STD

INJECTION_POINTS = ("projected",)
IMAGE_SIZE = 224


def _check_frame(frame: np.ndarray, index: int) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise InputError(f"frame {index}: expected a uint8 numpy array, got {type(frame)}")
    if frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < 1:
        raise InputError(f"frame {index}: expected shape (H, W, 3), got {frame.shape}")


def preprocess_frames(
    frames: Sequence[np.ndarray], preprocess=None, image_size: int = IMAGE_SIZE
) -> torch.Tensor:
    """RGB uint8 frames (H, W, 3) -> CLIP input (n, 3, S, S) float32.

    With ``preprocess`` (open_clip's transform from :func:`sseg.modeling.clip_backbone.load_clip`,
    or its torchvision-free equal :class:`sseg.modeling.clip_vision.ClipPreprocess`) each frame goes
    through it exactly; without, a pure-torch equivalent: bicubic resize of
    the short side to ``image_size``, centre crop, CLIP mean/std normalisation.
    """
    for i, frame in enumerate(frames):
        _check_frame(frame, i)
    if not frames:
        return torch.empty(0, 3, image_size, image_size)
    if preprocess is not None:
        from PIL import Image

        return torch.stack([preprocess(Image.fromarray(f)) for f in frames])
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    out = []
    for frame in frames:
        x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float()[None] / 255
        h, w = x.shape[-2:]
        scale = image_size / min(h, w)
        size = (max(image_size, round(h * scale)), max(image_size, round(w * scale)))
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
        top, left = (size[0] - image_size) // 2, (size[1] - image_size) // 2
        x = x[0, :, top : top + image_size, left : left + image_size].clamp(0, 1)
        out.append((x - mean) / std)
    return torch.stack(out)


class ShotEncoder(nn.Module):
    """Frozen CLIP image tower + trainable AG-Residual (W zero-init: starts as identity)."""

    def __init__(
        self,
        clip_model: nn.Module,
        genre_embeddings: torch.Tensor,
        phi: str = "identity",
        temperature: float = 1.0,
        injection: str = "projected",
        batch_size: int = 64,
        preprocess=None,
    ):
        super().__init__()
        if injection not in INJECTION_POINTS:
            raise ValueError(f"injection must be one of {INJECTION_POINTS}, got {injection!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backbone = clip_model.eval().requires_grad_(False)
        self.genre_residual = AGResidual(genre_embeddings, phi=phi, temperature=temperature)
        self.injection = injection
        self.batch_size = batch_size
        self.preprocess = preprocess

    @classmethod
    def from_pretrained(
        cls,
        pretrained: str | Path | None,
        model_name: str = "ViT-B-32",
        device: str | torch.device = "cpu",
        genre_mode: str = "definition",
        cache_dir: str | Path | None = None,
        **kwargs,
    ) -> ShotEncoder:
        """Load CLIP (:func:`sseg.modeling.clip_backbone.load_clip`) and its cached genre bank."""
        from .clip_backbone import load_clip
        from .genres import genre_embeddings

        model, preprocess, tokenizer = load_clip(pretrained, model_name, device)
        bank = genre_embeddings(model, tokenizer, mode=genre_mode, cache_dir=cache_dir)
        return cls(model, bank, preprocess=preprocess, **kwargs).to(device)

    def train(self, mode: bool = True) -> ShotEncoder:
        """Train mode never reaches the frozen backbone (no dropout/BN updates there)."""
        super().train(mode)
        self.backbone.eval()
        return self

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return self.genre_residual.genres.shape[1]

    @torch.no_grad()
    def encode_keyframes(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen backbone features: (N*K, 3, 224, 224) -> (N*K, D) float32, batched."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        param = next(self.backbone.parameters())
        if images.shape[0] == 0:
            return torch.empty(0, self.dim, device=param.device)
        feats = [
            self.backbone.encode_image(chunk.to(param.device, param.dtype)).float()
            for chunk in images.split(self.batch_size)
        ]
        return torch.cat(feats)

    def shot_features(
        self, keyframe_features: torch.Tensor, genre_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(..., K, D) backbone (or cached) features -> (..., D): mean_k AG-Residual(f_k)."""
        x = keyframe_features.to(feature_dtype(keyframe_features))
        return self.genre_residual.shot_mean(x, genre_mask)

    def forward(self, images: torch.Tensor, genre_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N, K, 3, H, W) keyframe images -> (N, D) shot features."""
        if images.ndim != 5:
            raise ValueError(f"images must be (N, K, 3, H, W), got {tuple(images.shape)}")
        n, k = images.shape[:2]
        feats = self.encode_keyframes(images.flatten(0, 1)).view(n, k, -1)
        return self.shot_features(feats, genre_mask)

    def preprocess_frames(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 frames -> CLIP input, with this model's own transform when known."""
        return preprocess_frames(frames, self.preprocess)
