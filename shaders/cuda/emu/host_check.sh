#!/usr/bin/env bash
# Runs margin-cuda's Rust host code end to end without a GPU: builds a stand-in libcuda.so.1
# (fake_driver.cpp: host memory for device memory, the cuda_emu.h CPU emulation for launches)
# and runs the given cargo test arguments with it first on the library path, with
# MARGIN_REQUIRE_CUDA=1 (the CUDA tests run instead of skipping). NVRTC still compiles every
# module (scripts/install-test-deps.sh provides libnvrtc). Examples:
#   shaders/cuda/emu/host_check.sh -p margin-cuda --test equivalence -- every_loss
#   shaders/cuda/emu/host_check.sh -p margin-tests --test equivalence -- cuda::
# Slow (one OS thread per CUDA thread, one block at a time): keep to small cases. What it cannot
# show: timing, real memory limits, races between blocks (blocks run one after another).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BUILD=${BUILD_DIR:-$(mktemp -d)}
cat "$SRC/common.cuh" "$SRC/distance.cu" "$SRC/chain.cu" "$SRC/reduce.cu" "$SRC/pair_losses.cu" \
    "$SRC/triplet.cu" "$SRC/quadruplet.cu" "$SRC/pml_losses.cu" "$SRC/quad_hard.cu" \
    "$SRC/knn.cu" >"$BUILD/all.cu"
{
    echo '#define KERNELS(X) \'
    grep -ho 'extern "C" __global__ void [a-z0-9_]*' "$BUILD/all.cu" \
        | awk '{print "    X(" $5 ") \\"}'
    echo
} >"$BUILD/kernel_table.inc"
g++ -std=c++20 -O2 -pthread -w -fPIC -shared -I"$BUILD" -I"$HERE" -I"$SRC" \
    "$HERE/fake_driver.cpp" -o "$BUILD/libcuda.so.1"
ln -sf libcuda.so.1 "$BUILD/libcuda.so"
echo "fake libcuda: $BUILD/libcuda.so.1 ($(grep -c 'X(' "$BUILD/kernel_table.inc") kernels)"
cd "$SRC/../.."
nvrtc_dir=$(scripts/install-test-deps.sh | tail -n 1)
LD_LIBRARY_PATH="$BUILD:$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" MARGIN_REQUIRE_CUDA=1 \
    cargo test "$@"
