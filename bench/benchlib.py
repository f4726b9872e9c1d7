"""Shared pieces of the benchmark scripts: device identity, timing, peak bandwidth, tables.

* :func:`device_name` / :func:`device_slug`: what the results files are named after
  (``bench/results/<slug>-<bench>.md``; ``cpu`` on a CPU).
* :func:`copy_bandwidth`: the device's practical peak, measured in the same run as the
  kernels with a large device-to-device copy (bytes read + bytes written per second).
  :func:`peak_bandwidth` takes it from ``$SSEG_BENCH_PEAK_BPS`` (set by bench/gpu_run.sh
  after one measurement) or measures it.
* :func:`time_call`: median / min seconds of a call (CUDA events on a GPU).
* :class:`ProgressiveTable`: a markdown table rewritten atomically after every row, so a
  run cut short (timeout, later failure) keeps the rows it measured.

    python bench/benchlib.py --out bench/results   # writes <slug>-device.md, prints PEAK_BPS=
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/x.py` from a checkout without an install
    sys.path.insert(0, str(ROOT))

from sseg.atomic import atomic_write_text  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# spec-sheet DRAM bandwidth in bytes/s by device name (first hit wins); shown beside the
# measured copy bandwidth, which is the figure the % columns use
SPEC_BANDWIDTH: list[tuple[str, str, float]] = [
    (r"GH200", "GH200", 4.0e12),
    (r"H200", "H200", 4.8e12),
    (r"H100.*PCIe", "H100 PCIe", 2.0e12),
    (r"H100.*NVL", "H100 NVL", 3.9e12),
    (r"H100", "H100 SXM", 3.35e12),
    (r"H20\b", "H20", 4.0e12),
    (r"A100.*80GB.*PCIe|A100.*PCIE.*80GB", "A100 80GB PCIe", 1.935e12),
    (r"A100.*80GB", "A100 80GB SXM", 2.039e12),
    (r"A100", "A100 40GB", 1.555e12),
    (r"L40S|L40", "L40(S)", 864e9),
    (r"L4\b", "L4", 300e9),
    (r"A10\b|A10G", "A10", 600e9),
    (r"RTX 4090", "RTX 4090", 1008e9),
    (r"RTX 3090", "RTX 3090", 936e9),
    (r"V100", "V100", 900e9),
    (r"T4\b", "T4", 320e9),
]


def cuda() -> bool:
    """Whether the benches run on a GPU."""
    return torch.cuda.is_available()


def device_name() -> str:
    """The GPU's name, or a CPU description."""
    if cuda():
        return torch.cuda.get_device_name()
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def device_slug() -> str:
    """File-name prefix of this device's results: e.g. ``nvidia-h200`` or ``cpu``."""
    if not cuda():
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", device_name().lower()).strip("-")


def spec_bandwidth(name: str | None = None) -> tuple[str, float] | None:
    """(label, bytes/s) from the spec sheet for a known GPU, else None."""
    name = device_name() if name is None else name
    for pattern, label, peak in SPEC_BANDWIDTH:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return label, peak
    return None


def sync() -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if cuda():
        torch.cuda.synchronize()


def time_call(
    fn: Callable[[], object], warmup: int = 2, rounds: int = 20, max_seconds: float = 2.0
) -> tuple[float, float]:
    """(median, min) seconds per call of ``fn``; stops early after ``max_seconds``."""
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    started = time.perf_counter()
    for _ in range(rounds):
        if cuda():
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if len(times) >= 3 and time.perf_counter() - started > max_seconds:
            break
    return statistics.median(times), min(times)


def copy_bandwidth(nbytes: int | None = None) -> float:
    """Measured device-to-device copy bandwidth in bytes/s (bytes read + bytes written).

    1 GiB on a GPU (far beyond any L2), 64 MiB on a CPU.
    """
    nbytes = nbytes or ((1 << 30) if cuda() else (64 << 20))
    device = "cuda" if cuda() else "cpu"
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    median, _ = time_call(lambda: dst.copy_(src), warmup=3, rounds=20)
    return 2 * src.numel() * 4 / median


