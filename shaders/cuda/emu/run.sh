#!/usr/bin/env bash
# Runs the CUDA kernels on the CPU: cuda_emu.h maps each CUDA thread to an OS thread and
# __syncthreads to a std::barrier, so the real kernel sources (common.cuh + *.cu, concatenated as
# the backend does) are compiled with g++ and checked against brute force and finite
# differences, with no GPU. Slow (one OS thread per CUDA thread): about 5 minutes on 2 cores.
#   shaders/cuda/emu/run.sh            # needs g++ >= 12 (C++20 <barrier>)
#   ONLY=knn_test shaders/cuda/emu/run.sh          # just the fused k-NN kernel (knn.cu)
#   ONLY=proxy_anchor_test shaders/cuda/emu/run.sh # just proxy-anchor (proxy_anchor.cu)
#   ONLY=proxy_softmax_test shaders/cuda/emu/run.sh # proxy-nca, normalized-softmax, cosface
# End to end against the f64 reference (the backend's own Rust host code on these emulated
# kernels, through a stand-in libcuda): shaders/cuda/emu/host_check.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BUILD=${BUILD_DIR:-$(mktemp -d)}
cat "$SRC/common.cuh" "$SRC/distance.cu" "$SRC/chain.cu" "$SRC/reduce.cu" "$SRC/pair_losses.cu" \
    "$SRC/triplet.cu" "$SRC/quadruplet.cu" "$SRC/pml_losses.cu" "$SRC/quad_hard.cu" \
    "$SRC/proxy_anchor.cu" "$SRC/proxy_softmax.cu" >"$BUILD/all.cu"
status=0
for t in ${ONLY:-kernels_test losses_test pipeline_test centers_test new_losses_test knn_test \
    proxy_anchor_test proxy_softmax_test}; do
    g++ -std=c++20 -O2 -pthread -w -I"$BUILD" -I"$HERE" -I"$SRC" "$HERE/$t.cpp" -o "$BUILD/$t"
    echo "== $t"
    "$BUILD/$t" || status=1
done
exit $status
