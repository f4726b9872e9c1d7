"""Pseudo-boundary search throughput: C++ extension vs vectorised PyTorch reference vs a
BaSSL-style per-sequence loop (NumPy DTW, one sequence at a time).

Run::

    pytest bench/bench_dtw.py --benchmark-enable -s

Writes ``bench/results/cpu-dtw.md`` (or ``<gpu>-dtw.md`` where CUDA runs the op) and
prints the same ratio table; a ``read`` row per (L, B) times ``x.sum()``, one streaming
pass over x, as the memory-bandwidth roofline. Default grid: D = 512, K in {2, 4}, both
modes, L = 17, B in {256, 4096, 65536}; ``SSEG_BENCH_FULL=1`` adds L in {33, 64}
(B = 65536, L = 64 is 8.6 GB of float32). The per-sequence loop is slow, so it runs on the first
``SSEG_BENCH_LOOP_SEQS`` (default 256) sequences and its time is scaled per sequence.
GB/s counts x read once (B*L*D*4 bytes). ``SSEG_BENCH_THREADS`` sets the CPU threads of
the extension and of torch alike (default 1: on a small shared machine, threads beyond
the free cores make OpenMP barriers stall). ``SSEG_BENCH_OUT``: results folder. On a
busy shared machine add ``--benchmark-timer=time.process_time`` (CPU time of this process;
fair for single-threaded runs): each timer gets its own section in the results file.
"""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

import pytest
import torch

from sseg.atomic import atomic_write_text
from sseg.ops import pseudo_boundaries, pseudo_boundaries_reference
from sseg.ops.pseudo_boundary_bassl import dtw_boundaries_loop

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
D = 512
FULL = os.environ.get("SSEG_BENCH_FULL") == "1"
LOOP_SEQS = int(os.environ.get("SSEG_BENCH_LOOP_SEQS", 256))
THREADS = int(os.environ.get("SSEG_BENCH_THREADS", 1))
torch.set_num_threads(THREADS)

LS = (17, 33, 64) if FULL else (17,)
BS = (256, 4096, 65536)
KS = (2, 4)
MODES = ("mean", "sum")
IMPLS = ("extension", "reference", "loop")
RESULTS: list[dict] = []


def _cases():
    # L outermost so each L's data is generated once; the loop only solves sum mode.
    for length in LS:
        for batch in BS:
            yield pytest.param(length, batch, 0, "-", "read", id=f"L{length}-B{batch}-read")
            for k in KS:
                for mode in MODES:
                    for impl in IMPLS:
                        if impl == "loop" and mode != "sum":
                            continue
                        yield pytest.param(
                            length,
                            batch,
                            k,
                            mode,
                            impl,
                            id=f"L{length}-B{batch}-K{k}-{mode}-{impl}",
                        )


_DATA: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}


def _data(length: int):
    """x (max B, L, D) and a random anchor order per sequence; one L kept at a time."""
    if length not in _DATA:
        _DATA.clear()  # free the previous L's batch before allocating the next
        gen = torch.Generator().manual_seed(length)
        batch = max(BS)
        x = torch.randn(batch, length, D, generator=gen)
        _DATA[length] = x, torch.rand(batch, length, generator=gen).argsort(dim=1)
    return _DATA[length]


def _inputs(length: int, batch: int, k: int):
    x, order = _data(length)
    anchors = order[:batch, :k].sort(dim=1).values.contiguous()
    return x[:batch].to(DEVICE), anchors.to(DEVICE)


def _sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def device_name() -> str:
    if CUDA:
        return torch.cuda.get_device_name()
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


@pytest.fixture(scope="module", autouse=True)
def _write_table(request):
    yield
    if RESULTS:
        timer = getattr(request.config.option, "benchmark_timer", None)
        name = getattr(timer, "__name__", None) or str(timer or "perf_counter")
        path, text = write_results(RESULTS, name)
        print("\n" + text + f"\n(written to {path})")