def peak_bandwidth() -> float:
    """Bytes/s a % of peak refers to: ``$SSEG_BENCH_PEAK_BPS`` or a fresh copy measurement."""
    env = os.environ.get("SSEG_BENCH_PEAK_BPS")
    if env:
        return float(env)
    return copy_bandwidth()


def results_dir(path: str | os.PathLike | None = None) -> Path:
    """Folder for result tables: argument, else ``$SSEG_BENCH_OUT``, else bench/results."""
    return Path(path or os.environ.get("SSEG_BENCH_OUT") or RESULTS_DIR)


def environment_line() -> str:
    """torch / Triton / CUDA versions and the device, for a table's preamble."""
    parts = [f"torch {torch.__version__}"]
    try:
        import triton

        parts.append(f"Triton {triton.__version__}")
    except ImportError:
        pass
    if cuda():
        cap = torch.cuda.get_device_capability()
        sms = torch.cuda.get_device_properties(0).multi_processor_count
        parts.append(f"CUDA {torch.version.cuda}, sm_{cap[0]}{cap[1]}, {sms} SMs")
    else:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        parts.append(f"{torch.get_num_threads()} torch thread(s), load average {load:.1f}")
    return f"{device_name()}: " + ", ".join(parts) + "."


def bandwidth_line(peak: float) -> str:
    """How the % of peak column is defined, with the spec figure beside the measured one."""
    spec = spec_bandwidth() if cuda() else None
    text = f"Peak = measured device-to-device copy in this run: {peak / 1e9:,.0f} GB/s"
    if spec:
        label, spec_bps = spec
        text += f" ({100 * peak / spec_bps:.0f} % of the {label} spec: {spec_bps / 1e12:.2f} TB/s)"
    return text + "."


class ProgressiveTable:
    """A markdown table written atomically to ``path`` after every added row."""

    def __init__(self, path: Path, title: str, preamble: Sequence[str], columns: Sequence[str]):
        self.path = Path(path)
        self.head = [f"# {title}", "", *preamble, ""]
        self.columns = list(columns)
        self.rows: list[list[str]] = []
        self.notes: list[str] = []

    def add(self, *cells: object) -> int:
        """Append one row (cells formatted with str), rewrite the file; returns its index."""
        if len(cells) != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} cells, got {len(cells)}")
        self.rows.append([str(c) for c in cells])
        self.write()
        return len(self.rows) - 1

    def set(self, row: int, column: str, value: object) -> None:
        """Fill in one cell of an earlier row (e.g. a ratio known later); rewrites the file."""
        self.rows[row][self.columns.index(column)] = str(value)
        self.write()

    def note(self, text: str) -> None:
        """A line under the table (e.g. why a row is missing); rewrites the file."""
        self.notes.append(text)
        self.write()

    def text(self) -> str:
        """The whole markdown document."""
        align = ["---" if i == 0 else "---:" for i in range(len(self.columns))]
        lines = [*self.head, "| " + " | ".join(self.columns) + " |", "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines += ["", *self.notes]
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        """Rewrite the file now."""
        atomic_write_text(self.path, self.text())


def ratio(base: float | None, seconds: float) -> str:
    """``base / seconds`` formatted, or ``-`` without a baseline."""
    return f"{base / seconds:.2f}" if base else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the copy bandwidth (the peak).")
    parser.add_argument("--out", default=None, help="results folder")
    args = parser.parse_args(argv)
    peak = copy_bandwidth()
    path = results_dir(args.out) / f"{device_slug()}-device.md"
    spec = spec_bandwidth() if cuda() else None
    table = ProgressiveTable(
        path,
        f"Device: {device_name()}",
        [environment_line()],
        ["figure", "value"],
    )
    table.add("device-to-device copy (read + write), GB/s", f"{peak / 1e9:,.1f}")
    if spec:
        table.add(f"spec-sheet DRAM bandwidth ({spec[0]}), GB/s", f"{spec[1] / 1e9:,.0f}")
        table.add("copy / spec", f"{100 * peak / spec[1]:.0f} %")
    print(f"PEAK_BPS={peak:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
