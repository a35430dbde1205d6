#!/usr/bin/env python3
"""Times PyTorch / pytorch-metric-learning (PML) beside `margin bench` on the issue's target cases.

Each PML/torch measurement runs in its own subprocess with a wall-clock cap (--time-cap) and an
address-space cap (--mem-cap-gb), so a case that PML cannot fit (all-triplet mining builds an
N x N x N mask) is reported as "OOM" or "timeout" instead of taking the machine down. PML is timed
forward plus backward on float32 random normal inputs with labels `i % classes`, the inputs
`margin bench` draws; margin prints its own JSON (median_ms, min_ms, max_ms, backend,
peak_rss_mb), which is read from the last JSON line of its stdout.

Examples:
  python scripts/compare.py --margin target/release/margin --json results.json
  python scripts/compare.py --skip-margin --scale 0.125 --cases triplet-2048,lifted-512
Needs torch 2.x and pytorch-metric-learning 2.x (scripts/requirements-compare.txt).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

# name, margin loss (or "pairwise"), N, D, classes (None: margin's default min(N, 256)), PML side
CASES = [
    ("triplet-2048", "triplet", 2048, 128, 256, "TripletMarginLoss"),
    ("lifted-512", "lifted-structure", 512, 128, None, "LiftedStructureLoss"),
    ("contrastive-2048", "contrastive", 2048, 128, 256, "ContrastiveLoss"),
    ("n-pair-2048", "n-pair", 2048, 128, 256, "NPairsLoss"),
    ("pairwise-4096x512", "pairwise", 4096, 512, None, "cdist"),
    ("multi-similarity-2048", "multi-similarity", 2048, 128, 256, "MultiSimilarityLoss"),
    ("circle-2048", "circle", 2048, 128, 256, "CircleLoss"),
    ("nt-xent-2048", "nt-xent", 2048, 128, 256, "NTXentLoss"),
    ("supcon-2048", "supcon", 2048, 128, 256, "SupConLoss"),
    ("generalized-lifted-2048", "generalized-lifted-structure", 2048, 128, 256,
     "GeneralizedLiftedStructureLoss"),
    ("triplet-16384", "triplet", 16384, 128, 256, "TripletMarginLoss"),
    ("quadruplet-16384", "quadruplet", 16384, 128, 256, None),
    # Against learned proxies / class weights (K = classes, owned by PML's loss object, given to
    # margin as centers): O(N K), so both sides are cheap; margin's figure includes both gradients.
    ("proxy-anchor-16384", "proxy-anchor", 16384, 128, 256, "ProxyAnchorLoss"),
    ("proxy-nca-16384", "proxy-nca", 16384, 128, 256, "ProxyNCALoss"),
    ("normalized-softmax-16384", "normalized-softmax", 16384, 128, 256, "NormalizedSoftmaxLoss"),
    ("cosface-16384", "cosface", 16384, 128, 256, "CosFaceLoss"),
    # Reference sets (PML's ref_emb / ref_labels, what CrossBatchMemory passes): N x M.
    ("triplet-ref-256x2048", "triplet", 256, 128, 64, "TripletMarginLoss"),
    ("triplet-ref-512x8192", "triplet", 512, 128, 256, "TripletMarginLoss"),
    ("contrastive-ref-1024x8192", "contrastive", 1024, 128, 256, "ContrastiveLoss"),
    ("multi-similarity-ref-1024x8192", "multi-similarity", 1024, 128, 256, "MultiSimilarityLoss"),
    # k nearest neighbours of every row among the others (eval --k): blocked cdist + topk.
    ("knn-20000-k10", "knn", 20000, 128, None, "knn"),
]

# Extra parameters per case: the reference-set size M, or k.
EXTRA = {
    "triplet-ref-256x2048": {"m": 2048},
    "triplet-ref-512x8192": {"m": 8192},
    "contrastive-ref-1024x8192": {"m": 8192},
    "multi-similarity-ref-1024x8192": {"m": 8192},
    "knn-20000-k10": {"k": 10},
}


# ---------------------------------------------------------------------------------------------
# Worker: one PML / torch measurement, run in a subprocess.
# ---------------------------------------------------------------------------------------------


def worker(spec):
    """Runs in the child. Prints one JSON line with the timings or the failure."""
    if spec["mem_cap_gb"] > 0:
        cap = int(spec["mem_cap_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out = {"status": "ok"}
    try:
        import torch
        import pytorch_metric_learning.losses as L

        torch.set_num_threads(spec["threads"])
        torch.manual_seed(spec["seed"])
        n, d, classes = spec["n"], spec["d"], spec["classes"]
        x0 = torch.randn(n, d, dtype=torch.float32)
        y = torch.arange(n) % classes
        kind = spec["pml"]
        m, k = spec.get("m"), spec.get("k")
        r0 = torch.randn(m, d, dtype=torch.float32) if m else None
        rl = torch.arange(m) % classes if m else None
        if kind == "cdist":

            def step():
                return torch.cdist(x0, x0)

        elif kind == "knn":

            def step():
                out = []
                for s in range(0, n, 4096):
                    dist = torch.cdist(x0[s:s + 4096], x0)
                    rows = torch.arange(dist.shape[0])
                    dist[rows, rows + s] = float("inf")
                    out.append(torch.topk(dist, k, largest=False).indices)
                return out

        elif m:
            fn = getattr(L, kind)()

            def step():
                x = x0.detach().requires_grad_(True)
                loss = fn(x, y, ref_emb=r0, ref_labels=rl)
                loss.backward()
                return x.grad

        else:
            # The proxy losses own their K x D proxies (or D x K weights): K = classes.
            owns = kind in ("ProxyAnchorLoss", "ProxyNCALoss", "NormalizedSoftmaxLoss", "CosFaceLoss")
            fn = getattr(L, kind)(classes, d) if owns else getattr(L, kind)()

            def step():
                x = x0.detach().requires_grad_(True)
                loss = fn(x, y)
                loss.backward()
                return x.grad

        deadline = time.perf_counter() + spec["budget_s"]
        times = []
        for i in range(spec["warmup"] + spec["reps"]):
            t0 = time.perf_counter()
            r = step()
            del r
            ms = (time.perf_counter() - t0) * 1e3
            if i >= spec["warmup"]:
                times.append(ms)
            # Keep inside the cap: stop once another run would not fit.
            left = deadline - time.perf_counter()
            if left < ms / 1e3 and times:
                out["truncated"] = True
                break
            if left < ms / 1e3 and not times:
                # The warmup alone used the budget: time that run rather than nothing.
                times.append(ms)
                out["warmup_timed"] = True
                break
        times.sort()
        k = len(times)
        med = times[k // 2] if k % 2 else (times[k // 2 - 1] + times[k // 2]) / 2
        out.update(median_ms=med, min_ms=times[0], max_ms=times[-1], reps=k)
    except (RuntimeError, MemoryError) as e:
        msg = str(e)
        oom = isinstance(e, MemoryError) or "alloc" in msg.lower() or "memory" in msg.lower()
        out = {"status": "OOM" if oom else "error", "error": msg.splitlines()[0][:300]}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out), flush=True)


def run_pml(args, name, n, d, classes, pml):
    spec = dict(
        **EXTRA.get(name, {}),
        n=n, d=d, classes=classes, pml=pml, threads=args.threads, seed=0,
        warmup=args.warmup, reps=args.reps, mem_cap_gb=args.mem_cap_gb,
        budget_s=max(args.time_cap - 15, args.time_cap * 0.75),  # leave time for torch import
    )
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.time_cap)
    except subprocess.TimeoutExpired:
        return {"status": "timeout"}
    return parse_last_json(p, "pml")


def parse_last_json(p, who):
    for line in reversed(p.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    # Killed by the kernel OOM killer (SIGKILL) or a crash: no JSON line.
    status = "OOM" if p.returncode in (-9, 137) else "error"
    tail = (p.stderr or "").strip().splitlines()[-1:] or [""]
    return {"status": status, "returncode": p.returncode, "error": tail[0][:300], "who": who}


def run_margin(args, name, loss, n, d, classes):
    cmd = [args.margin, "bench", loss, "--n", str(n), "--d", str(d), "--backend", args.backend,
           "--warmup", str(args.warmup), "--reps", str(args.reps)]
    extra = EXTRA.get(name, {})
    if "m" in extra:
        cmd += ["--ref-m", str(extra["m"])]
    if "k" in extra:
        cmd += ["--k", str(extra["k"])]
    if classes is not None:
        cmd += ["--classes", str(classes)]
    if loss in ("pairwise", "knn"):
        cmd += ["--distance", "euclidean"]
    env = dict(os.environ)
    if args.margin_threads:
        env["RAYON_NUM_THREADS"] = str(args.margin_threads)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.time_cap, env=env)
    except FileNotFoundError:
        return {"status": "error", "error": f"no margin binary at {args.margin}"}
    except subprocess.TimeoutExpired:
        return {"status": "timeout"}
    r = parse_last_json(p, "margin")
    if p.returncode == 0 and "median_ms" in r:
        r.setdefault("status", "ok")
    elif r.get("status") in (None, "ok"):
        r = {"status": "error", "returncode": p.returncode, "error": (p.stderr or "").strip()[:300]}
    return r


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def machine_info():
    info = {"python": platform.python_version(), "cores": os.cpu_count(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["mem_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import torch
        import pytorch_metric_learning

        info["torch"] = torch.__version__
        info["pytorch_metric_learning"] = pytorch_metric_learning.__version__
    except ImportError as e:
        info["torch"] = f"unavailable ({e})"
    return info


def cell(r, key="median_ms", fmt="{:.1f}"):
    if r is None:
        return "—"
    if r.get("status", "ok") != "ok" and (key == "median_ms" or r.get(key) is None):
        return r["status"]
    v = r.get(key)
    if v is None:
        return "—"
    s = fmt.format(v)
    if key == "median_ms" and (r.get("truncated") or r.get("warmup_timed")):
        reps = r.get("reps", 1)
        s += f" ({reps} rep{'s' if reps != 1 else ''})"
    return s


def table(results):
    rows = [
        "| case | N (x M) | D | classes | torch/PML median ms | margin median ms | ratio (PML / margin) "
        "| margin backend | margin peak RSS MB | PML peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        p, m = r.get("pml"), r.get("margin")
        ratio = "—"
        if p and m and p.get("status") == "ok" and m.get("status") == "ok" and m.get("median_ms"):
            ratio = f"{p['median_ms'] / m['median_ms']:.1f}x"
        backend = m.get("backend", "—") if m and m.get("status") == "ok" else "—"
        pml_cell = "n/a (not in PML)" if r["pml_kind"] is None else cell(p)
        rows.append(
            f"| {r['case']} | {r['n']}{' x ' + str(EXTRA[r['case']]['m']) if 'm' in EXTRA.get(r['case'], {}) else ''} | {r['d']} | {'—' if r['loss'] in ('pairwise', 'knn') else r['classes']} | {pml_cell} | {cell(m)} | {ratio} "
            f"| {backend} | {cell(m, 'peak_rss_mb', '{:.0f}')} | {cell(p, 'peak_rss_mb', '{:.0f}')} |"
        )
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description="PyTorch / PML vs margin timings.")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--margin", default="target/release/margin", help="path of the margin binary")
    ap.add_argument("--skip-margin", action="store_true", help="time only the PML/torch side")
    ap.add_argument("--skip-pml", action="store_true", help="time only the margin side")
    ap.add_argument("--backend", default="cpu", help="margin --backend (default cpu)")
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every N by this (quick runs)")
    ap.add_argument("--time-cap", type=float, default=120.0, help="seconds per measurement")
    ap.add_argument("--mem-cap-gb", type=float, default=12.0, help="address-space cap of a PML run (0: none)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--margin-threads", type=int, default=0, help="RAYON_NUM_THREADS for margin (0: its default)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    wanted = set(args.cases.split(",")) if args.cases else None
    unknown = (wanted or set()) - {c[0] for c in CASES}
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    info = machine_info()
    results = []
    for name, loss, n, d, classes, pml in CASES:
        if wanted and name not in wanted:
            continue
        classes_full = classes if classes is not None else min(n, 256)
        n = max(16, int(round(n * args.scale)))
        # --scale keeps the samples per class, so a scaled run still has positives.
        classes_eff = max(2, min(n, int(round(classes_full * args.scale))))
        r = {"case": name, "loss": loss, "n": n, "d": d, "classes": classes_eff, "pml_kind": pml}
        if pml is not None and not args.skip_pml:
            print(f"[{name}] PML/torch {pml} N={n} D={d} ...", file=sys.stderr, flush=True)
            r["pml"] = run_pml(args, name, n, d, classes_eff, pml)
            print(f"    {r['pml']}", file=sys.stderr, flush=True)
        if not args.skip_margin:
            print(f"[{name}] margin {loss} N={n} D={d} ...", file=sys.stderr, flush=True)
            r["margin"] = run_margin(args, name, loss, n, d, classes_eff)
            print(f"    {r['margin']}", file=sys.stderr, flush=True)
        results.append(r)

    print(f"Machine: {info.get('cpu', '?')}, {info.get('cores')} cores, {info.get('mem_gib', '?')} GiB; "
          f"torch {info.get('torch')} ({args.threads} threads), PML {info.get('pytorch_metric_learning', '?')}; "
          f"margin backend {args.backend}; cap {args.time_cap:.0f} s / {args.mem_cap_gb:g} GiB per PML run.\n")
    print(table(results))
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "worker"}
        with open(args.json, "w") as f:
            json.dump({"machine": info, "config": config, "results": results}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
