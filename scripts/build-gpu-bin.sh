#!/usr/bin/env bash
# Builds the binaries that scripts/gpu-check.sh runs on a GPU machine without a Rust toolchain:
# the `margin` CLI, the margin-cuda and generic test executables, the pytorch-metric-learning
# wheels and Debian's Vulkan loader package, copied into out/gpu-bin/.
#   scripts/build-gpu-bin.sh            # uses $CARGO_TARGET_DIR or ./target
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DEST="$ROOT/out/gpu-bin"
mkdir -p "$DEST"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

cargo build --release -p margin-cli
cp "$TARGET_DIR/release/margin" "$DEST/margin"

# The test executables' paths come from cargo's JSON messages (their names carry a hash).
cargo test --release -p margin-cuda --no-run --message-format=json \
    | python3 -c '
import json, shutil, sys
dest = sys.argv[1]
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    if not msg.get("profile", {}).get("test"):
        continue
    target = msg["target"]["name"].replace("-", "_")
    if target.startswith("emu_"):
        continue  # the CPU emulator drivers are not for the GPU machine
    name = "margin_cuda_" + target if target != "margin_cuda" else "margin_cuda_unit"
    shutil.copy(msg["executable"], dest + "/" + name)
    print("copied", name)
' "$DEST"

# The generic cross-backend suites (tests/tests/*.rs: cpu, wgpu and cuda instantiations).
for t in equivalence reference_sets cross_batch_memory knn; do
    cargo test --release -p margin-tests --test "$t" --no-run --message-format=json \
        | python3 -c '
import json, shutil, sys
name = sys.argv[2]
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
            and msg["target"]["name"] == name:
        shutil.copy(msg["executable"], sys.argv[1] + "/margin_tests_" + name)
        print("copied margin_tests_" + name)
' "$DEST" "$t"
done
# Symbols are not needed there and the carried folder must stay under 64 MiB.
strip "$DEST"/* 2>/dev/null || true
# pytorch-metric-learning for the GPU table (pure Python; its losses need tqdm, not scikit-learn),
# installed there with --no-deps beside the machine's torch. Best effort: without network the
# check reports PML as skipped.
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip download -q --no-deps pytorch-metric-learning==2.9.0 tqdm -d "$DEST/wheels" \
    || echo "warning: could not download the PML wheels; the GPU check will skip PML"
# Debian's Vulkan loader (libvulkan.so.1, ~120 KB) for the wgpu steps: the GPU image may have the
# NVIDIA Vulkan driver but no loader. gpu-check.sh unpacks it into a private folder when needed.
mkdir -p "$DEST/debs"
(cd "$DEST/debs" && apt-get download libvulkan1 >/dev/null 2>&1) \
    || echo "warning: could not download libvulkan1; the GPU check needs the machine's own loader"
ls -l "$DEST" "$DEST/debs"
du -sh "$DEST"
