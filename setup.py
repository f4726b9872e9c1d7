"""Build script for sseg's compiled pieces.

* ``sseg._dtw_cpu``: C++/OpenMP pseudo-boundary search (pybind11, no torch headers),
  always built.
* ``sseg._dtw_cuda``: the same search as a CUDA kernel, built only when
  ``SSEG_BUILD_CUDA=1`` and ``nvcc`` is found (GPU machines). It takes raw device
  pointers and a stream handle, so it needs no torch headers either.

``kernels/`` is shipped as the ``sseg.kernels`` sub-package (Triton kernels).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import find_packages, setup

ROOT = Path(__file__).parent.resolve()
CSRC = "csrc"


def _openmp_flags() -> tuple[list[str], list[str]]:
    if sys.platform == "darwin":
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


class BuildExtWithCuda(build_ext):
    """build_ext that compiles ``.cu`` sources with nvcc before linking."""

    def build_extension(self, ext):  # noqa: D102
        cu_sources = [s for s in ext.sources if s.endswith(".cu")]
        if cu_sources:
            nvcc = shutil.which("nvcc") or os.path.join(
                os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc"
            )
            build_temp = Path(self.build_temp)
            build_temp.mkdir(parents=True, exist_ok=True)
            objects = []
            for src in cu_sources:
                obj = build_temp / (Path(src).stem + ".cu.o")
                arch = os.environ.get(
                    "SSEG_CUDA_ARCH",
                    "-gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90",
                ).split()
                subprocess.check_call(
                    [
                        nvcc,
                        "-c",
                        src,
                        "-o",
                        str(obj),
                        "-O3",
                        "-Xcompiler",
                        "-fPIC",
                        "--std=c++17",
                        *arch,
                    ]
                )
                objects.append(str(obj))
            ext.sources = [s for s in ext.sources if not s.endswith(".cu")]
            ext.extra_objects = list(ext.extra_objects or []) + objects
        super().build_extension(ext)


def _extensions() -> list[Pybind11Extension]:
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
    if os.environ.get("SSEG_BUILD_CUDA") == "1":
        cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
        exts.append(
            Pybind11Extension(
                "sseg._dtw_cuda",
                [f"{CSRC}/dtw_cuda_bindings.cpp", f"{CSRC}/dtw_cuda.cu"],
                depends=[f"{CSRC}/dtw_common.h"],
                include_dirs=[f"{cuda_home}/include"],
                library_dirs=[f"{cuda_home}/lib64"],
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
