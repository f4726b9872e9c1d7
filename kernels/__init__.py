"""Triton kernels of sseg (importable as ``sseg.kernels``), each beside a PyTorch reference."""

from .ag_residual import AGResidual, ag_residual, ag_residual_shot_mean, feature_dtype
from .ag_residual_ref import ag_residual_reference, ag_residual_shot_mean_reference

__all__ = [
    "AGResidual",
    "ag_residual",
    "ag_residual_reference",
    "ag_residual_shot_mean",
    "ag_residual_shot_mean_reference",
    "feature_dtype",
]
