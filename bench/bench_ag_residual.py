"""AG-Residual throughput: Triton vs PyTorch eager vs torch.compile, in the training cases.

    python bench/bench_ag_residual.py [--quick] [--out DIR]

Writes ``<out>/<device>-ag_residual.md`` (default bench/results), one row at a time.
Cases (bf16 on a GPU, float32 on a CPU; D = 512, N_g = 21, K = 3 keyframes per shot):

| case | what runs | bytes a fused implementation must move per call |
|---|---|---|
| ``fwd`` | out = AG(V), no grad | V read + out written: 2 M D e |
| ``fwd+bwd dW`` | V frozen (CLIP output), W trained | fwd 2 M D e + bwd (V, dOut read) 2 M D e |
| ``fwd+bwd dV dW`` | V needs grad too | fwd 2 M D e + bwd (V, dOut read, dV written) 3 M D e |
| ``shot-mean fwd`` | mean over K of AG(V), V (N, K, D) | V read + (N, D) written: (N K D + N D) e |
| ``shot-mean fwd+bwd dW`` | the pre-training case | 2 (N K D + N D) e |

M = N K token rows, e = bytes per element. Every implementation is charged the same
bytes (the fused minimum), so GB/s is an effective bandwidth and % peak compares it with
the device-to-device copy measured in the same run (``benchlib.peak_bandwidth``).
``eager`` is the PyTorch reference (fp32 math, ``AG`` then ``.mean``), ``compile`` the
same under ``torch.compile(fullgraph=True)``, ``triton`` the fused kernels (only where
CUDA runs them). ``--quick`` uses tiny shapes (CPU dry run of the script).
Autotuning runs in the warm-up, over the full config list, for the measured shapes only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from sseg.kernels import ag_residual, ag_residual_shot_mean  # noqa: E402

N_GENRES = 21
K = 3
PHI, TEMPERATURE = "identity", 1.0


def bytes_moved(case: str, n: int, k: int, d: int, elt: int) -> int:
    """Minimum DRAM bytes of one call of ``case`` (see the module docstring)."""
    m = n * k
    per_case = {
        "fwd": 2 * m * d,
        "fwd+bwd dW": 4 * m * d,
        "fwd+bwd dV dW": 5 * m * d,
        "shot-mean fwd": m * d + n * d,
        "shot-mean fwd+bwd dW": 2 * (m * d + n * d),
    }
    return per_case[case] * elt


CASES = (
    "fwd",
    "fwd+bwd dW",
    "fwd+bwd dV dW",
    "shot-mean fwd",
    "shot-mean fwd+bwd dW",
)


def make_step(case: str, impl: str, v, g, w) -> Callable[[], None]:
    """A no-argument callable running ``case`` once with ``impl``."""
    backend = "triton" if impl == "triton" else "reference"
    mean = case.startswith("shot-mean")

    def forward(v_, w_):
        if mean:
            return ag_residual_shot_mean(v_, g, w_, PHI, TEMPERATURE, backend=backend)
        return ag_residual(v_, g, w_, PHI, TEMPERATURE, backend=backend)

    if impl == "compile":
        forward = torch.compile(forward, fullgraph=True)
    backward = "bwd" in case
    v_ = v.detach().requires_grad_("dV" in case)
    w_ = w.detach().requires_grad_(backward)
    grad = torch.randn(v.shape[:-2] + v.shape[-1:] if mean else v.shape, device=v.device)
    grad = grad.to(v.dtype)

    def step() -> None:
        if backward:
            v_.grad = w_.grad = None
            forward(v_, w_).backward(grad)
        else:
            with torch.no_grad():
                forward(v_, w_)

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes (dry run)")
    parser.add_argument("--out", default=None, help="results folder")
    parser.add_argument("--shots", type=int, default=None, help="N (default 262144 on GPU)")
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args(argv)
    gpu = benchlib.cuda()
    device = "cuda" if gpu else "cpu"
    dtype = torch.bfloat16 if gpu else torch.float32
    n = args.shots or (64 if args.quick else (262144 if gpu else 4096))
    d = args.dim
    impls = ("eager", "triton", "compile") if gpu else ("eager", "compile")
    peak = benchlib.peak_bandwidth()
    table = benchlib.ProgressiveTable(
        benchlib.results_dir(args.out) / f"{benchlib.device_slug()}-ag_residual.md",
        f"AG-Residual throughput on {benchlib.device_name()}",
        [
            benchlib.environment_line(),
            f"dtype {str(dtype).removeprefix('torch.')}, N = {n} shots x K = {K} keyframes "
            f"(M = {n * K} rows), D = {d}, N_g = {N_GENRES}, phi = {PHI}. "
            + benchlib.bandwidth_line(peak),
            "Bytes per call = what a fused implementation must move (bench_ag_residual.py "
            "docstring); every implementation is charged the same bytes.",
        ],
        [
            "case",
            "impl",
            "median ms",
            "min ms",
            "MB / call",
            "GB/s",
            "% peak",
            "x eager",
            "x compile",
        ],  # fmt: skip
    )
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(n, K, d, generator=gen).to(device, dtype)
    g = torch.nn.functional.normalize(torch.randn(N_GENRES, d, generator=gen), dim=-1).to(device)
    w = (torch.randn(d, d, generator=gen) * 0.02).to(device)
    seconds: dict[tuple[str, str], float] = {}
    rows: dict[tuple[str, str], int] = {}
    # every case without torch.compile first: a slow inductor compile (or a timeout of the
    # whole bench) then costs only the compile rows, which follow in a second sweep
    for sweep in (("eager", "triton"), ("compile",)):
        for case in CASES:
            moved = bytes_moved(case, n, K, d, v.element_size())
            inputs = v if case.startswith("shot-mean") else v.view(n * K, d)
            for impl in (i for i in sweep if i in impls):
                try:
                    median, fastest = benchlib.time_call(make_step(case, impl, inputs, g, w))
                except Exception as exc:  # noqa: BLE001 - e.g. inductor without a C++ compiler
                    table.note(f"{case} / {impl}: not measured ({type(exc).__name__}: {exc})"[:300])
                    continue
                seconds[case, impl] = median
                gbps = moved / median / 1e9
                rows[case, impl] = table.add(
                    case, impl, f"{median * 1e3:.3f}", f"{fastest * 1e3:.3f}",
                    f"{moved / 1e6:.1f}", f"{gbps:.1f}", f"{100 * gbps * 1e9 / peak:.0f}",
                    benchlib.ratio(seconds.get((case, "eager")), median), "-",
                )  # fmt: skip
                print(f"{case} / {impl}: {median * 1e3:.3f} ms, {gbps:.1f} GB/s", flush=True)
                if impl == "compile":
                    for (c, i), row in rows.items():
                        if c == case:
                            table.set(row, "x compile", benchlib.ratio(median, seconds[c, i]))
    print(f"written: {table.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
