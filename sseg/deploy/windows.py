"""The scene model as a function of keyframe windows: the unit deployment runs.

A window is ``W`` consecutive shots (``W`` = the model's context window, odd) of ``K``
keyframe features each, centred on the shot being scored; ``valid`` marks the real
shots of windows that run past either end of a video. :class:`WindowScorer` maps
``(B, W, K, D)`` keyframes and ``(B, W)`` valid flags to the ``(B,)`` probabilities that
each window's centre shot ends a scene, exactly as :meth:`SceneModel.predict` scores
that shot (padded shots enter the context model as zero features there too).

Every scorer used by :mod:`sseg.deploy` (this module, a ``torch.compile`` of it, an
exported program or an AOTInductor package) is such a callable with ``window`` and
``device`` attributes; :func:`as_scorer` turns a :class:`SceneModel` into one.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from ..modeling.context import centred_windows
from ..modeling.model import SceneModel


class Scorer(Protocol):
    """(B, W, K, D) keyframe windows, (B, W) valid -> (B,) float32 probabilities."""

    window: int
    device: torch.device

    def __call__(self, keyframes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor: ...


class WindowScorer(nn.Module):
    """Centre-shot boundary probabilities of keyframe windows (eager, exportable).

    Puts ``model`` in eval mode. Call it under ``torch.no_grad()`` (the deploy helpers do).
    """

    def __init__(self, model: SceneModel):
        super().__init__()
        self.model = model.eval()  # deployment never trains: dropout off
        context = model.config()["context"]
        self.window: int = int(context["window"])
        self.dim: int = int(context["input_dim"])

    @property
    def device(self) -> torch.device:
        """Device of the model's weights."""
        return next(self.model.parameters()).device

    def forward(self, keyframes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, W, K, D) keyframes, (B, W) bool -> (B,) P(centre shot ends a scene)."""
        # Padded shots are zero features, as predict pads its shot features; encode()
        # also adds the genre token of token-level fusion.
        _, tokens = self.model.encode(keyframes, valid)
        head = self.model.boundary.head
        return torch.sigmoid(head.at(tokens, keyframes.shape[1] // 2).float())


def as_scorer(model: SceneModel | Scorer) -> Scorer:
    """A :class:`SceneModel` wrapped in an eval-mode :class:`WindowScorer`; scorers as given."""
    return WindowScorer(model) if isinstance(model, SceneModel) else model


def keyframe_windows(keyframes: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All windows of one video, one centred on each shot.

    Args:
        keyframes: (N, K, D) keyframe features.
        window: odd window length W.
    Returns:
        windows (N, W, K, D) (a view over a zero-padded copy; zeros where padded) and
        valid (N, W) bool.
    """
    if keyframes.ndim != 3:
        raise ValueError(f"keyframes must be (N, K, D), got shape {tuple(keyframes.shape)}")
    n, k, d = keyframes.shape
    windows, valid = centred_windows(keyframes.reshape(n, k * d), window)
    return windows.unflatten(-1, (k, d)), valid
