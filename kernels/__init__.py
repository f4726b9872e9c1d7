"""Triton kernels of sseg (importable as ``sseg.kernels``), each beside a PyTorch reference."""

from .ag_residual import AGResidual, ag_residual, ag_residual_shot_mean
from .ag_residual_ref import ag_residual_reference

__all__ = ["AGResidual", "ag_residual", "ag_residual_reference", "ag_residual_shot_mean"]