def write_results(rows: list[dict], timer: str) -> tuple[Path, str]:
    """Markdown table with ratios vs the reference and the loop of the same case.

    The file keeps one section per timer (wall clock, CPU time), so runs with
    ``--benchmark-timer`` set differently add up instead of overwriting each other.
    """
    out_dir = Path(os.environ.get("SSEG_BENCH_OUT", Path(__file__).parent / "results"))
    slug = re.sub(r"[^a-z0-9]+", "-", device_name().lower()).strip("-") if CUDA else "cpu"
    by_case = {(r["L"], r["B"], r["K"], r["mode"], r["impl"]): r for r in rows}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"## Timer `{timer}`",
        "",
        f"torch {torch.__version__}, D = {D}, float32, {THREADS} thread(s) for the extension "
        f"and torch, load average {load:.1f} at the end of the run. Seconds are medians for "
        f"the whole batch; the loop ran on {LOOP_SEQS} sequences and is scaled per sequence "
        "(it solves sum mode; its time is the baseline for both modes). `read` is a "
        "plain streaming pass over x (`x.sum()`), the memory-bandwidth roofline.",
        "",
        "| L | B | K | mode | impl | s / batch | seq/s | GB/s | x reference | x loop |",
        "|---:|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ref = by_case.get((r["L"], r["B"], r["K"], r["mode"], "reference"))
        loop = by_case.get((r["L"], r["B"], r["K"], "sum", "loop"))
        x_ref = f"{ref['seconds'] / r['seconds']:.2f}" if ref else "-"
        x_loop = f"{loop['seconds'] / r['seconds']:.1f}" if loop else "-"
        lines.append(
            f"| {r['L']} | {r['B']} | {r['K'] or '-'} | {r['mode']} | {r['impl']} | "
            f"{r['seconds']:.4f} | {r['B'] / r['seconds']:,.0f} | {r['gbps']:.2f} | "
            f"{x_ref} | {x_loop} |"
        )
    section = "\n".join(lines) + "\n"
    path = out_dir / f"{slug}-dtw.md"
    sections = {}
    if path.exists():
        for part in path.read_text().split("\n## ")[1:]:
            sections[part.split("\n", 1)[0]] = "## " + part.rstrip("\n") + "\n"
    sections[lines[0][3:]] = section
    title = f"# Pseudo-boundary search throughput on {device_name()}\n\n"
    atomic_write_text(path, title + "\n".join(sections[k] for k in sorted(sections)))
    return path, section


