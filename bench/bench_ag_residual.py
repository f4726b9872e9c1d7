"""AG-Residual throughput: Triton vs PyTorch eager vs torch.compile, forward and fwd+bwd.

Run (GPU or CPU, unchanged)::

    pytest bench/bench_ag_residual.py --benchmark-enable

Writes ``bench/results/<device>-ag_residual.md``. Bandwidth counts the bytes a fused kernel
must move: forward = V read + out written (2·M·D·bytes); forward+backward adds V and dOut
read and dV written (5·M·D·bytes in all). The fraction of the device's peak DRAM bandwidth
uses the table below (device detected by ``torch.cuda.get_device_name``). GPU targets:
>= 80 % of peak and >= 3x eager. On CPU only the reference path runs (eager and, where
inductor works, compile; the Triton interpreter is not a performance path), at smaller M.

Environment: ``SSEG_BENCH_DTYPE`` (default bfloat16 on GPU, float32 on CPU),
``SSEG_BENCH_PHI`` (identity or softmax, default identity), ``SSEG_BENCH_MAX_M`` (default
1048576 on GPU, 65536 on CPU), ``SSEG_BENCH_OUT`` (results folder), ``SSEG_BENCH_THREADS``
(CPU torch threads, default 1: on a small shared machine more threads than free cores make
OpenMP thrash).
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import pytest
import torch
from sseg.kernels import ag_residual

from sseg.atomic import atomic_write_text

CUDA = torch.cuda.is_available()
# peak DRAM bandwidth in bytes/s, matched against torch.cuda.get_device_name (first hit wins)
PEAK_BANDWIDTH: list[tuple[str, str, float]] = [
    (r"H200", "H200", 4.8e12),
    (r"H100.*PCIe", "H100 PCIe", 2.0e12),
    (r"H100.*NVL", "H100 NVL", 3.9e12),
    (r"H100", "H100 SXM", 3.35e12),
    (r"H20\b", "H20", 4.0e12),
    (r"GH200", "GH200", 4.0e12),
    (r"A100.*80GB.*PCIe|A100.*PCIE.*80GB", "A100 80GB PCIe", 1.935e12),
    (r"A100.*80GB", "A100 80GB SXM", 2.039e12),
    (r"A100", "A100 40GB", 1.555e12),
    (r"L40S", "L40S", 864e9),
    (r"L40", "L40", 864e9),
    (r"L4\b", "L4", 300e9),
    (r"A10\b|A10G", "A10", 600e9),
    (r"RTX 4090", "RTX 4090", 1008e9),
    (r"RTX 3090", "RTX 3090", 936e9),
    (r"V100", "V100", 900e9),
    (r"T4\b", "T4", 320e9),
]
N_GENRES = 21
DIMS = (512, 768)
ALL_M = (4096, 65536, 1048576)
MAX_M = int(os.environ.get("SSEG_BENCH_MAX_M", 1048576 if CUDA else 65536))
DTYPE = getattr(torch, os.environ.get("SSEG_BENCH_DTYPE", "bfloat16" if CUDA else "float32"))
PHI = os.environ.get("SSEG_BENCH_PHI", "identity")
IMPLS = ("triton", "eager", "compile") if CUDA else ("eager", "compile")
# "copy" (out = V * 1, forward only) moves the same bytes: the bandwidth a fused kernel
# could reach here in practice, beside the spec-sheet peak.
BASELINE = "copy"
RESULTS: list[dict] = []
if not CUDA:
    torch.set_num_threads(int(os.environ.get("SSEG_BENCH_THREADS", 1)))


def device_name() -> str:
    if CUDA:
        return torch.cuda.get_device_name()
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def peak_bandwidth(name: str) -> tuple[str, float] | None:
    """(label, bytes/s) of a known GPU, else None."""
    for pattern, label, peak in PEAK_BANDWIDTH:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return label, peak
    return None


def _sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def _make_fn(impl: str):
    if impl == BASELINE:
        return lambda v, g, w: v.mul(1.0)
    if impl == "triton":
        return lambda v, g, w: ag_residual(v, g, w, PHI, 0.1, backend="triton")

    def reference(v, g, w):
        return ag_residual(v, g, w, PHI, 0.1, backend="reference")

    if impl == "compile":
        return torch.compile(reference, fullgraph=True)
    return reference


def _inputs(m: int, d: int, requires_grad: bool):
    device = "cuda" if CUDA else "cpu"
    v = torch.randn(m, d, device=device, dtype=DTYPE, requires_grad=requires_grad)
    g = torch.nn.functional.normalize(torch.randn(N_GENRES, d, device=device), dim=-1)
    w = (torch.randn(d, d, device=device) * 0.02).requires_grad_(requires_grad)
    return v, g, w


@pytest.fixture(scope="module", autouse=True)
def _write_table():
    yield
    if RESULTS:
        write_results(RESULTS)


def write_results(rows: list[dict]) -> Path:
    """Write the markdown results table for this device; returns its path."""
    name = device_name()
    peak = peak_bandwidth(name) if CUDA else None
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") if CUDA else "cpu"
    out_dir = Path(os.environ.get("SSEG_BENCH_OUT", Path(__file__).parent / "results"))
    eager = {(r["pass"], r["M"], r["D"]): r["ms"] for r in rows if r["impl"] == "eager"}
    lines = [
        f"# AG-Residual throughput on {name}",
        "",
        f"torch {torch.__version__}, dtype {str(DTYPE).removeprefix('torch.')}, "
        f"N_g = {N_GENRES}, phi = {PHI}. "
        + (
            f"Peak DRAM bandwidth {peak[1] / 1e12:.2f} TB/s ({peak[0]})."
            if peak
            else (
                f"{os.cpu_count()}-core CPU, {torch.get_num_threads()} torch thread(s), "
                f"load average {os.getloadavg()[0]:.1f} when written (shared machine): "
                "reference path only (eager / torch.compile); no Triton timings."
                if not CUDA
                else "Peak bandwidth unknown for this device."
            )
        ),
        "GB/s counts V read + out written (fwd) and also V, dOut read + dV written (fwd+bwd); "
        f"`{BASELINE}` (out = V * 1) moves the fwd bytes and is the practical bandwidth here.",
        "",
        "| impl | pass | M | D | median ms | min ms | GB/s (median) | % peak | x eager |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = eager.get((r["pass"], r["M"], r["D"]))
        speedup = f"{base / r['ms']:.2f}" if base else "-"
        frac = f"{100 * r['gbps'] * 1e9 / peak[1]:.0f}" if peak else "-"
        lines.append(
            f"| {r['impl']} | {r['pass']} | {r['M']} | {r['D']} | {r['ms']:.3f} | "
            f"{r['min_ms']:.3f} | {r['gbps']:.1f} | {frac} | {speedup} |"
        )
    path = out_dir / f"{slug}-ag_residual.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("m", [m for m in ALL_M if m <= MAX_M])
@pytest.mark.parametrize("direction", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("impl", (*IMPLS, BASELINE))
def test_ag_residual_throughput(benchmark, impl, direction, m, d):
    if impl == BASELINE and direction != "fwd":
        pytest.skip("the copy baseline is forward only")
    fn = _make_fn(impl)
    backward = direction == "fwd+bwd"
    v, g, w = _inputs(m, d, backward)
    grad = torch.randn_like(v) if backward else None

    def step():
        if backward:
            v.grad = w.grad = None
            fn(v, g, w).backward(grad)
        else:
            with torch.no_grad():
                fn(v, g, w)
        _sync()

    try:
        for _ in range(2):  # compile / autotune / warm-up outside the timing
            step()
    except Exception as exc:  # noqa: BLE001 - e.g. inductor without a C++ compiler
        if impl == "compile":
            pytest.skip(f"torch.compile unavailable: {type(exc).__name__}: {exc}")
        raise
    benchmark.group = f"{direction} M={m} D={d}"
    benchmark(step)
    if benchmark.disabled or benchmark.stats is None:
        return
    seconds = benchmark.stats.stats.median
    moved = (5 if backward else 2) * m * d * v.element_size()
    RESULTS.append(
        {"impl": impl, "pass": direction, "M": m, "D": d, "ms": seconds * 1e3,
         "min_ms": benchmark.stats.stats.min * 1e3, "gbps": moved / seconds / 1e9}
    )  # fmt: skip
