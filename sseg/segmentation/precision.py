"""Inference precision: ``fp32``, ``fp16``, ``bf16`` or ``auto`` for a device.

``auto`` picks bf16 where the hardware computes it natively (CUDA GPUs, and CPUs with
AVX512-BF16 or AMX-BF16, such as Intel Xeon since Cooper Lake / Sapphire Rapids), fp32
elsewhere: on those CPUs oneDNN runs bf16 convolutions and matmuls several times faster
than fp32 (bench/results/cpu-vs-pyscenedetect.md), while on other CPUs bf16 is emulated
and slower. fp16 stays GPU-only.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ..errors import InputError

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CHOICES = ("auto", *PRECISIONS)
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 arithmetic instructions that oneDNN uses."""
    return bool(cpu_flags() & NATIVE_BF16_CPU_FLAGS) and torch.backends.mkldnn.is_available()


def resolve_precision(precision: str, device: str) -> tuple[str, str | None]:
    """(precision to use, note for the user or None) for ``device``.

    ``auto`` -> bf16 on CUDA and on CPUs with native bf16, else fp32. fp16 needs CUDA;
    bf16 on a CPU without native bf16 works (emulated, slow) and says so.
    """
    if precision not in CHOICES:
        raise InputError(f"unknown precision {precision!r} (use {', '.join(CHOICES)})")
    cuda = device.startswith("cuda")
    if precision == "auto":
        return ("bf16" if cuda or cpu_has_native_bf16() else "fp32"), None
    if precision == "fp16" and not cuda:
        return "fp32", f"--precision fp16 needs a CUDA device; using fp32 on {device}"
    if precision == "bf16" and not cuda and not cpu_has_native_bf16():
        return "bf16", "this CPU has no native bf16 arithmetic: --precision bf16 is emulated (slow)"
    return precision, None
