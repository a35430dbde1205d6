#!/usr/bin/env bash
# Runs the CUDA kernels on the CPU: cuda_emu.h maps each CUDA thread to an OS thread and
# __syncthreads to a std::barrier, so the real kernel sources (common.cuh + *.cu, concatenated as
# the backend does) are compiled with g++ and checked against brute force and finite
# differences, with no GPU. Slow (one OS thread per CUDA thread): about 5 minutes on 2 cores.
#   shaders/cuda/emu/run.sh            # needs g++ >= 12 (C++20 <barrier>)
#   REF=1 shaders/cuda/emu/run.sh      # also: the six losses of new_losses.md end to end against
#                                      # the f64 reference backend (cargo; ~10 more minutes), and
#                                      # reference sets (docs/REFERENCE_SETS.md) end to end against
#                                      # tests/fixtures/pml_ref and random rectangles (~5 minutes)
#   ONLY=ref_check REF=1 shaders/cuda/emu/run.sh   # just the reference-set check
#   ONLY=knn_test shaders/cuda/emu/run.sh          # just the fused k-NN kernel (knn.cu)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BUILD=${BUILD_DIR:-$(mktemp -d)}
cat "$SRC/common.cuh" "$SRC/distance.cu" "$SRC/chain.cu" "$SRC/reduce.cu" "$SRC/pair_losses.cu" \
    "$SRC/triplet.cu" "$SRC/quadruplet.cu" "$SRC/pml_losses.cu" "$SRC/quad_hard.cu" >"$BUILD/all.cu"
status=0
for t in ${ONLY:-kernels_test losses_test pipeline_test centers_test new_losses_test knn_test}; do
    [ "$t" = ref_check ] && continue
    g++ -std=c++20 -O2 -pthread -w -I"$BUILD" -I"$HERE" -I"$SRC" "$HERE/$t.cpp" -o "$BUILD/$t"
    echo "== $t"
    "$BUILD/$t" || status=1
done
if [ "${REF:-0}" = 1 ] && [ -z "${ONLY:-}" ]; then
    echo "== reference_check"
    (cd "$SRC/../.." && MARGIN_EMU_REF="$BUILD/ref.txt" \
        cargo test -q -p margin-cuda --test emu_reference -- --ignored >/dev/null)
    g++ -std=c++20 -O2 -pthread -w -I"$BUILD" -I"$HERE" "$HERE/reference_check.cpp" \
        -o "$BUILD/reference_check"
    "$BUILD/reference_check" "$BUILD/ref.txt" || status=1
fi
if [ "${REF:-0}" = 1 ]; then
    echo "== ref_check (reference sets)"
    (cd "$SRC/../.." && MARGIN_EMU_REF_SETS="$BUILD/refsets.txt" \
        cargo test -q -p margin-cuda --test emu_ref_sets -- --ignored >/dev/null)
    g++ -std=c++20 -O2 -pthread -w -I"$BUILD" -I"$HERE" "$HERE/ref_check.cpp" -o "$BUILD/ref_check"
    "$BUILD/ref_check" "$BUILD/refsets.txt" || status=1
fi
exit $status
