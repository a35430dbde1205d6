#!/usr/bin/env bash
# GPU check for a machine with the NVIDIA driver, CUDA 13, Python with PyTorch and NO Rust
# toolchain. Runs the prebuilt binaries of scripts/build-gpu-bin.sh (out/gpu-bin/):
#   1. the margin-cuda NVRTC compile test and CUDA-vs-reference equivalence tests,
#   2. CLI parity of `margin loss --backend cuda` against tests/fixtures/pml/*.json,
#   1b. the generic equivalence suite (every loss config) on CUDA, and on wgpu if Vulkan exists,
#   3. `margin bench --on-device` (the device path alone, inputs uploaded once, each run ended by
#      a synchronize: what a trainer on the GPU pays) of pairwise, contrastive and triplet for N
#      in {4096, 16384, 65536} and D in {128, 512}, every other loss at N in {4096, 16384} and
#      D = 128, beside torch.cdist and pytorch-metric-learning (where it fits) timed the same way,
#      and pairwise, contrastive and triplet on the WGSL backend (Vulkan) at N <= 16384, D = 128,
# and prints a summary table last. Logs go under $OUT (default ./out). Whole run < 8 minutes:
# every step has a timeout and later steps are skipped when the overall budget is spent.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=${GPU_BIN:-$ROOT/out/gpu-bin}
OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET_S=${GPU_CHECK_BUDGET_S:-470}
START=$(date +%s)
SUMMARY="$OUT/gpu-check-summary.tsv"
BENCH="$OUT/bench.jsonl"
: >"$SUMMARY"

left() { echo $((BUDGET_S - ($(date +%s) - START))); }
# GPU_CHECK_STEPS=a,b: only those steps (tests, parity, eval, bench), e.g. to rerun the benches
# alone after a run that spent its budget; unset runs all four.
# GPU_CHECK_CAP_SCALE multiplies every step's time cap and GPU_CHECK_KNN_N sets the large k-NN's
# size (100000): scripts/gpu-check-rehearsal.sh runs the check on the CPU-emulated driver.
export GPU_CHECK_CAP_SCALE=${GPU_CHECK_CAP_SCALE:-1}
CAP_SCALE=$GPU_CHECK_CAP_SCALE
export GPU_CHECK_KNN_N=${GPU_CHECK_KNN_N:-100000}
want() { [ -z "${GPU_CHECK_STEPS:-}" ] || [[ ",$GPU_CHECK_STEPS," == *",$1,"* ]]; }
note() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$SUMMARY"; echo "[$1] $2: $3"; }
# run_capped NAME SECONDS CMD...: runs CMD with a timeout capped by the remaining budget.
run_capped() {
    local name=$1 cap=$2
    shift 2
    local rest
    rest=$(left)
    if [ "$rest" -le 5 ]; then
        note "$name" SKIP "out of time budget"
        return 124
    fi
    cap=$((cap * CAP_SCALE))
    [ "$cap" -gt "$rest" ] && cap=$rest
    timeout --kill-after=5 "$cap" "$@"
}

# libnvrtc: the CUDA toolkit, or the nvidia-* wheels that come with PyTorch.
NVRTC_DIRS=""
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    ls "$dir"/libnvrtc.so* >/dev/null 2>&1 && NVRTC_DIRS="$NVRTC_DIRS:$dir"
done
PYSITE=$("$PY" -c 'import nvidia, os; print(" ".join(nvidia.__path__))' 2>/dev/null || true)
for base in $PYSITE; do
    for lib in $(find "$base" -name 'libnvrtc.so*' 2>/dev/null); do
        NVRTC_DIRS="$NVRTC_DIRS:$(dirname "$lib")"
    done
