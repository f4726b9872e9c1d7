"""Precision resolution: auto picks bf16 only where the hardware computes it natively."""

from __future__ import annotations

import pytest

from sseg.errors import InputError
from sseg.segmentation import precision


@pytest.fixture
def native(monkeypatch):
    def set_native(value: bool) -> None:
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)

    return set_native


def test_auto_is_bf16_on_gpus_and_native_bf16_cpus_only(native):
    native(True)
    assert precision.resolve_precision("auto", "cpu") == ("bf16", None)
    native(False)
    assert precision.resolve_precision("auto", "cpu") == ("fp32", None)
    assert precision.resolve_precision("auto", "cuda:0") == ("bf16", None)


def test_explicit_choices(native):
    native(False)
    assert precision.resolve_precision("fp32", "cpu") == ("fp32", None)
    used, note = precision.resolve_precision("fp16", "cpu")
    assert used == "fp32" and "needs a CUDA device" in note
    used, note = precision.resolve_precision("bf16", "cpu")
    assert used == "bf16" and "emulated" in note
    native(True)
    assert precision.resolve_precision("bf16", "cpu") == ("bf16", None)
    assert precision.resolve_precision("fp16", "cuda") == ("fp16", None)
    with pytest.raises(InputError, match="unknown precision 'int8'"):
        precision.resolve_precision("int8", "cpu")


def test_cpu_flags_read_the_kernels_list(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n\nprocessor\t: 1\n")
    flags = precision.cpu_flags(info)
    assert {"avx512f", "amx_bf16"} <= flags and bool(flags & precision.NATIVE_BF16_CPU_FLAGS)
    arm = tmp_path / "arm"
    arm.write_text("Features\t: fp asimd bf16\n")
    assert "bf16" in precision.cpu_flags(arm)
    assert precision.cpu_flags(tmp_path / "missing") == frozenset()
