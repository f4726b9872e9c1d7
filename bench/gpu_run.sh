#!/usr/bin/env bash
# One command for a lent GPU machine (its own python3 with CUDA torch + Triton, no
# internet, so no `pip install -e .`): builds both extensions in place (CUDA included),
# runs the GPU tests of the kernels and ops, then the kernel benches, which write
# bench/results/<device>-*.md. Logs and result tables are also copied to $OUT when set.
#
#   bash bench/gpu_run.sh            # on the GPU machine, from anywhere in the repo
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-bench/results}
mkdir -p "$OUT_DIR"

# Without an install, `sseg.kernels` is reached through a link to kernels/.
[ -e sseg/kernels ] || ln -s ../kernels sseg/kernels

SSEG_BUILD_CUDA=1 "$PY" setup.py -q build_ext --inplace 2>&1 | tail -5
"$PY" - <<'PY'
import torch
print("device:", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
print("torch", torch.__version__)
PY

status=0
"$PY" -m pytest -q -p no:cacheprovider -o addopts="" \
  tests/test_ag_residual.py tests/test_pseudo_boundary.py tests/test_pseudo_boundary_cuda.py \
  2>&1 | tee "$OUT_DIR/gpu-tests.log" || status=1

for bench in bench/bench_dtw.py bench/bench_ag_residual.py; do
  SSEG_BENCH_OUT=bench/results "$PY" -m pytest -q -p no:cacheprovider -o addopts="" \
    "$bench" --benchmark-enable -s 2>&1 | tail -40 || status=1
done
[ "$OUT_DIR" = bench/results ] || cp bench/results/*.md "$OUT_DIR"/ 2>/dev/null
exit $status
