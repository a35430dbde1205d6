#!/usr/bin/env python3
"""Golden parity fixtures for margin's CPU reference.

Writes one JSON file per loss under tests/fixtures/pml/. Every case holds f32-representable
embeddings, labels, the loss parameters in margin's spelling, and the expected loss value and
gradient computed in float64 by torch autograd, either through pytorch-metric-learning
(source "pml") or through a direct torch transcription of SPEC.md (source "torch-f64-spec").
The five later losses (multi-similarity, circle, nt-xent, supcon, generalized-lifted-structure)
are transcribed from their definitions (PML 2.9 semantics), and quadruplet with mining "hard" from
margin's own batch-hard definition (PML has no quadruplet loss; its cases are named hard_*).
Active counts follow the LossStats doc in crates/margin-core/src/output.rs.

Every PML case is also recomputed with the SPEC transcription; a case where the two disagree is
reported and dropped, so the fixtures only hold cases where PML and the SPEC agree. Cases whose
hinges sit within KINK_TOL of a kink (or whose miners face a near-tie) are re-drawn with the next
seed, so that a correct implementation cannot land on the other side of a kink by rounding.

Run:  /opt/pyenv-pml/bin/python scripts/pml_golden.py [--out tests/fixtures/pml]
Needs torch 2.x and pytorch-metric-learning 2.x (CPU is enough). Deterministic.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

import pytorch_metric_learning
from pytorch_metric_learning import distances as pml_d
from pytorch_metric_learning import losses as pml_l
from pytorch_metric_learning import miners as pml_m

from pml_cases import build_specs
from pml_spec import DEFAULTS, KINK_TOL, XCHECK_GRAD, XCHECK_VALUE, Guard, spec_loss

torch.set_default_dtype(torch.float64)
DT = torch.float64

# ----------------------------------------------------------------------------------------------
# PML
# ----------------------------------------------------------------------------------------------


def pml_distance(p):
    d, nz = p["distance"], p["normalize"]
    if d == "euclidean":
        return pml_d.LpDistance(normalize_embeddings=nz, p=2, power=1)
    if d == "squared-euclidean":
        return pml_d.LpDistance(normalize_embeddings=nz, p=2, power=2)
    if d == "cosine":
        return pml_d.CosineSimilarity()
    if d == "dot":
        return pml_d.DotProductSimilarity(normalize_embeddings=nz)
    raise ValueError(d)


def pml_loss(case, x, c=None):
    """PML's loss at x; for proxy-anchor, with its proxies set to c (their gradient lands in
    c.grad through the parameter's)."""
    y = torch.tensor(case["labels"], dtype=torch.int64)
    p, loss = case["full_params"], case["loss"]
    dist = pml_distance(p)
    if loss == "contrastive":
        fn = pml_l.ContrastiveLoss(pos_margin=p["pos_margin"], neg_margin=p["neg_margin"], distance=dist)
        return fn(x, y)
    if loss == "triplet":
        fn = pml_l.TripletMarginLoss(margin=p["margin"], smooth_loss=p["smooth"], distance=dist)
        if p["mining"] == "all":
            return fn(x, y)
        if p["mining"] == "hard":
            miner = pml_m.BatchHardMiner(distance=pml_distance(p))
        else:
            miner = pml_m.TripletMarginMiner(
                margin=p["margin"], type_of_triplets="semihard", distance=pml_distance(p)
            )
        return fn(x, y, miner(x, y))
    if loss == "n-pair":
        return pml_l.NPairsLoss(distance=dist)(x, y)
    if loss == "proxy-anchor":
        k, d = c.shape
        fn = pml_l.ProxyAnchorLoss(k, d, margin=p["margin"], alpha=p["alpha"], distance=dist)
        fn.proxies = c
        return fn(x, y)
    if loss == "proxy-nca":
        k, d = c.shape
        fn = pml_l.ProxyNCALoss(k, d, softmax_scale=p["scale"], distance=dist)
        fn.proxies = c
        return fn(x, y)
    if loss in ("normalized-softmax", "cosface"):
        k, d = c.shape
        if loss == "cosface":
            fn = pml_l.CosFaceLoss(k, d, margin=p["margin"], scale=p["scale"], distance=dist)
        else:
            fn = pml_l.NormalizedSoftmaxLoss(k, d, temperature=p["temperature"], distance=dist)
        # PML's W is D x K: margin's centers transposed. A plain attribute (not a parameter), so
        # that the gradient flows back to c.
        del fn._parameters["W"]
        fn.W = c.t()
        return fn(x, y)
    if loss == "lifted-structure":
        fn = pml_l.LiftedStructureLoss(neg_margin=p["neg_margin"], pos_margin=p["pos_margin"], distance=dist)
        return fn(x, y)
    if loss == "multi-similarity":
        fn = pml_l.MultiSimilarityLoss(alpha=p["alpha"], beta=p["beta"], base=p["base"], distance=dist)
        return fn(x, y)
    if loss == "circle":
        return pml_l.CircleLoss(m=p["margin"], gamma=p["gamma"], distance=dist)(x, y)
    if loss == "nt-xent":
        return pml_l.NTXentLoss(temperature=p["temperature"], distance=dist)(x, y)
    if loss == "supcon":
        return pml_l.SupConLoss(temperature=p["temperature"], distance=dist)(x, y)
    if loss == "generalized-lifted-structure":
        fn = pml_l.GeneralizedLiftedStructureLoss(
            neg_margin=p["neg_margin"], pos_margin=p["pos_margin"], distance=dist
        )
        return fn(x, y)
    raise ValueError(loss)


