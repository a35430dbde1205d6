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
BUILD=$("$HERE/build_fake_driver.sh" "${BUILD_DIR:-$(mktemp -d)}" | tail -n 1)
cd "$SRC/../.."
nvrtc_dir=$(scripts/install-test-deps.sh | tail -n 1)
LD_LIBRARY_PATH="$BUILD:$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" MARGIN_REQUIRE_CUDA=1 \
    cargo test "$@"
