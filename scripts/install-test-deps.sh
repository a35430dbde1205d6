#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust, idempotently:
#  - lavapipe, a software Vulkan device (Debian mesa-vulkan-drivers + libvulkan1), so the wgpu
#    backend's tests run for real without a GPU;
#  - libnvrtc from PyPI (nvidia-cuda-nvrtc) in a venv under .venv-nvrtc/, so every CUDA kernel is
#    compiled for sm_90 / sm_80 without a GPU or a CUDA toolkit.
# Prints the LD_LIBRARY_PATH entry for libnvrtc on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing lavapipe (mesa-vulkan-drivers, libvulkan1)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >&2
    else
        echo "lavapipe missing and cannot apt-get install it: wgpu tests will skip" >&2
    fi
fi

if [ ! -d .venv-nvrtc ]; then
    python3 -m venv .venv-nvrtc >&2
fi
if ! ls .venv-nvrtc/lib/python3*/site-packages/nvidia/*/lib/libnvrtc.so* >/dev/null 2>&1; then
    echo "installing nvidia-cuda-nvrtc from PyPI" >&2
    .venv-nvrtc/bin/pip install -q --disable-pip-version-check nvidia-cuda-nvrtc >&2
fi
lib=$(dirname "$(ls .venv-nvrtc/lib/python3*/site-packages/nvidia/*/lib/libnvrtc.so* | head -n 1)")
echo "$(cd "$lib" && pwd)"
