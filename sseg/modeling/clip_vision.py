"""CLIP ViT image tower in plain torch: open_clip's ``visual.*`` weights, no open_clip.

:class:`CLIPImageTower` computes open_clip's ``encode_image`` (ViT, class-token pooling,
``ln_post`` then ``proj``) from the ``visual.*`` tensors of an open_clip ViT state dict;
its ``state_dict()`` keys are those same ``visual.*`` names, so weight fingerprints
(:func:`sseg.modeling.genres.image_tower_fingerprint`) agree with the full open_clip model's.
The shape (width, layers, patch and image size, MLP width, output dim) is read from the
state dict; heads are ``width // 64`` as in every open_clip ViT config. The tower is
built on the meta device and takes the given tensors as its parameters (no random init).

:class:`ClipPreprocess` is open_clip's image transform for square CLIP inputs (PIL
bicubic resize of the short side, centre crop, to tensor, CLIP mean/std), without
torchvision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HEAD_WIDTH = 64
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PREFIX = "visual."


@dataclass(frozen=True)
class VisionConfig:
    """Shape of a CLIP ViT image tower."""

    image_size: int = 224
    patch_size: int = 32
    width: int = 768
    layers: int = 12
    mlp_width: int = 3072
    output_dim: int = 512
    quick_gelu: bool = False

    @property
    def heads(self) -> int:
        """Attention heads (open_clip ViTs use 64-wide heads)."""
        return max(1, self.width // HEAD_WIDTH)

    @classmethod
    def from_state_dict(
        cls, state: Mapping[str, torch.Tensor], quick_gelu: bool = False
    ) -> VisionConfig:
        """The config whose tower has the shapes of ``state``'s ``visual.*`` tensors.

        Raises KeyError when a tensor the shape is read from is missing.
        """
        width, _, patch, _ = state[PREFIX + "conv1.weight"].shape
        grid = round((state[PREFIX + "positional_embedding"].shape[0] - 1) ** 0.5)
        blocks = {
            int(k[len(PREFIX) :].split(".")[2])
            for k in state
            if k.startswith(PREFIX + "transformer.resblocks.")
        }
        return cls(
            image_size=grid * patch,
            patch_size=patch,
            width=width,
            layers=len(blocks),
            mlp_width=state[PREFIX + "transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            output_dim=state[PREFIX + "proj"].shape[1],
            quick_gelu=quick_gelu,
        )


# open_clip's ViT-B-32 (model_configs/ViT-B-32.json)
VIT_B_32 = VisionConfig()


class QuickGELU(nn.Module):
    """OpenAI CLIP's GELU approximation ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class ResidualBlock(nn.Module):
    """Pre-norm transformer block (open_clip's ``ResidualAttentionBlock`` names)."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.width)
        self.attn = SelfAttention(cfg.width, cfg.heads)
        self.ln_2 = nn.LayerNorm(cfg.width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(cfg.width, cfg.mlp_width))
        self.mlp.add_module("gelu", QuickGELU() if cfg.quick_gelu else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(cfg.mlp_width, cfg.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """The block stack (``transformer.resblocks.N``)."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualBlock(cfg) for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class VisionTransformer(nn.Module):
    """open_clip's ``VisionTransformer`` forward for class-token pooled ViTs."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.config = cfg
        self.conv1 = nn.Conv2d(3, cfg.width, cfg.patch_size, cfg.patch_size, bias=False)
        grid = cfg.image_size // cfg.patch_size
        self.class_embedding = nn.Parameter(torch.empty(cfg.width))
        self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, cfg.width))
        self.ln_pre = nn.LayerNorm(cfg.width)
        self.transformer = Transformer(cfg)
        self.ln_post = nn.LayerNorm(cfg.width)
        self.proj = nn.Parameter(torch.empty(cfg.width, cfg.output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x.to(self.conv1.weight.dtype))  # (B, width, grid, grid)
        x = x.flatten(2).transpose(1, 2)  # (B, grid², width)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj  # ln_post is per token: pool first


class CLIPImageTower(nn.Module):
    """Frozen CLIP image tower: ``encode_image(x)`` equals open_clip's.

    ``sseg_model_id`` names the weights (the same id
    :func:`sseg.modeling.clip_backbone.load_clip` gives the full model), for caches.
    """

    def __init__(self, cfg: VisionConfig = VIT_B_32, model_id: str = ""):
        super().__init__()
        self.visual = VisionTransformer(cfg)
        self.sseg_model_id = model_id

    @property
    def config(self) -> VisionConfig:
        """The tower's shape."""
        return self.visual.config

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised images -> (B, output_dim) image embeddings."""
        return self.visual(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_image(x)

    @classmethod
    def from_state_dict(
        cls,
        state: Mapping[str, torch.Tensor],
        cfg: VisionConfig,
        model_id: str = "",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> CLIPImageTower:
        """A frozen eval-mode tower holding ``state``'s ``visual.*`` tensors in ``dtype``.

        ``state``'s keys and shapes must already match ``cfg`` (see :func:`expected_shapes`).
        Tensors are taken and converted one at a time (``state`` may read each when it is
        used: :class:`sseg.modeling.clip_backbone.SafetensorsTensors`), and ``weights_fingerprint``
        (:func:`sseg.modeling.genres.image_tower_fingerprint` of the float32 weights) is taken on
        the way, so loading in bf16 never holds a float32 copy of the tower.
        """
        from .genres import WeightsFingerprint

        with torch.device("meta"):
            tower = cls(cfg, model_id)
        fingerprint = WeightsFingerprint()
        tensors = {}
        for name in tower.state_dict():  # the module's order: the fingerprint's order
            tensor = state[name]
            if tensor.is_floating_point():
                tensor = tensor.to(device=device, dtype=torch.float32)
                fingerprint.add(name, tensor)
                tensor = tensor.to(dtype)
            tensors[name] = tensor.to(device)
            del tensor  # the float32 (or file-backed) one goes before the next is read
        tower.load_state_dict(tensors, strict=True, assign=True)
        tower.weights_fingerprint = fingerprint.hexdigest()
        return tower.eval().requires_grad_(False)


def expected_shapes(cfg: VisionConfig) -> dict[str, tuple[int, ...]]:
    """``visual.*`` name -> shape of a tower with config ``cfg`` (no tensors allocated)."""
    with torch.device("meta"):
        tower = CLIPImageTower(cfg)
    return {k: tuple(v.shape) for k, v in tower.state_dict().items()}


class ClipPreprocess:
    """open_clip's image transform for a square ``size`` input, without torchvision.

    PIL bicubic resize of the short side to ``size`` (the long side truncated, as
    torchvision's ``Resize`` does), centre crop ``size`` (torchvision's rounding), RGB
    float tensor in [0, 1], CLIP mean/std normalisation. Takes a PIL image or a uint8
    (H, W, 3) array; returns a (3, size, size) float32 tensor.
    """

    def __init__(self, size: int = 224, mean=CLIP_MEAN, std=CLIP_STD):
        self.size = size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"

    def __call__(self, image) -> torch.Tensor:
        from PIL import Image

        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        image = image.convert("RGB")
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        if short != self.size:
            new_long = int(self.size * long / short)
            new = (self.size, new_long) if width <= height else (new_long, self.size)
            image = image.resize(new, Image.Resampling.BICUBIC)
        image = self._centre_crop(image)
        x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
        x = x.contiguous().to(torch.float32).div(255)
        return x.sub_(self.mean).div_(self.std)

    def _centre_crop(self, image):
        # the short side is already ``size`` and the long side >= it, so no padding
        width, height = image.size
        top = int(round((height - self.size) / 2.0))
        left = int(round((width - self.size) / 2.0))
        return image.crop((left, top, left + self.size, top + self.size))
