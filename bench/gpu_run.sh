#!/usr/bin/env bash
# One short run on a lent GPU machine (its own python3 with CUDA torch + Triton, no
# internet, no `pip install -e .`); docs/gpu.md explains the sections and the tables.
#
#   bash bench/gpu_run.sh             # on the GPU machine, from anywhere in the repo
#   bash bench/gpu_run.sh --dry-run   # CPU only: as far as it gets without a GPU
#
# Sections, each under its own `timeout` and a global budget ($SSEG_GPU_BUDGET_S, default
# 290 s on a GPU, so the run stays under 5 minutes; 1200 s for the dry run): build (C++ + CUDA extensions in place; any
# failure stops the run), imports, GPU tests (SSEG_AUTOTUNE=quick), peak bandwidth (a
# large device-to-device copy), the AG-Residual, pseudo-boundary, pre-training and (if
# present) latency benches. Result tables go to bench/results/<device>-*.md as each row is
# measured; logs to bench/results/<device>-gpu_run/; both are copied to $OUT when set.
# Exit status: 0 only if every section passed; the failed sections are named at the end.
# The dry run builds into a temporary folder, collects the tests, compile-checks the
# Triton kernels for sm_90 and imports the benches; it writes nothing into the checkout.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: bash bench/gpu_run.sh [--dry-run]" >&2; exit 2 ;;
esac
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
BUDGET=${SSEG_GPU_BUDGET_S:-$([ "$DRY" = 1 ] && echo 1200 || echo 290)}  # CPUs build slowly
START=$SECONDS
FAILED=()

if [ "$DRY" = 1 ]; then
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/sseg-gpu-dry.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  RESULTS="$WORK/results"
  unset TRITON_INTERPRET
else
  RESULTS=${SSEG_GPU_RESULTS:-bench/results}
fi
mkdir -p "$RESULTS"

