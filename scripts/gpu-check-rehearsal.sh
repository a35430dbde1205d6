#!/usr/bin/env bash
# Rehearses scripts/gpu-check.sh on this CPU-only machine: the prebuilt out/gpu-bin binaries
# (scripts/build-gpu-bin.sh) run from a copy of the tracked files at another path, as on the GPU machine,
# against the stand-in libcuda.so.1 whose launches run the CPU emulation of every kernel
# (shaders/cuda/emu/build_fake_driver.sh). It checks the script's own plumbing (library
# discovery, fixture paths, the kernel cache across processes, parsing, the table) and the
# results of the steps that are small enough to emulate; timings mean nothing here.
#   scripts/gpu-check-rehearsal.sh                  # steps parity,eval (~10 min on 2 cores)
#   STEPS=tests,parity,eval scripts/gpu-check-rehearsal.sh   # tests: hours, emulated
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ -x out/gpu-bin/margin ] || { echo "run scripts/build-gpu-bin.sh first" >&2; exit 2; }
WORK=$(mktemp -d)
DRIVER=$(shaders/cuda/emu/build_fake_driver.sh "$WORK/driver" | tail -n 1)
NVRTC=$(scripts/install-test-deps.sh | tail -n 1)
# Python with numpy for the parity and eval steps; the NVRTC virtual environment gets it.
PY="$ROOT/.venv-nvrtc/bin/python3"
"$PY" -c 'import numpy' 2>/dev/null || "$PY" -m pip install -q numpy
mkdir -p "$WORK/checkout"
git ls-files -z | tar --null -T - -c | tar -x -C "$WORK/checkout"
cp -r out "$WORK/checkout/"
cd "$WORK/checkout"
OUT=${OUT:-$WORK/out}
LD_LIBRARY_PATH="$DRIVER:$NVRTC" PYTHON="$PY" GPU_CHECK_STEPS=${STEPS:-parity,eval} \
    GPU_CHECK_CAP_SCALE=${CAP_SCALE:-10} GPU_CHECK_KNN_N=${KNN_N:-2000} \
    GPU_CHECK_BUDGET_S=${BUDGET_S:-3600} OUT="$OUT" scripts/gpu-check.sh
echo "rehearsal logs: $OUT"
