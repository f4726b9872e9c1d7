"""Build script for sseg's compiled pieces.

* ``sseg._dtw_cpu``: C++/OpenMP pseudo-boundary search (pybind11, no torch headers),
  always built.
* ``sseg._dtw_cuda``: the same search as a CUDA kernel. ``SSEG_BUILD_CUDA`` decides:
  unset or ``auto`` builds it when ``nvcc`` is found and the installed torch has CUDA
  (in an isolated build, which has no torch: when an NVIDIA driver is loaded), so a
  plain ``pip install -e .`` on a GPU machine gets it;
  ``1`` requires it (error without nvcc); ``0`` never builds it (the escape hatch).
  It takes raw device pointers and a stream handle, so it needs no torch headers.
  ``SSEG_CUDA_ARCH`` overrides the nvcc ``-gencode`` flags (default sm_80 + sm_90, plus
  compute_90 PTX for newer GPUs).

pybind11 comes from the ``pybind11`` package when it is installed, else from the
headers torch ships (a GPU machine without internet may lack the package).

``kernels/`` is shipped as the ``sseg.kernels`` sub-package (Triton kernels).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext as _setuptools_build_ext

ROOT = Path(__file__).parent.resolve()
CSRC = "csrc"
DEFAULT_CUDA_ARCH = (
    "-gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90 "
    "-gencode=arch=compute_90,code=compute_90"
)

try:
    from pybind11.setup_helpers import Pybind11Extension
    from pybind11.setup_helpers import build_ext as _base_build_ext
except ImportError:  # no pybind11 package: use the headers bundled with torch
    _base_build_ext = _setuptools_build_ext

    def _torch_pybind11_include() -> str:
        spec = importlib.util.find_spec("torch")
        for location in (spec.submodule_search_locations or []) if spec else []:
            include = Path(location) / "include"
            if (include / "pybind11" / "pybind11.h").is_file():
                return str(include)
        raise SystemExit("sseg build: neither the pybind11 package nor torch's pybind11 headers")

    class Pybind11Extension(Extension):  # type: ignore[no-redef]
        """Minimal stand-in for pybind11's extension class (C++17, hidden symbols)."""

        def __init__(self, name, sources, *, cxx_std: int = 17, **kwargs):
            kwargs["include_dirs"] = [*kwargs.get("include_dirs", []), _torch_pybind11_include()]
            kwargs["extra_compile_args"] = [
                f"-std=c++{cxx_std}",
                "-fvisibility=hidden",
                *kwargs.get("extra_compile_args", []),
            ]
            kwargs.setdefault("language", "c++")
            super().__init__(name, sources, **kwargs)


def _openmp_flags() -> tuple[list[str], list[str]]:
    if sys.platform == "darwin":
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


def _cuda_home() -> str:
    return os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"


def find_nvcc() -> str | None:
    """nvcc on PATH, else under $CUDA_HOME; None when absent."""
    found = shutil.which("nvcc")
    if found:
        return found
    candidate = Path(_cuda_home()) / "bin" / "nvcc"
    return str(candidate) if candidate.is_file() else None


def _cuda_machine() -> bool:
    """The installed torch has CUDA; in an isolated build (no torch), an NVIDIA driver."""
    try:
        import torch
    except ImportError:
        return Path("/proc/driver/nvidia/version").exists()
    return torch.version.cuda is not None


def build_cuda_requested() -> bool:
    """Whether to build ``sseg._dtw_cuda`` (see the module docstring for SSEG_BUILD_CUDA)."""
    flag = os.environ.get("SSEG_BUILD_CUDA", "auto").strip().lower()
    if flag in ("0", "no", "false", "off"):
        return False
    if flag in ("1", "yes", "true", "on"):
        if find_nvcc() is None:
            raise SystemExit("SSEG_BUILD_CUDA=1 but nvcc was not found (set CUDA_HOME)")
        return True
    if flag != "auto":
        raise SystemExit(f"SSEG_BUILD_CUDA must be 0, 1 or auto, got {flag!r}")
    return find_nvcc() is not None and _cuda_machine()


class BuildExtWithCuda(_base_build_ext):
    """build_ext that compiles ``.cu`` sources with nvcc before linking."""

    def build_extension(self, ext):  # noqa: D102
        cu_sources = [s for s in ext.sources if s.endswith(".cu")]
        if cu_sources:
            nvcc = find_nvcc() or "nvcc"
            build_temp = Path(self.build_temp)
            build_temp.mkdir(parents=True, exist_ok=True)
            arch = os.environ.get("SSEG_CUDA_ARCH", DEFAULT_CUDA_ARCH).split()
            objects = []
            for src in cu_sources:
                obj = build_temp / (Path(src).stem + ".cu.o")
                cmd = [nvcc, "-c", src, "-o", str(obj), "-O3", "-Xcompiler", "-fPIC"]
                subprocess.check_call([*cmd, "--std=c++17", f"-I{CSRC}", *arch])
                objects.append(str(obj))
            ext.sources = [s for s in ext.sources if not s.endswith(".cu")]
            ext.extra_objects = list(ext.extra_objects or []) + objects
        super().build_extension(ext)


def _extensions() -> list[Extension]:
    omp_compile, omp_link = _openmp_flags()
    exts = [
        Pybind11Extension(
            "sseg._dtw_cpu",
            [f"{CSRC}/dtw_cpu.cpp"],
            depends=[f"{CSRC}/dtw_common.h", f"{CSRC}/dtw_cpu_simd.h"],
            extra_compile_args=["-O3", *omp_compile],
            extra_link_args=omp_link,
            cxx_std=17,
        )
    ]
    if build_cuda_requested():
        cuda_home = _cuda_home()
        exts.append(
            Pybind11Extension(
                "sseg._dtw_cuda",
                [f"{CSRC}/dtw_cuda_bindings.cpp", f"{CSRC}/dtw_cuda.cu"],
                depends=[f"{CSRC}/dtw_common.h"],
                include_dirs=[f"{cuda_home}/include"],
                library_dirs=[f"{cuda_home}/lib64"],
                runtime_library_dirs=[f"{cuda_home}/lib64"],
                libraries=["cudart"],
                extra_compile_args=["-O3"],
                cxx_std=17,
            )
        )
    return exts


setup(
    packages=["sseg", *(f"sseg.{name}" for name in find_packages("sseg")), "sseg.kernels"],
    package_dir={"sseg": "sseg", "sseg.kernels": "kernels"},
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExtWithCuda},
    zip_safe=False,
)