# ----------------------------------------------------------------------------------------------
# Case building
# ----------------------------------------------------------------------------------------------


def f32_list(a):
    # The exact f64 value of each f32 (so the JSON numbers are f32-representable as written).
    return [float(v) for v in a.reshape(-1).astype(np.float64)]


def g_list(t):
    return [float("%.12g" % v) for v in t.detach().reshape(-1).tolist()]


def rel_norm(a, b):
    den = max(b.norm().item(), 1e-300)
    return (a - b).norm().item() / den


def draw(spec, seed):
    rng = np.random.default_rng(seed)
    n, d = spec["n"], spec["d"]
    x = (rng.standard_normal((n, d)) * spec.get("scale", 1.0)).astype(np.float32)
    for dst, src in spec.get("dup", []):
        x[dst] = x[src]
    c = None
    if spec["loss"] in ("triplet-center", "proxy-anchor", "proxy-nca", "normalized-softmax", "cosface"):
        c = (rng.standard_normal((spec["k"], d)) * spec.get("cscale", 1.0)).astype(np.float32)
    return x, c


def compute(spec, seed, discrepancies):
    case = dict(spec)
    case["full_params"] = {**DEFAULTS[spec["loss"]], **spec.get("params", {})}
    x32, c32 = draw(spec, seed)
    g = Guard()
    xs = torch.tensor(x32, dtype=DT, requires_grad=True)
    cs = torch.tensor(c32, dtype=DT, requires_grad=True) if c32 is not None else None
    sv, active = spec_loss(case, xs, cs, g)
    sv.backward()
    sgrad = xs.grad.clone() if xs.grad is not None else torch.zeros_like(xs)
    scgrad = None
    if cs is not None:
        scgrad = cs.grad.clone() if cs.grad is not None else torch.zeros_like(cs)
    if g.closest < KINK_TOL:
        return None
    value, grad = sv.item(), sgrad
    if spec["source"] == "pml":
        xp = torch.tensor(x32, dtype=DT, requires_grad=True)
        cp = torch.nn.Parameter(torch.tensor(c32, dtype=DT)) if c32 is not None else None
        pv = pml_loss(case, xp, cp)
        pv.backward()
        pgrad = xp.grad if xp.grad is not None else torch.zeros_like(xp)
        dv = abs(pv.item() - sv.item())
        dg = (pgrad - sgrad).norm().item()
        if cp is not None:
            pcgrad = cp.grad if cp.grad is not None else torch.zeros_like(cp)
            dg = max(dg, (pcgrad - scgrad).norm().item())
            scgrad = pcgrad
        ok_v = dv <= XCHECK_VALUE * max(1.0, abs(sv.item()))
        ok_g = dg <= XCHECK_GRAD * max(sgrad.norm().item(), 1e-6)
        if not (ok_v and ok_g):
            discrepancies.append(
                f"{spec['name']} seed {seed}: pml {pv.item()!r} spec {sv.item()!r} "
                f"|dgrad| {dg:.3e} |grad| {sgrad.norm().item():.3e}"
            )
            return "discrepancy"
        value, grad = pv.item(), pgrad
    out = {
        "name": spec["name"],
        "loss": spec["loss"],
        "source": spec["source"],
        "params": spec.get("params", {}),
        "n": spec["n"],
        "d": spec["d"],
        "seed": seed,
        "labels": [int(v) for v in spec["labels"]],
        "embeddings": f32_list(x32),
    }
    if c32 is not None:
        out["k"] = spec["k"]
        out["centers"] = f32_list(c32)
    out["value"] = value
    out["active"] = active
    out["grad"] = g_list(grad)
    if scgrad is not None:
        out["center_grad"] = g_list(scgrad)
    return out



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "pml"))
    ap.add_argument("--only", help="write only this loss's file (seeds stay those of a full run)")
    args = ap.parse_args()
    torch.manual_seed(0)
    specs = build_specs()
    by_loss, discrepancies, dropped = {}, [], []
    for i, spec in enumerate(specs):
        if args.only and spec["loss"] != args.only:
            continue
        seed = 1000 * i
        got = None
        for attempt in range(40):
            got = compute(spec, seed + attempt, discrepancies)
            if isinstance(got, dict) or got == "discrepancy":
                break
        if not isinstance(got, dict):
            dropped.append(f"{spec['name']} ({got or 'always near a kink'})")
            continue
        by_loss.setdefault(spec["loss"], []).append(got)
    os.makedirs(args.out, exist_ok=True)
    meta = {
        "generator": "scripts/pml_golden.py",
        "torch": torch.__version__,
        "pytorch_metric_learning": pytorch_metric_learning.__version__,
        "numpy": np.__version__,
    }
    for loss, cases in by_loss.items():
        path = os.path.join(args.out, f"{loss}.json")
        with open(path, "w") as f:
            json.dump({**meta, "loss": loss, "cases": cases}, f, separators=(",", ":"))
            f.write("\n")
        srcs = {s: sum(c["source"] == s for c in cases) for s in ("pml", "torch-f64-spec")}
        print(f"{loss:28s} {len(cases):3d} cases  {srcs}  {os.path.getsize(path)} bytes")
    for d in discrepancies:
        print("DISCREPANCY", d, file=sys.stderr)
    for d in dropped:
        print("DROPPED", d, file=sys.stderr)


if __name__ == "__main__":
    main()
