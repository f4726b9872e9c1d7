"""bench/gpu_run.sh: the CPU dry run goes as far as it can without a GPU, and fails loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_run.sh"


def _run(*args: str, env_extra: dict[str, str] | None = None, timeout: float = 1500):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update({"PYTHON": sys.executable, "OUT": ""}, **(env_extra or {}))
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_dry_run_builds_collects_and_compiles_for_sm90():
    result = _run("--dry-run")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    for section in ("build", "build-check", "imports", "collect-tests", "compile-check",
                    "import-benches"):  # fmt: skip
        assert f"--- {section} passed" in log, f"section {section} did not pass:\n{log[-4000:]}"
    assert "built _dtw_cpu" in log
    assert "GPU RUN PASSED" in log


def test_a_failed_build_stops_the_run_with_a_non_zero_exit(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    nvcc = fake_bin / "nvcc"
    nvcc.write_text("#!/bin/sh\necho 'nvcc: simulated failure' >&2\nexit 1\n")
    nvcc.chmod(0o755)
    result = _run(
        "--dry-run",
        env_extra={"PATH": f"{fake_bin}:{os.environ['PATH']}", "CC": "false", "CXX": "false"},
        timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "BUILD FAILED" in log and "GPU RUN FAILED: build" in log
    assert "=== collect-tests" not in log  # nothing after a failed build


def test_a_spent_budget_skips_sections_and_fails(tmp_path):
    out = tmp_path / "out"
    result = _run("--dry-run", env_extra={"SSEG_GPU_BUDGET_S": "0", "OUT": str(out)}, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SKIPPED environment" in log and "GPU RUN FAILED" in log
    assert (out / "results" / "dry-run-gpu_run").is_dir()  # logs copied to $OUT even so


def test_bad_arguments_are_rejected():
    result = _run("--bogus", timeout=60)
    assert result.returncode == 2 and "usage" in result.stderr
