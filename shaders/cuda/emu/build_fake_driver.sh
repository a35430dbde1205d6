#!/usr/bin/env bash
# Builds the stand-in libcuda.so.1 (fake_driver.cpp: host memory for device memory, the
# cuda_emu.h CPU emulation of every kernel for launches) into $1 (default: a new temporary
# folder) and prints that folder last. Used by host_check.sh and scripts/gpu-check-rehearsal.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BUILD=${1:-$(mktemp -d)}
mkdir -p "$BUILD"
cat "$SRC/common.cuh" "$SRC/distance.cu" "$SRC/chain.cu" "$SRC/reduce.cu" "$SRC/pair_losses.cu" \
    "$SRC/triplet.cu" "$SRC/quadruplet.cu" "$SRC/pml_losses.cu" "$SRC/quad_hard.cu" \
    "$SRC/proxy_anchor.cu" "$SRC/proxy_softmax.cu" "$SRC/knn.cu" >"$BUILD/all.cu"
{
    echo '#define KERNELS(X) \'
    grep -ho 'extern "C" __global__ void [a-z0-9_]*' "$BUILD/all.cu" \
        | awk '{print "    X(" $5 ") \\"}'
    echo
} >"$BUILD/kernel_table.inc"
g++ -std=c++20 -O2 -pthread -w -fPIC -shared -I"$BUILD" -I"$HERE" -I"$SRC" \
    "$HERE/fake_driver.cpp" -o "$BUILD/libcuda.so.1"
ln -sf libcuda.so.1 "$BUILD/libcuda.so"
echo "fake libcuda: $BUILD/libcuda.so.1 ($(grep -c 'X(' "$BUILD/kernel_table.inc") kernels)" >&2
echo "$BUILD"
