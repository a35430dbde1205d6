#!/usr/bin/env bash
# The test command: installs the test dependencies, then runs the whole workspace's tests with the
# wgpu suite required to run (on a real GPU, or lavapipe) and every CUDA kernel compiled by NVRTC.
# CUDA runtime tests skip (and say so) on machines without an NVIDIA GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
nvrtc_dir=$(scripts/install-test-deps.sh | tail -n 1)
export LD_LIBRARY_PATH="${nvrtc_dir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MARGIN_REQUIRE_WGPU="${MARGIN_REQUIRE_WGPU:-1}"
export MARGIN_REQUIRE_NVRTC="${MARGIN_REQUIRE_NVRTC:-1}"
export MARGIN_WGPU_ADAPTER="${MARGIN_WGPU_ADAPTER:-}"
# Mesa's Vulkan WSI complains on every instance when this is unset (headless CI machines).
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
    XDG_RUNTIME_DIR=$(mktemp -d)
    export XDG_RUNTIME_DIR
fi
[ -n "$MARGIN_WGPU_ADAPTER" ] || unset MARGIN_WGPU_ADAPTER
cargo test --workspace "$@"
