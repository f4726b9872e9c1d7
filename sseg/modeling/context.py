"""Context encoder: a BERT-style transformer over a window of shot features.

Shared by pre-training (pseudo-boundary head), fine-tuning and inference.
A window of ``window`` shots (odd, default 17) is centred on the shot whose
"ends a scene" probability we want. Windows that run past either end of the
video are padded and masked.

Design (``version=2``, docs/learning_curves.md has the measurements behind it):

* shot features are unit-normalised before the input projection (CLIP features are
  compared by angle; their norm carries no scene information);
* each shot token also gets its row of the window's self-similarity matrix (cosine to
  every shot of the window), projected: scene boundaries are block edges of that matrix,
  a relation that holds in every film, whereas the features themselves differ from film
  to film (a model that sees only them memorises its training films);
* the projected content is layer-normalised *before* the positions are added, so content
  dominates a fresh model's tokens (positions start at BERT's std 0.02);
* the boundary head reads a shot's token **and the next shot's**
  (``[h_t, h_t+1, h_t * h_t+1]``): "shot t ends a scene" is a statement about the cut
  between t and t+1, and a head on h_t alone has to learn to copy h_t+1 into h_t first.

``version=1`` (models saved before this design) keeps the old behaviour: raw inputs,
unit-scale positions, a head on the centre token alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class ContextConfig:
    """Hyper-parameters of :class:`ContextEncoder` (BaSSL defaults)."""

    input_dim: int = 512
    hidden: int = 768
    heads: int = 8
    layers: int = 2
    window: int = 17
    dropout: float = 0.1
    ffn_mult: int = 4
    extra_tokens: int = 0  # tokens appended after the shots (1 for token-level genre fusion)
    version: int = 2  # 1: models saved before input normalisation and the pair head

    def to_dict(self) -> dict:
        """Plain-dict form, for checkpoint metadata."""
        return asdict(self)


class ContextEncoder(nn.Module):
    """Transformer over (B, W, input_dim) shot features -> (B, W, hidden)."""

    def __init__(self, config: ContextConfig | None = None):
        super().__init__()
        self.config = config or ContextConfig()
        cfg = self.config
        if cfg.window < 1 or cfg.window % 2 == 0:
            raise ValueError(f"window must be a positive odd number, got {cfg.window}")
        if cfg.version not in (1, 2):
            raise ValueError(f"context encoder version must be 1 or 2, got {cfg.version}")
        self.input_proj = nn.Linear(cfg.input_dim, cfg.hidden)
        self.positions = nn.Parameter(torch.zeros(cfg.window + cfg.extra_tokens, cfg.hidden))
        nn.init.normal_(self.positions, std=1.0 if cfg.version == 1 else 0.02)
        if cfg.version >= 2:
            self.similarity_proj = nn.Linear(cfg.window, cfg.hidden, bias=False)
            self.content_norm = nn.LayerNorm(cfg.hidden)
        self.input_norm = nn.LayerNorm(cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=cfg.hidden,
            nhead=cfg.heads,
            dim_feedforward=cfg.ffn_mult * cfg.hidden,
            dropout=cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=False,  # post-LN, as in BERT
        )
        self.transformer = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)

    def _content(
        self, shots: torch.Tensor, valid: torch.Tensor | None, similarity: bool = True
    ) -> torch.Tensor:
        """Projected shot features. Version 2: unit-normalised features plus each shot's row
        of the window's self-similarity matrix (cosine to every shot of the window, 0 at
        padding), layer-normalised."""
        if self.config.version == 1:
            return self.input_proj(shots)
        unit = torch.nn.functional.normalize(shots, dim=-1, eps=1e-6)
        content = self.input_proj(unit)
        if similarity:
            if valid is not None:
                unit = unit * valid[..., None].to(unit.dtype)
            sim = unit @ unit.transpose(1, 2)  # (B, W, W)
            pad = self.config.window - sim.shape[-1]
            content = content + self.similarity_proj(torch.nn.functional.pad(sim, (0, pad)))
        return self.content_norm(content)

    def forward(
        self,
        shots: torch.Tensor,
        valid: torch.Tensor | None = None,
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode a window of shots.

        Args:
            shots: (B, W, input_dim) shot features, W <= config.window.
            valid: optional (B, W) bool, True where a real shot sits.
            extra: (B, extra_tokens, input_dim) tokens appended after the shots, required
                when ``config.extra_tokens`` > 0 (e.g. the genre token).
        Returns:
            (B, W, hidden) contextualised shot tokens (extra tokens are not returned).
        """
        width = shots.shape[1]
        cfg = self.config
        if width > cfg.window:
            raise ValueError(f"window of {width} shots exceeds configured {cfg.window}")
        if (extra is None) != (cfg.extra_tokens == 0):
            raise ValueError(f"the encoder takes {cfg.extra_tokens} extra token(s)")
        tokens = self._content(shots, valid) + self.positions[:width]
        if extra is not None:
            extra_tokens = (
                self._content(extra, None, similarity=False) + self.positions[cfg.window :]
            )
            tokens = torch.cat([tokens, extra_tokens], dim=1)
            if valid is not None:
                valid = torch.cat([valid.bool(), valid.new_ones(extra.shape[:2]).bool()], 1)
        tokens = self.dropout(self.input_norm(tokens))
        padding_mask = None if valid is None else ~valid.bool()
        return self.transformer(tokens, src_key_padding_mask=padding_mask)[:, :width]