done
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}$NVRTC_DIRS"
# Vulkan for the wgpu steps. The image may have NVIDIA's Vulkan driver without the loader
# (libvulkan.so.1): build-gpu-bin.sh carries Debian's libvulkan1, unpacked here into a private
# folder (never into /). The driver's ICD file may sit only under the driver's mount.
LDCONFIG=$(command -v ldconfig || echo /sbin/ldconfig)
if ! "$LDCONFIG" -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
    deb=$(ls "$BIN"/debs/libvulkan1_*.deb 2>/dev/null | head -n 1)
    if [ -n "$deb" ] && command -v dpkg-deb >/dev/null; then
        VKROOT=$(mktemp -d)
        dpkg-deb -x "$deb" "$VKROOT" \
            && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$VKROOT/usr/lib/x86_64-linux-gnu" \
            && echo "Vulkan loader: unpacked $(basename "$deb") (the machine has none)"
    else
        echo "Vulkan loader: none on the machine and none carried; wgpu steps will skip"
    fi
fi
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] \
    && ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json \
        /usr/local/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
    for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
        /usr/local/nvidia/etc/vulkan/icd.d/nvidia_icd.json; do
        [ -f "$icd" ] && export VK_DRIVER_FILES="$icd" && echo "Vulkan ICD: $icd" && break
    done
fi
# Compiled kernels are cached on disk (crates/margin-cuda/src/cache.rs): NVRTC runs once per
# program, not once per process (the parity step starts a few hundred processes).
export MARGIN_CUDA_CACHE_DIR=${MARGIN_CUDA_CACHE_DIR:-$(mktemp -d)/margin-cuda-cache}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH VK_DRIVER_FILES=${VK_DRIVER_FILES:-}" | tee "$OUT/env.log"
command -v nvidia-smi >/dev/null && nvidia-smi >>"$OUT/env.log" 2>&1
[ -x "$BIN/margin" ] && "$BIN/margin" devices >>"$OUT/env.log" 2>&1
cat "$OUT/env.log"

if want tests; then
# 1. Test binaries. A test that prints "skipping:" did not run on the GPU: counted as a failure.
for t in margin_cuda_nvrtc_compile margin_cuda_equivalence margin_cuda_unit margin_cuda_reference_sets \
    margin_cuda_knn margin_cuda_device_limits; do
    exe="$BIN/$t"
    if [ ! -x "$exe" ]; then
        note "$t" MISSING "$exe not found (run scripts/build-gpu-bin.sh)"
        continue
    fi
    MARGIN_REQUIRE_NVRTC=1 run_capped "$t" 200 "$exe" --test-threads=1 --nocapture \
        >"$OUT/$t.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        note "$t" FAIL "exit $rc (see $OUT/$t.log)"
    elif grep -q "skipping:" "$OUT/$t.log"; then
        note "$t" FAIL "skipped: $(grep -m1 'skipping:' "$OUT/$t.log")"
    else
        note "$t" PASS "$(grep -E '^test result' "$OUT/$t.log" | tail -1)"
    fi
done

# 1b. The generic suite: every loss config on CUDA (required) and on a Vulkan wgpu adapter (the
# machine may have no Vulkan ICD: then it is reported as skipped, not failed).
exe="$BIN/margin_tests_equivalence"
if [ -x "$exe" ]; then
    MARGIN_REQUIRE_CUDA=1 run_capped generic-cuda 200 "$exe" cuda --test-threads=1 --nocapture \
        >"$OUT/generic-cuda.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        note generic-cuda FAIL "exit $rc (see $OUT/generic-cuda.log)"
    else
        note generic-cuda PASS "$(grep -E '^test result' "$OUT/generic-cuda.log" | tail -1)"
    fi
    run_capped generic-wgpu 200 "$exe" wgpu --test-threads=1 --nocapture \
        >"$OUT/generic-wgpu.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        note generic-wgpu FAIL "exit $rc (see $OUT/generic-wgpu.log)"
    elif grep -q "skipping" "$OUT/generic-wgpu.log"; then
        note generic-wgpu SKIP "$(grep -m1 'skipping' "$OUT/generic-wgpu.log")"
    else
        note generic-wgpu PASS "$(grep -m1 'testing backend' "$OUT/generic-wgpu.log")"
    fi
else
    note generic MISSING "$exe not found (run scripts/build-gpu-bin.sh)"
fi