@pytest.mark.parametrize(("length", "batch", "k", "mode", "impl"), list(_cases()))
def test_pseudo_boundary_throughput(benchmark, length, batch, k, mode, impl):
    x, anchors = _inputs(length, batch, max(k, 2))
    seqs = batch
    if impl == "read":  # roofline: one streaming pass over x (torch sum)

        def step():
            x.sum()
            _sync()
    elif impl == "loop":
        seqs = min(batch, LOOP_SEQS)
        xs, an = x[:seqs].cpu(), anchors[:seqs].cpu()

        def step():
            dtw_boundaries_loop(xs, an)
    else:
        fn = pseudo_boundaries if impl == "extension" else pseudo_boundaries_reference

        def step():
            fn(x, anchors, mode=mode)
            _sync()

    step()  # warm-up (thread pools, page faults of the outputs)
    started = time.perf_counter()
    step()
    once = time.perf_counter() - started
    rounds = max(3, min(20, int(2.0 / max(once, 1e-6))))
    benchmark.group = f"L={length} B={batch} K={k} {mode}"
    benchmark.pedantic(step, rounds=rounds, iterations=1)
    if benchmark.disabled or benchmark.stats is None:
        return
    seconds = benchmark.stats.stats.median * batch / seqs
    gbps = batch * length * D * 4 / seconds / 1e9
    benchmark.extra_info.update(
        {"sequences_per_s": batch / seconds, "gb_per_s": gbps, "timed_sequences": seqs,
         "threads": THREADS}
    )  # fmt: skip
    RESULTS.append(
        {"L": length, "B": batch, "K": k, "mode": mode, "impl": impl, "seconds": seconds,
         "gbps": gbps}
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Script mode (bench/gpu_run.sh): the compiled op vs the reference, eager and compiled.

    ``python bench/bench_dtw.py [--quick] [--out DIR]`` writes ``<device>-dtw-op.md`` row by
    row: L = 17, D = 512, K in {2, 4}, both modes, B = 65536 (``--quick``: B = 64). Bytes per
    call = x read once (B L D 4); % peak against the copy bandwidth of the same run.
    """
    import argparse
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import benchlib

    from sseg.ops.pseudo_boundary_reference import reference_impl

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny batch (dry run)")
    parser.add_argument("--out", default=None, help="results folder")
    parser.add_argument("--batch", type=int, default=None)
    args = parser.parse_args(argv)
    batch = args.batch or (64 if args.quick else 65536)
    length = 17
    peak = benchlib.peak_bandwidth()
    table = benchlib.ProgressiveTable(
        benchlib.results_dir(args.out) / f"{benchlib.device_slug()}-dtw-op.md",
        f"Pseudo-boundary search on {benchlib.device_name()}",
        [
            benchlib.environment_line(),
            f"B = {batch} sequences, L = {length}, D = {D}, float32. `op` = "
            "`sseg.ops.pseudo_boundaries` (CUDA kernel on a GPU, C++ on a CPU); `eager` = the "
            "vectorised PyTorch reference; `compile` = the reference under torch.compile. "
            "`read` = `x.sum()`, one streaming pass. " + benchlib.bandwidth_line(peak),
        ],
        ["K", "mode", "impl", "median ms", "seq/s", "GB/s", "% peak", "x eager", "x compile"],
    )
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, length, D, generator=gen).to(DEVICE)
    order = torch.rand(batch, length, generator=gen).argsort(dim=1)
    lengths = torch.full((batch,), length, dtype=torch.int64, device=DEVICE)
    moved = x.numel() * 4
    median, _ = benchlib.time_call(lambda: x.sum())
    table.add(
        "-",
        "-",
        "read",
        f"{median * 1e3:.3f}",
        f"{batch / median:,.0f}",
        f"{moved / median / 1e9:.1f}",
        f"{100 * moved / median / peak:.0f}",
        "-",
        "-",
    )
    compiled = torch.compile(reference_impl, dynamic=False)
    seconds: dict[tuple, float] = {}
    rows: dict[tuple, int] = {}
    # the compile rows last: a slow inductor compile then costs only them
    for sweep in (("eager", "op"), ("compile",)):
        for k in KS:
            anchors = order[:, :k].sort(dim=1).values.contiguous().to(DEVICE)
            for mode in MODES:
                code = 1 if mode == "mean" else 0
                steps = {
                    "eager": lambda a=anchors, c=code: reference_impl(x, a, lengths, c),
                    "op": lambda a=anchors, m=mode: pseudo_boundaries(x, a, lengths, m),
                    "compile": lambda a=anchors, c=code: compiled(x, a, lengths, c),
                }
                for impl in sweep:
                    try:
                        median, _ = benchlib.time_call(steps[impl])
                    except Exception as exc:  # noqa: BLE001 - report and go on
                        table.note(
                            f"K={k} {mode} / {impl}: not measured ({type(exc).__name__}: "
                            f"{exc})"[:300]
                        )
                        continue
                    seconds[k, mode, impl] = median
                    rows[k, mode, impl] = table.add(
                        k, mode, impl, f"{median * 1e3:.3f}", f"{batch / median:,.0f}",
                        f"{moved / median / 1e9:.1f}", f"{100 * moved / median / peak:.0f}",
                        benchlib.ratio(seconds.get((k, mode, "eager")), median), "-",
                    )  # fmt: skip
                    if impl == "compile":
                        for key, row in rows.items():
                            if key[:2] == (k, mode):
                                table.set(row, "x compile", benchlib.ratio(median, seconds[key]))
    print(table.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