class BoundaryHead(nn.Module):
    """MLP giving the logit that a token's shot is the last shot of a scene.

    ``pair=True`` (version 2): the MLP reads ``[h_t, h_t+1, h_t * h_t+1]`` (zeros stand
    in for the token after the window's last); ``pair=False``: ``h_t`` alone.
    """

    def __init__(self, hidden: int = 768, inner: int | None = None, pair: bool = True):
        super().__init__()
        inner = inner or hidden
        self.pair = pair
        width = 3 * hidden if pair else hidden
        self.mlp = nn.Sequential(nn.Linear(width, inner), nn.GELU(), nn.Linear(inner, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, W, hidden) -> (B, W) logits, one per shot."""
        if not self.pair:
            return self.mlp(tokens).squeeze(-1)
        following = torch.nn.functional.pad(tokens[:, 1:], (0, 0, 0, 1))
        return self.mlp(torch.cat([tokens, following, tokens * following], -1)).squeeze(-1)

    def at(self, tokens: torch.Tensor, index: int) -> torch.Tensor:
        """(B, W, hidden) -> (B,) logits of shot ``index`` only."""
        if not self.pair:
            return self.mlp(tokens[:, index]).squeeze(-1)
        here = tokens[:, index]
        nxt = tokens[:, index + 1] if index + 1 < tokens.shape[1] else torch.zeros_like(here)
        return self.mlp(torch.cat([here, nxt, here * nxt], -1)).squeeze(-1)


class BoundaryModel(nn.Module):
    """Context encoder + head; predicts for the centre shot of each window."""

    def __init__(self, config: ContextConfig | None = None):
        super().__init__()
        self.encoder = ContextEncoder(config)
        self.head = self.new_head()

    @property
    def config(self) -> ContextConfig:
        """The encoder's configuration."""
        return self.encoder.config

    def new_head(self) -> BoundaryHead:
        """A freshly initialised head of this model's kind."""
        return BoundaryHead(self.config.hidden, pair=self.config.version >= 2)

    def forward(
        self,
        shots: torch.Tensor,
        valid: torch.Tensor | None = None,
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, W, D) windows -> (B,) logits of the centre shot ending a scene."""
        tokens = self.encoder(shots, valid, extra)
        return self.head.at(tokens, shots.shape[1] // 2)


def centred_windows(features: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All windows of a sequence, one centred on each shot.

    Args:
        features: (N, D) shot features of one video.
        window: odd window length W.
    Returns:
        windows (N, W, D) (zeros where padded) and valid (N, W) bool.
    """
    if features.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(features.shape)}")
    n, _ = features.shape
    half = window // 2
    padded = torch.nn.functional.pad(features, (0, 0, half, half))
    windows = padded.unfold(0, window, 1).transpose(1, 2)  # (N, W, D)
    index = torch.arange(n, device=features.device)[:, None] + torch.arange(
        -half, half + 1, device=features.device
    )
    valid = (index >= 0) & (index < n)
    return windows, valid


@torch.no_grad()
def predict_boundaries(
    model: BoundaryModel,
    features: torch.Tensor,
    batch_size: int = 256,
    extra: torch.Tensor | None = None,
) -> torch.Tensor:
    """P(shot ends a scene) for every shot of one video, shape (N,), float32 on CPU.

    ``extra``: (N, E, D) extra tokens of the window centred on each shot, for encoders
    configured with ``extra_tokens`` = E.
    """
    if features.shape[0] == 0:
        return torch.zeros(0)
    was_training = model.training
    model.eval()
    windows, valid = centred_windows(features, model.config.window)
    probs = []
    for start in range(0, windows.shape[0], batch_size):
        part = slice(start, start + batch_size)
        logits = model(windows[part], valid[part], None if extra is None else extra[part])
        probs.append(torch.sigmoid(logits.float()).cpu())
    model.train(was_training)
    return torch.cat(probs)
