"""setup.py decides whether to build the CUDA extension (SSEG_BUILD_CUDA, nvcc, torch)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import setuptools
import torch

ROOT = Path(__file__).resolve().parents[1]


def _extensions(monkeypatch, flag: str | None, nvcc: bool, torch_cuda: str | None, tmp_path):
    """Names of the extensions setup.py would build under these conditions."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if nvcc:
        fake = bin_dir / "nvcc"
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))  # only the fake nvcc (or none) is found
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "no-cuda"))
    if flag is None:
        monkeypatch.delenv("SSEG_BUILD_CUDA", raising=False)
    else:
        monkeypatch.setenv("SSEG_BUILD_CUDA", flag)
    monkeypatch.setattr(torch.version, "cuda", torch_cuda)
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"))
    return [ext.name for ext in captured["ext_modules"]]


@pytest.mark.parametrize(
    ("flag", "nvcc", "torch_cuda", "cuda_built"),
    [
        (None, True, "13.0", True),  # automatic: CUDA torch + nvcc
        ("auto", True, None, False),  # CPU torch
        (None, False, "13.0", False),  # no nvcc
        ("0", True, "13.0", False),  # the escape hatch
        ("1", True, None, True),  # forced
    ],
)
def test_cuda_extension_is_built_when_torch_has_cuda_and_nvcc_is_present(
    monkeypatch, tmp_path, flag, nvcc, torch_cuda, cuda_built
):
    names = _extensions(monkeypatch, flag, nvcc, torch_cuda, tmp_path)
    assert "sseg._dtw_cpu" in names
    assert ("sseg._dtw_cuda" in names) == cuda_built


def test_an_isolated_build_without_torch_needs_a_driver(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):  # `import torch` fails, as in an isolated build
        if name == "torch":
            raise ImportError("no torch in the build environment")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    names = _extensions(monkeypatch, None, True, None, tmp_path)
    has_driver = Path("/proc/driver/nvidia/version").exists()
    assert ("sseg._dtw_cuda" in names) == has_driver


def test_forcing_cuda_without_nvcc_or_with_a_bad_flag_fails_clearly(monkeypatch, tmp_path):
    with pytest.raises(SystemExit, match="nvcc was not found"):
        _extensions(monkeypatch, "1", False, "13.0", tmp_path)
    with pytest.raises(SystemExit, match="SSEG_BUILD_CUDA must be"):
        _extensions(monkeypatch, "maybe", True, "13.0", tmp_path)
