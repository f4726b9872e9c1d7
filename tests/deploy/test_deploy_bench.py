"""bench/bench_latency.py runs end to end (eager only, a few calls) and writes its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_latency.py"
pytestmark = pytest.mark.usefixtures("one_thread")


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_latency", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_latency_bench_writes_the_cpu_table(tmp_path, capsys):
    bench = _bench_module()
    args = ["--device", "cpu", "--out", str(tmp_path), "--impls", "eager", "--batch-sizes", "1,2"]
    args += ["--stream-shots", "12", "--cell-seconds", "0.01", "--min-reps", "2"]
    assert bench.main(args) == 0
    table = (tmp_path / "cpu-latency.md").read_text()
    assert "| eager | 1 | " in table and "| eager | 2 | " in table
    assert "8 shots (W/2) of stream time, 21.4 s" in table
    streaming = [line for line in table.splitlines() if line.startswith("| eager | 2 |")]
    assert len(streaming) == 2  # batch 2, and streaming with 2 timed pushes (12 - 8 - 2)
    assert "wrote" in capsys.readouterr().out


def test_latency_bench_refuses_unknown_impls(tmp_path):
    with pytest.raises(SystemExit):
        _bench_module().parse_args(["--impls", "eager,onnx"])