# 1c. Reference sets and CrossBatchMemory on CUDA (PML fixtures, random rectangles).
for t in reference_sets cross_batch_memory knn; do
    exe="$BIN/margin_tests_$t"
    if [ ! -x "$exe" ]; then
        note "$t" MISSING "$exe not found (run scripts/build-gpu-bin.sh)"
        continue
    fi
    MARGIN_REQUIRE_CUDA=1 run_capped "$t-cuda" 120 "$exe" cuda --test-threads=1 --nocapture \
        >"$OUT/$t-cuda.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        note "$t-cuda" FAIL "exit $rc (see $OUT/$t-cuda.log)"
    else
        note "$t-cuda" PASS "$(grep -E '^test result' "$OUT/$t-cuda.log" | tail -1)"
    fi
done
fi  # tests

if want parity; then
# 2. CLI parity against the PML fixtures.
if [ -x "$BIN/margin" ] && ls tests/fixtures/pml/*.json >/dev/null 2>&1; then
    # Square fixtures and reference-set fixtures (--ref-embeddings); eval --k on the fused k-NN.
    # One process per case, eight at a time (each opens its own CUDA context); the first case
    # runs alone so that the kernel cache is written once.
    run_capped cli-parity 150 "$PY" - "$BIN/margin" "$OUT/parity" >"$OUT/cli-parity.log" 2>&1 <<'PYEOF'
import concurrent.futures, glob, json, os, subprocess, sys
import numpy as np
margin, root = sys.argv[1], sys.argv[2]
paths = sorted(glob.glob("tests/fixtures/pml/*.json")) + sorted(glob.glob("tests/fixtures/pml_ref/*.json"))
# CrossBatchMemory fixtures are sequences of calls, not single cases: the cross_batch_memory
# suite (step 1c) checks them on CUDA.
cases = [case for path in paths for case in json.load(open(path)).get("cases", []) if "calls" not in case]

def check(index):
    case = cases[index]
    work = os.path.join(root, str(index))
    os.makedirs(work, exist_ok=True)
    n, d = case["n"], case["d"]
    x = os.path.join(work, "x.npy"); y = os.path.join(work, "y.npy"); g = os.path.join(work, "g.npy")
    np.save(x, np.array(case["embeddings"], dtype=np.float32).reshape(n, d))
    np.save(y, np.array(case["labels"], dtype=np.int64))
    cmd = [margin, "loss", case["loss"], "--embeddings", x, "--labels", y,
           "--backend", "cuda", "--grad-out", g]
    if case.get("centers") is not None:
        c = os.path.join(work, "c.npy")
        np.save(c, np.array(case["centers"], dtype=np.float32).reshape(case["k"], d))
        cmd += ["--centers", c, "--center-grad-out", os.path.join(work, "cg.npy")]
    if case.get("m") is not None:
        r = os.path.join(work, "r.npy"); rl = os.path.join(work, "rl.npy")
        np.save(r, np.array(case["ref_embeddings"], dtype=np.float32).reshape(case["m"], d))
        np.save(rl, np.array(case["ref_labels"], dtype=np.int64))
        cmd += ["--ref-embeddings", r, "--ref-labels", rl]
        if case.get("self_index") is not None:
            s = os.path.join(work, "s.npy")
            np.save(s, np.array(case["self_index"], dtype=np.int64))
            cmd += ["--ref-self-index", s]
    for key, value in case.get("params", {}).items():
        if key == "normalize":
            cmd.append("--normalize" if value else "--no-normalize")
        elif key == "smooth":
            if value:
                cmd.append("--smooth")
        else:
            cmd += ["--" + key.replace("_", "-"), str(value)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=60 * int(os.environ["GPU_CHECK_CAP_SCALE"]))
    except subprocess.TimeoutExpired:
        return False, f"FAIL {case['name']} timed out after 60 s"
    if res.returncode != 0:
        return False, f"FAIL {case['name']} {res.stderr.strip()}"
    got = json.loads(res.stdout.strip().splitlines()[-1])["loss"]
    want = case["value"]
    grad = np.load(g).astype(np.float64).ravel()
    gw = np.array(case["grad"], dtype=np.float64)
    gerr = np.linalg.norm(grad - gw) / max(np.linalg.norm(gw), 1e-30)
    lerr = abs(got - want)
    def close(got_g, want_g):
        # Relative in norm; absolute below a reference norm of 1e-6 (tests/support/golden.rs,
        # GRAD_TINY: an exactly-zero gradient is "1e-16" in f64).
        diff, norm = np.linalg.norm(got_g - want_g), np.linalg.norm(want_g)
        return diff <= 1e-3 * norm or (norm < 1e-6 and diff <= 1e-6)
    ok = (lerr <= 1e-4 * abs(want) or lerr <= 1e-6) and close(grad, gw)
    if case.get("center_grad") is not None:
        cg = np.load(os.path.join(work, "cg.npy")).astype(np.float64).ravel()
        ok = ok and close(cg, np.array(case["center_grad"], dtype=np.float64))
    line = f"{'ok  ' if ok else 'FAIL'} {case['name']} loss {got:.8g} vs {want:.8g} grad rel err {gerr:.2e}"
    return ok, line

results = [check(0)] if cases else []
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    results += list(pool.map(check, range(1, len(cases))))
for _, line in results:
    print(line)
bad = sum(not ok for ok, _ in results)
print(f"PARITY {len(results) - bad}/{len(cases)} passed")
sys.exit(1 if bad else 0)
PYEOF
    rc=$?
    note cli-parity "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "$(grep -m1 PARITY "$OUT/cli-parity.log" || echo "exit $rc, see $OUT/cli-parity.log")"
else
    note cli-parity SKIP "no margin binary or no tests/fixtures/pml/*.json"
fi
fi  # parity

if want eval; then
# 2b. Retrieval with --k (the fused distance + top-k kernel) against PML's AccuracyCalculator(k),
# then 100k x 100k at D = 128, k = 10, beside torch (blocked cdist + topk).
if [ -x "$BIN/margin" ] && [ -f tests/fixtures/eval/knn.json ]; then
    run_capped eval-knn 150 "$PY" - "$BIN/margin" "$OUT/eval" >"$OUT/eval-knn.log" 2>&1 <<'PYEOF'
import json, os, subprocess, sys, time
import numpy as np
margin, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)

def run(cmd, timeout):
    """subprocess.run that reports a timeout as a failed result instead of aborting the step."""
    try:
        timeout *= int(os.environ["GPU_CHECK_CAP_SCALE"])
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {timeout} s")

bad = total = 0
for case in json.load(open("tests/fixtures/eval/knn.json"))["cases"]:
    total += 1
    q = os.path.join(work, "q.npy"); ql = os.path.join(work, "ql.npy")
    np.save(q, np.array(case["query"], dtype=np.float32))
    np.save(ql, np.array(case["query_labels"], dtype=np.int64))
    cmd = [margin, "eval", "--query", q, "--query-labels", ql, "--backend", "cuda",
           "--distance", case["distance"], "--normalize" if case["normalize"] else "--no-normalize",
           "--k", str(case["k"]).replace("_", "-")]
    if case["reference"] is not None:
        r = os.path.join(work, "r.npy"); rl = os.path.join(work, "rl.npy")
        np.save(r, np.array(case["reference"], dtype=np.float32))
        np.save(rl, np.array(case["reference_labels"], dtype=np.int64))
        cmd += ["--reference", r, "--reference-labels", rl]
    res = run(cmd, 60)
    ok = res.returncode == 0
    if ok:
        got = json.loads(res.stdout)
        ok = all(abs(got[m] - v) <= 1e-6 for m, v in case["expected"].items())
    bad += not ok
    print("ok  " if ok else "FAIL", case["name"], res.stderr.strip()[:200])
print(f"EVAL-K {total - bad}/{total} passed")
n, d, k = int(os.environ["GPU_CHECK_KNN_N"]), 128, 10
rng = np.random.default_rng(0)
x = rng.standard_normal((n, d), dtype=np.float32)
y = rng.integers(0, 1000, n)
q = os.path.join(work, "big.npy"); ql = os.path.join(work, "bigl.npy")
np.save(q, x); np.save(ql, y)
t = time.perf_counter()
res = run([margin, "eval", "--query", q, "--query-labels", ql, "--backend", "cuda",
           "--k", str(k)], 120)
print(f"KNN{n // 1000}K margin cuda: {(time.perf_counter() - t) * 1e3:.0f} ms (process incl. npy load), rc {res.returncode}", res.stdout.strip()[:300], res.stderr.strip()[:300])
try:
    import torch
    dev = torch.device("cuda")
    xt = torch.from_numpy(x).to(dev)
    for rep in range(2):
        torch.cuda.synchronize(); t = time.perf_counter()
        idx = []
        for s in range(0, n, 8192):
            dist = torch.cdist(xt[s:s + 8192], xt)
            dist[torch.arange(dist.shape[0], device=dev), torch.arange(s, s + dist.shape[0], device=dev)] = float("inf")
            idx.append(torch.topk(dist, k, largest=False).indices)
        torch.cuda.synchronize()
    print(f"KNN{n // 1000}K torch blocked cdist+topk: {(time.perf_counter() - t) * 1e3:.0f} ms (on-device only)")
except Exception as e:
    print(f"KNN{n // 1000}K torch: skipped:", e)
sys.exit(1 if bad else 0)
PYEOF
    rc=$?
    note eval-knn "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "$( (grep -m1 EVAL-K "$OUT/eval-knn.log"; grep -E '^KNN[0-9]+K' "$OUT/eval-knn.log") | tr '\n' ' ')"
else
    note eval-knn SKIP "no margin binary or no tests/fixtures/eval/knn.json"
fi
fi  # eval

if want bench; then
# 3. Benchmarks: margin (JSON lines) and torch.cdist.
: >"$BENCH"
# bench_row NAME BACKEND WHAT N D [FLAGS...]: one `margin bench --on-device` run, its JSON line
# (or an error line naming the exit code) appended to $BENCH.
bench_row() {
    local name=$1 backend=$2 what=$3 n=$4 d=$5
    shift 5
    run_capped "$name" 60 "$BIN/margin" bench "$what" --n "$n" --d "$d" --backend "$backend" \
        --on-device --warmup 1 --reps 3 "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    if [ $rc -eq 0 ]; then
        tail -n 1 "$OUT/$name.log" >>"$BENCH"
    else
        echo "{\"what\": \"$what\", \"backend\": \"$backend\", \"n\": $n, \"d\": $d, \"flags\": \"$*\", \"error\": \"exit $rc\"}" >>"$BENCH"
    fi
}
for n in 4096 16384 65536; do
    for d in 128 512; do
        for what in pairwise contrastive triplet triplet-center n-pair quadruplet lifted-structure \
            multi-similarity circle nt-xent supcon generalized-lifted-structure proxy-anchor \
            proxy-nca normalized-softmax cosface; do
            # The batch-all triplet at N = 65536 is left out to stay within the time budget;
            # the other losses run at N <= 16384 and D = 128 only (process start dominates).
            [ "$what" = triplet ] && [ "$n" -gt 16384 ] && continue
            case "$what" in
                pairwise|contrastive|triplet) ;;
                *) { [ "$n" -gt 16384 ] || [ "$d" != 128 ]; } && continue ;;
            esac
            [ -x "$BIN/margin" ] || continue
            bench_row "bench-$what-$n-$d" cuda "$what" "$n" "$d"
        done
    done
done
# The batch-all quadruplet's chunked path (taken past the stream budget: its last pass in place in
# chunks of rows, one more triplet pass), forced at N = 16384 by a 64 MiB budget, to set beside
# its one-pass row above.
[ -x "$BIN/margin" ] \
    && bench_row bench-quadruplet-chunked-16384-128 cuda quadruplet 16384 128 --stream-budget-mib 64
# The WGSL backend on the same GPU (Vulkan), where an adapter exists: the three headline kernels
# at N <= 16384, D = 128, after the CUDA rows so that a slow or missing adapter costs them nothing,
# and contrastive at N = 65536, whose 16 GiB matrix runs in slabs of rows beyond one binding.
if [ -x "$BIN/margin" ] && "$BIN/margin" devices 2>/dev/null | grep -Eq '^wgpu +available .*\(Vulkan, (DiscreteGpu|IntegratedGpu|VirtualGpu|Other)'; then
    for n in 4096 16384; do
        for what in pairwise contrastive triplet; do
            bench_row "bench-wgpu-$what-$n-128" wgpu "$what" "$n" 128
        done
    done
    bench_row bench-wgpu-contrastive-65536-128 wgpu contrastive 65536 128
else
    note bench-wgpu SKIP "no hardware Vulkan adapter listed by margin devices"
fi
run_capped torch-cdist 90 "$PY" - >"$OUT/torch-cdist.jsonl" 2>"$OUT/torch-cdist.err" <<'PYEOF'
import json, time
import torch
dev = torch.device("cuda")
for n in (4096, 16384, 65536):
    for d in (128, 512):
        try:
            x = torch.randn(n, d, device=dev)
            times = []
            for rep in range(4):
                torch.cuda.synchronize(); t = time.perf_counter()
                out = torch.cdist(x, x)
                torch.cuda.synchronize(); times.append((time.perf_counter() - t) * 1e3)
                del out
            times = sorted(times[1:])
            print(json.dumps({"what": "torch.cdist", "n": n, "d": d, "median_ms": times[len(times) // 2]}), flush=True)
        except Exception as e:  # OOM and friends: report and go on
            print(json.dumps({"what": "torch.cdist", "n": n, "d": d, "error": str(e)[:80]}), flush=True)
        torch.cuda.empty_cache()
PYEOF
if grep -q median_ms "$OUT/torch-cdist.jsonl" 2>/dev/null; then
    note torch-cdist PASS "timed (see table)"
else
    note torch-cdist FAIL "no timings: $(tail -n 1 "$OUT/torch-cdist.err" 2>/dev/null)"
fi

# 3b. pytorch-metric-learning on the same GPU, forward plus backward, where it fits: from the
# machine's Python, else from the wheels build-gpu-bin.sh carries (PML and tqdm, --no-deps).
PML_PATH=""
if ! "$PY" -c 'import pytorch_metric_learning' >/dev/null 2>&1 && ls "$BIN"/wheels/*.whl >/dev/null 2>&1; then
    PML_PATH=$(mktemp -d)
    "$PY" -m pip install -q --no-deps --no-index --target "$PML_PATH" "$BIN"/wheels/*.whl \
        >"$OUT/pml-install.log" 2>&1 || PML_PATH=""
fi
PYTHONPATH="$PML_PATH${PYTHONPATH:+:$PYTHONPATH}" run_capped pml-cuda 120 "$PY" - \
    >"$OUT/pml-cuda.jsonl" 2>"$OUT/pml-cuda.err" <<'PYEOF'
import json, time
import torch
import pytorch_metric_learning
import pytorch_metric_learning.losses as L
dev = torch.device("cuda")
# margin's loss name -> PML's class (PML defaults are margin's defaults; PML has no quadruplet
# loss and no triplet-center loss).
LOSSES = [("contrastive", "ContrastiveLoss"), ("triplet", "TripletMarginLoss"),
          ("n-pair", "NPairsLoss"), ("lifted-structure", "LiftedStructureLoss"),
          ("multi-similarity", "MultiSimilarityLoss"), ("circle", "CircleLoss"),
          ("nt-xent", "NTXentLoss"), ("supcon", "SupConLoss"),
          ("generalized-lifted-structure", "GeneralizedLiftedStructureLoss"),
          ("proxy-anchor", "ProxyAnchorLoss"), ("proxy-nca", "ProxyNCALoss"),
          ("normalized-softmax", "NormalizedSoftmaxLoss"), ("cosface", "CosFaceLoss")]
# The losses that own their proxies / class weights: 256 of width 128, as margin bench's centers.
OWN_WEIGHTS = {"proxy-anchor", "proxy-nca", "normalized-softmax", "cosface"}
for n in (4096, 16384):
    for name, cls in LOSSES:
        row = {"what": name, "n": n, "d": 128, "anchor": "PML " + pytorch_metric_learning.__version__}
        try:
            torch.manual_seed(0)
            x0 = torch.randn(n, 128, device=dev)
            y = torch.arange(n, device=dev) % 256
            fn = getattr(L, cls)(256, 128).to(dev) if name in OWN_WEIGHTS else getattr(L, cls)()
            times = []
            for rep in range(4):
                x = x0.detach().requires_grad_(True)
                torch.cuda.synchronize(); t = time.perf_counter()
                fn(x, y).backward()
                torch.cuda.synchronize(); times.append((time.perf_counter() - t) * 1e3)
                if times[0] > 20000:
                    break  # one slow run is enough to report
            times = sorted(times[1:] or times)
            row["median_ms"] = times[len(times) // 2]
        except torch.cuda.OutOfMemoryError:
            row["error"] = "OOM"
        except Exception as e:  # report and go on
            row["error"] = str(e).splitlines()[0][:80]
        print(json.dumps(row), flush=True)
        torch.cuda.empty_cache()
PYEOF
if grep -q median_ms "$OUT/pml-cuda.jsonl" 2>/dev/null; then
    note pml-cuda PASS "timed (see table)"
else
    note pml-cuda SKIP "no timings: $(tail -n 1 "$OUT/pml-cuda.err" 2>/dev/null)"
fi
fi  # bench

# Summary table, last: each margin figure beside its anchor (torch.cdist for pairwise, PML for
# the losses it has), same GPU, same N and D, both timed on the device.
"$PY" - "$SUMMARY" "$BENCH" "$OUT/torch-cdist.jsonl" "$OUT/pml-cuda.jsonl" <<'PYEOF'
import json, sys
summary, bench, cdist, pml = sys.argv[1:5]
print("\n==== margin GPU check ====")
for line in open(summary):
    step, status, detail = (line.rstrip("\n").split("\t") + ["", ""])[:3]
    print(f"{step:<28} {status:<6} {detail}")
def rows(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    except OSError:
        return []
anchors = {}
for r in rows(cdist):
    anchors[("pairwise", r.get("n"), r.get("d"))] = r
for r in rows(pml):
    anchors[(r.get("what"), r.get("n"), r.get("d"))] = r
def ms(r):
    v = r.get("median_ms") if r else None
    return v if isinstance(v, (int, float)) else None
print(f"\n{'what':<29} {'N':>6} {'D':>4} {'margin ms':>10} {'anchor':<12} {'anchor ms':>10} {'anchor/margin':>13}")
for r in rows(bench):
    key = (r.get("what"), r.get("n"), r.get("d"))
    a = anchors.get(key)
    m, am = ms(r), ms(a)
    name = (a or {}).get("anchor", "torch.cdist" if key[0] == "pairwise" else "-")
    ratio = f"{am / m:.1f}x" if m and am else (a or {}).get("error", "-")[:24]
    # Rows of another backend than CUDA (the WGSL rows) carry its name.
    label = f"{key[0]} [wgpu]" if str(r.get("backend", "")).startswith("wgpu") else key[0]
    if r.get("stream_budget_mib") or r.get("flags"):
        label += f" [{r['stream_budget_mib']} MiB]" if r.get("stream_budget_mib") else f" [{r['flags']}]"
        a, am, name, ratio = None, None, "-", "-"
    print(f"{label:<29} {key[1]:>6} {key[2]:>4} "
          f"{(f'{m:.2f}' if m is not None else r.get('error', '-')):>10} {name[:12]:<12} "
          f"{(f'{am:.2f}' if am is not None else '-'):>10} {ratio:>13}")
PYEOF
echo "logs: $OUT (total $(( $(date +%s) - START )) s)"
