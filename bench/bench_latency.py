"""Inference latency of the scene model: per window batch and per streamed shot.

Run (from the repository root; needs only torch, triton, numpy, safetensors)::

    python3 bench/bench_latency.py --device cpu --out bench/results --impls all
    python3 bench/bench_latency.py --device cuda --out bench/results

Writes ``OUT/<device>-latency.md`` (``cpu`` or the GPU name, as the other benches name
it, e.g. ``nvidia-h200-latency.md``). Model: paper size (D = 512, K = 3 keyframes, a
2-layer context transformer of hidden 768 and 8 heads over W = 17 shots), random
weights, float32. Implementations, each measured in the same run:

* ``eager``: :class:`sseg.deploy.windows.WindowScorer` (the AG-Residual Triton kernel on
  CUDA, the PyTorch reference on CPU), the baseline of every ratio;
* ``compile``: ``torch.compile`` of it (default mode, automatic dynamic shapes);
* ``export``: the ``torch.export`` program, saved and loaded (``sseg export``);
* ``aoti`` (``--impls all`` or a list naming it): the AOTInductor package of that
  program (a C++ build of minutes on a small CPU, so not in the default list).

Per window batch B (``--batch-sizes``): p50 / p99 of one call on B windows, the device
synchronised around each call, the implementations called in turn (one call each per
round, so load changes on a shared machine hit all alike). Streaming: p50 / p99 of one
:meth:`StreamingSegmenter.push` that returns a decision (window shift + one window +
the probability back on the host). Each batch size runs rounds for ``--cell-seconds``
per implementation (at least ``--min-reps`` rounds); cells that would start after
``--max-seconds`` of wall time since the script started, imports included (default 40
on CUDA, so that a compile then in flight still ends within a minute), are skipped and
listed in the report.
First-call (compile / export / AOTInductor build) times are reported apart.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()  # the time budget counts the imports (torch, Triton) too

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
import sseg  # noqa: E402

try:
    import sseg.kernels  # noqa: F401
except ModuleNotFoundError:  # not installed: kernels/ is the sseg.kernels package
    sseg.__path__.append(str(ROOT))

from sseg.atomic import atomic_write_text  # noqa: E402
from sseg.deploy.export import export_to_file, load_scorer  # noqa: E402
from sseg.deploy.streaming import MOVIENET_MEDIAN_SHOT_SECONDS, StreamingSegmenter  # noqa: E402
from sseg.deploy.windows import WindowScorer  # noqa: E402
from sseg.modeling.context import ContextConfig  # noqa: E402
from sseg.modeling.model import SceneModel  # noqa: E402

KEYFRAMES, DIM, GENRES = 3, 512, 21
IMPLS = ("eager", "compile", "export", "aoti")
DEFAULT_IMPLS = "eager,compile,export"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="results folder")
    parser.add_argument("--batch-sizes", default="1,8,64,256", help="windows per call")
    parser.add_argument(
        "--impls",
        default=DEFAULT_IMPLS,
        help=f"comma list of {','.join(IMPLS)} or 'all' (eager always runs)",
    )
    parser.add_argument(
        "--stream-shots",
        type=int,
        default=0,
        help="shots per streaming run (default 400 on cuda, 60 on cpu)",
    )
    parser.add_argument(
        "--cell-seconds",
        type=float,
        default=None,
        help="time spent per cell (default 0.5 on cuda, 3 on cpu)",
    )
    parser.add_argument("--min-reps", type=int, default=5, help="calls per cell at least")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="start no cell after this much wall time (default 40 on cuda)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU torch threads (default 1: the machine is shared)",
    )
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    args.stream_shots = args.stream_shots or (400 if cuda else 60)
    args.cell_seconds = args.cell_seconds or (0.5 if cuda else 3.0)
    args.max_seconds = args.max_seconds or (40.0 if cuda else float("inf"))
    wanted = IMPLS if args.impls == "all" else args.impls.split(",")
    unknown = sorted(set(wanted) - set(IMPLS))
    if unknown:
        parser.error(f"--impls: unknown {', '.join(unknown)} (choose from {', '.join(IMPLS)})")
    args.impls = [impl for impl in IMPLS if impl == "eager" or impl in wanted]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    return args


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def device_slug(device: str) -> str:
    """File-name prefix, as bench/bench_ag_residual.py names result files."""
    if device == "cuda":
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-")
    return "cpu"


def paper_model(device: str) -> SceneModel:
    """Paper-size scene model with random weights (non-zero genre residual)."""
    generator = torch.Generator().manual_seed(0)
    genres = torch.nn.functional.normalize(torch.randn(GENRES, DIM, generator=generator), dim=-1)
    model = SceneModel(genres, ContextConfig(input_dim=DIM))
    with torch.no_grad():
        model.genre_residual.weight.copy_(0.02 * torch.randn(DIM, DIM, generator=generator))
    return model.to(device).eval()


class Timer:
    """Wall time of calls with the device synchronised around each one."""

    def __init__(self, device: str):
        self.cuda = device == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def once(self, fn) -> float:
        self.sync()
        began = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - began

    def interleaved(self, calls: dict, seconds: float, min_reps: int) -> dict[str, np.ndarray]:
        """ms per call of each of ``calls``, taken in turn (one call of each per round), so
        a change of load on a shared machine hits every implementation alike."""
        times: dict[str, list[float]] = {name: [] for name in calls}
        deadline = time.perf_counter() + seconds
        rounds = 0
        while rounds < 1000 and (rounds < min_reps or time.perf_counter() < deadline):
            for name, call in calls.items():
                times[name].append(self.once(call))
            rounds += 1
        return {name: np.array(t) * 1e3 for name, t in times.items()}


def build_scorers(model: SceneModel, args, workdir: Path) -> dict[str, tuple]:
    """impl -> (scorer, setup seconds, what the setup was)."""
    eager = WindowScorer(model)
    scorers: dict[str, tuple] = {"eager": (eager, 0.0, "-")}
    if "compile" in args.impls:
        scorers["compile"] = (
            torch.compile(eager),
            0.0,
            "compiles on its first call of a shape: see first call s",
        )
    builds = {"export": ("program", "torch.export + save + load"),
              "aoti": ("aoti", "torch.export + AOTInductor build + load")}  # fmt: skip
    for impl, (kind, what) in builds.items():
        if impl in args.impls:
            began = time.perf_counter()
            export_to_file(model, workdir / f"{kind}.pt2", kind)
            scorer = load_scorer(workdir / f"{kind}.pt2", args.device)
            scorers[impl] = (scorer, time.perf_counter() - began, what)
    return scorers


def window_batch(batch: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(batch)
    keyframes = torch.randn(batch, 17, KEYFRAMES, DIM, generator=generator)
    valid = torch.ones(batch, 17, dtype=torch.bool)
    valid[0, :4] = False  # one window at the start of a video
    keyframes[0, :4] = 0
    return keyframes.to(device), valid.to(device)


def measure_batches(scorers, args, timer: Timer, out_of_time) -> tuple[list[dict], list[str]]:
    """p50/p99 of one call per (impl, batch size); also the first call and the error."""
    rows, skipped = [], []
    for batch in args.batch_sizes:
        keyframes, valid = window_batch(batch, args.device)
        reference = scorers["eager"][0](keyframes, valid).float()
        calls, first, error = {}, {}, {}
        for impl, (scorer, _, _) in scorers.items():
            if out_of_time():
                skipped.append(f"{impl} batch {batch}")
                continue
            calls[impl] = functools.partial(scorer, keyframes, valid)
            first[impl] = timer.once(calls[impl])  # compiles a new shape, autotunes
            error[impl] = (calls[impl]().float() - reference).abs().max().item()
        times = timer.interleaved(calls, args.cell_seconds * len(calls), args.min_reps)
        for impl, ms in times.items():
            rows.append({"impl": impl, "batch": batch, "ms": ms, "first": first[impl],
                         "error": error[impl]})  # fmt: skip
            print(
                f"{impl:8s} batch {batch:4d}: p50 {np.percentile(ms, 50):9.3f} ms (n={ms.size}, "
                f"first call {first[impl]:.2f} s, max |dp| {error[impl]:.1e})",
                flush=True,
            )
    return rows, skipped


def measure_streaming(scorers, args, out_of_time) -> tuple[list[dict], list[str]]:
    """Per-shot time of the pushes that return a decision, per impl, taken in turn."""
    if out_of_time():
        return [], [f"{impl} streaming" for impl in scorers]
    generator = torch.Generator().manual_seed(1)
    shots = torch.randn(args.stream_shots, KEYFRAMES, DIM, generator=generator).to(args.device)
    streams = {impl: StreamingSegmenter(scorer) for impl, (scorer, _, _) in scorers.items()}
    times: dict[str, list[float]] = {impl: [] for impl in streams}
    for i in range(args.stream_shots):
        for impl, stream in streams.items():
            began = time.perf_counter()
            decisions = stream.push(shots[i], 2.67 * i, 2.67 * (i + 1))
            if decisions:  # push returns after the probability reached the host
                times[impl].append(time.perf_counter() - began)
    rows = []
    for impl, stream in streams.items():
        stream.flush()
        ms = np.array(times[impl][2:]) * 1e3  # the first two decisions warm up
        rows.append({"impl": impl, "ms": ms, "lookahead": stream.lookahead})
        print(f"{impl:8s} streaming: p50 {np.percentile(ms, 50):.3f} ms/shot (n={ms.size})")
    return rows, []


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    """Run the bench; ``started`` (perf_counter) is when the time budget began."""
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_latency: --device cuda but no CUDA device", file=sys.stderr)
        return 2
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    started = time.perf_counter() if started is None else started

    def out_of_time() -> bool:
        return time.perf_counter() - started > args.max_seconds

    timer = Timer(args.device)
    model = paper_model(args.device)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        scorers = build_scorers(model, args, Path(tmp))
        batch_rows, skipped = measure_batches(scorers, args, timer, out_of_time)
        stream_rows, skipped_streams = measure_streaming(scorers, args, out_of_time)
    setup = {impl: (seconds, what) for impl, (_, seconds, what) in scorers.items()}
    wall = time.perf_counter() - started
    path = write_report(args, batch_rows, stream_rows, setup, skipped + skipped_streams, wall)
    print(f"wrote {path} ({wall:.0f} s)")
    return 0


def _p(ms: np.ndarray, q: float) -> float:
    return float(np.percentile(ms, q))


def write_report(args, batch_rows, stream_rows, setup, skipped, wall: float) -> Path:
    cpu = args.device == "cpu"
    name = device_name(args.device)
    machine = (
        f"{os.cpu_count()}-core CPU, {torch.get_num_threads()} torch thread(s), load average "
        f"{os.getloadavg()[0]:.1f} when written: a shared machine, so compare the ratios "
        "(each measured in this run), not the absolute times."
        if cpu
        else "GPU time measured with the device synchronised around each call."
    )
    lines = [
        f"# Scene-model inference latency on {name}",
        "",
        f"torch {torch.__version__}, float32, written {time.strftime('%Y-%m-%d')} by "
        f"`python3 bench/bench_latency.py --device {args.device}"
        f" --impls {','.join(args.impls)}` in {wall:.0f} s. {machine}",
        f"Model: D = {DIM}, K = {KEYFRAMES} keyframes per shot, context transformer with "
        "hidden 768, 8 heads, 2 layers, W = 17 shots; random weights. A window = the 17 "
        "shots around the shot being scored. n = calls timed; p99 of fewer than 100 calls is "
        "close to their maximum. `max |dp|` = largest probability difference from eager on "
        "the same batch. Implementations are timed in turn, one call each per round. First "
        "calls compile (torch.compile) or autotune (Triton) and use Inductor's on-disk cache, "
        "warm when the bench ran before on the machine.",
        "",
        "## One call on a batch of windows",
        "",
        "| impl | windows | n | p50 ms | p99 ms | p50 ms / window | x eager (p50) | "
        "first call s | max abs dp |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    eager = {r["batch"]: _p(r["ms"], 50) for r in batch_rows if r["impl"] == "eager"}
    for r in batch_rows:
        p50 = _p(r["ms"], 50)
        ratio = f"{eager[r['batch']] / p50:.2f}" if r["batch"] in eager else "-"
        lines.append(
            f"| {r['impl']} | {r['batch']} | {r['ms'].size} | {p50:.3f} | {_p(r['ms'], 99):.3f} "
            f"| {p50 / r['batch']:.4f} | {ratio} | {r['first']:.2f} | {r['error']:.1e} |"
        )
    lookahead = stream_rows[0]["lookahead"] if stream_rows else 8
    lines += [
        "",
        "## Streaming: one `StreamingSegmenter.push` that returns a decision",
        "",
        f"Decision latency = lookahead + compute: {lookahead} shots (W/2) of stream time, "
        f"{lookahead * MOVIENET_MEDIAN_SHOT_SECONDS:.1f} s at MovieNet's median shot of "
        f"{MOVIENET_MEDIAN_SHOT_SECONDS} s, plus the per-shot compute below.",
        "",
        "| impl | shots timed | p50 ms / shot | p99 ms / shot | x eager (p50) |",
        "|---|---:|---:|---:|---:|",
    ]
    eager_stream = next((_p(r["ms"], 50) for r in stream_rows if r["impl"] == "eager"), None)
    for r in stream_rows:
        p50 = _p(r["ms"], 50)
        ratio = f"{eager_stream / p50:.2f}" if eager_stream else "-"
        lines.append(
            f"| {r['impl']} | {r['ms'].size} | {p50:.3f} | {_p(r['ms'], 99):.3f} | {ratio} |"
        )
    lines += ["", "## Setup", "", "| impl | seconds | what |", "|---|---:|---|"]
    lines += [f"| {impl} | {s:.1f} | {what} |" for impl, (s, what) in setup.items()]
    if skipped:
        lines += ["", f"Skipped past the {args.max_seconds:.0f} s budget: {', '.join(skipped)}."]
    path = Path(args.out) / f"{device_slug(args.device)}-latency.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main(started=STARTED))
