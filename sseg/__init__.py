"""sseg: video scene segmentation with genre and shot-duration signals."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "segment"]


def __getattr__(name: str):
    # Lazy: importing sseg must stay cheap (no torch/open_clip until needed).
    if name == "segment":
        from .segmentation.pipeline import segment

        return segment
    raise AttributeError(f"module 'sseg' has no attribute {name!r}")