device_probe() {
  "$PY" - <<'PY'
import re, torch
if torch.cuda.is_available():
    print(re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-"))
else:
    print("none")
PY
}
SLUG=$(device_probe) || { echo "FAILED: python3 cannot import torch" >&2; exit 1; }
if [ "$DRY" = 0 ] && [ "$SLUG" = none ]; then
  echo "FAILED: no CUDA device visible to torch (use --dry-run on a CPU machine)" >&2
  exit 1
fi
[ "$DRY" = 1 ] && SLUG=dry-run
LOGS="$RESULTS/$SLUG-gpu_run"
mkdir -p "$LOGS"
STAMP="$LOGS/.started"
touch "$STAMP"

publish() {  # copy tables + logs to $OUT (if set) after every section
  [ -n "${OUT:-}" ] || return 0
  mkdir -p "$OUT/results"
  cp -r "$LOGS" "$OUT/results/" 2>/dev/null || true
  # every table written during this run (benches not named after $SLUG included)
  find "$RESULTS" -maxdepth 1 -name '*.md' -newer "$STAMP" -exec cp {} "$OUT/results/" \; \
    2>/dev/null || true
}

# section NAME MAX_SECONDS COMMAND...: runs COMMAND under `timeout`, logging to
# $LOGS/NAME.log and the terminal; records NAME as failed on a non-zero exit or timeout.
section() {
  local name=$1 max=$2
  shift 2
  local left=$((BUDGET - (SECONDS - START)))
  local limit=$((max < left ? max : left))
  echo
  echo "=== $name (limit ${limit}s, ${left}s of the run's budget left) ==="
  if [ "$limit" -lt 5 ]; then
    echo "SKIPPED $name: the run's time budget is spent"
    FAILED+=("$name(no time left)")
    return 1
  fi
  local t0=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "FAILED $name: timed out after ${limit}s (log: $LOGS/$name.log)"
    FAILED+=("$name(timeout)")
  elif [ "$rc" != 0 ]; then
    echo "FAILED $name: exit status $rc (log: $LOGS/$name.log)"
    FAILED+=("$name")
  else
    echo "--- $name passed in $((SECONDS - t0))s"
  fi
  publish
  return "$rc"
}

finish() {
  echo
  echo "=== summary ($((SECONDS - START))s, device $SLUG) ==="
  find "$RESULTS" -maxdepth 1 -name '*.md' -newer "$STAMP" | sort
  publish
  if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "GPU RUN FAILED: ${FAILED[*]}" >&2
    exit 1
  fi
  echo "GPU RUN PASSED"
  exit 0
}

export PY
section environment 30 bash -c '
  echo "python: $("$PY" --version 2>&1)"
  if command -v nvcc >/dev/null; then nvcc --version | tail -1; else echo "nvcc: not found"; fi
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
  fi
  "$PY" -c "import torch, triton; print(torch.__version__, torch.version.cuda, triton.__version__)"
'

# --- build: the C++ extension and (GPU, or dry run with nvcc) the CUDA one
ARCH=""
if [ "$DRY" = 0 ]; then
  CC=$("$PY" -c "import torch; print(''.join(map(str, torch.cuda.get_device_capability())))")
  ARCH="-gencode=arch=compute_${CC},code=sm_${CC}"
elif command -v nvcc >/dev/null 2>&1; then
  ARCH="-gencode=arch=compute_90,code=sm_90"
fi
BUILD_CUDA=0
[ -n "$ARCH" ] && BUILD_CUDA=1
if [ "$DRY" = 0 ]; then
  BUILD_ARGS=(--inplace)
else
  BUILD_ARGS=(--build-lib "$WORK/lib" --build-temp "$WORK/build")
fi
if ! section build 150 env SSEG_BUILD_CUDA=$BUILD_CUDA SSEG_CUDA_ARCH="$ARCH" \
    "$PY" setup.py -q build_ext -j 2 "${BUILD_ARGS[@]}"; then
  echo "BUILD FAILED: nothing else runs (see $LOGS/build.log)" >&2
  finish
fi
if [ "$DRY" = 0 ]; then
  # Without an install, `sseg.kernels` is reached through a link to kernels/.
  [ -e sseg/kernels ] || ln -s ../kernels sseg/kernels
  section build-check 30 "$PY" -c "import sseg._dtw_cpu, sseg._dtw_cuda; print('extensions load')" \
    || { echo "BUILD FAILED: the built extensions do not load" >&2; finish; }
else
  section build-check 30 "$PY" - "$WORK/lib" "$BUILD_CUDA" <<'PY' || finish
import importlib.machinery, importlib.util, pathlib, sys
lib, cuda = pathlib.Path(sys.argv[1]), sys.argv[2] == "1"
names = ["_dtw_cpu"] + (["_dtw_cuda"] if cuda else [])
for name in names:
    found = sorted(lib.glob(f"sseg/{name}.*"))
    if not found:
        sys.exit(f"{name} was not built")
    if name == "_dtw_cpu":  # the CUDA one needs a driver to load
        loader = importlib.machinery.ExtensionFileLoader(f"sseg.{name}", str(found[0]))
        spec = importlib.util.spec_from_file_location(f"sseg.{name}", found[0], loader=loader)
        importlib.util.module_from_spec(spec)
    print("built", found[0].name)
PY
fi

# the tests that use the GPU (the CPU-only suites need no device and run in CI)
TESTS=(tests/test_gpu.py tests/ops/test_pseudo_boundary_cuda.py tests/kernels/test_ag_residual.py)
section imports 60 "$PY" -c "
import sseg.kernels, sseg.kernels.ag_residual, sseg.ops, sseg.modeling.model, sseg.training.pretrain
print('sseg imports without open_clip / av / transnetv2')"
export SSEG_AUTOTUNE=quick
PYTEST=("$PY" -m pytest -q -p no:cacheprovider -o addopts=)
if [ "$DRY" = 1 ]; then
  section collect-tests 90 "${PYTEST[@]}" --collect-only "${TESTS[@]}"
  section compile-check 240 "$PY" -m sseg.kernels.compile_check --arch 90 --dtype bf16
  section import-benches 60 "$PY" -c "
import sys; sys.path.insert(0, 'bench')
import benchlib, bench_ag_residual, bench_dtw, bench_pretrain
print('benches import')"
  finish
fi

section gpu-tests 140 "${PYTEST[@]}" --maxfail=10 -rfE --durations=15 "${TESTS[@]}"
unset SSEG_AUTOTUNE

# --- benches: the peak first (measured once, reused by the others)
export SSEG_BENCH_OUT="$RESULTS"
if section peak-bandwidth 30 "$PY" bench/benchlib.py --out "$RESULTS"; then
  PEAK=$(sed -n 's/^PEAK_BPS=//p' "$LOGS/peak-bandwidth.log" | tail -1)
  [ -n "$PEAK" ] && export SSEG_BENCH_PEAK_BPS="$PEAK"
fi
section bench-ag_residual 80 "$PY" bench/bench_ag_residual.py --out "$RESULTS"
section bench-pretrain 60 "$PY" bench/bench_pretrain.py --out "$RESULTS"
section bench-dtw 30 "$PY" bench/bench_dtw.py --out "$RESULTS"
if [ -f bench/bench_latency.py ]; then
  section bench-latency 30 "$PY" bench/bench_latency.py --device cuda --out "$RESULTS"
else
  echo "bench/bench_latency.py not present: latency bench skipped"
fi
finish
