"""Tensor operators of sseg (compiled where it pays off, PyTorch references alongside)."""

from __future__ import annotations

from .pseudo_boundary import pseudo_boundaries, pseudo_boundaries_reference

__all__ = ["pseudo_boundaries", "pseudo_boundaries_reference"]
