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
import torch.nn.functional as F

import pytorch_metric_learning
from pytorch_metric_learning import distances as pml_d
from pytorch_metric_learning import losses as pml_l
from pytorch_metric_learning import miners as pml_m

torch.set_default_dtype(torch.float64)
DT = torch.float64

# Hinge arguments closer than this to 0 (or mining comparisons closer than this to a tie) re-draw
# the case: f32 vs f64 rounding in an implementation must never decide which side a term is on.
KINK_TOL = 1e-4
# PML vs SPEC transcription must agree this closely, or the case is dropped as a discrepancy.
XCHECK_VALUE = 1e-9
XCHECK_GRAD = 1e-8

DEFAULTS = {
    "contrastive": dict(distance="euclidean", normalize=True, pos_margin=0.0, neg_margin=1.0),
    "triplet": dict(distance="euclidean", normalize=True, margin=0.05, smooth=False, mining="all"),
    "triplet-center": dict(distance="euclidean", normalize=False, margin=1.0),
    "n-pair": dict(distance="dot", normalize=True),
    "quadruplet": dict(distance="squared-euclidean", normalize=True, margin=1.0, margin2=0.5, mining="all"),
    "lifted-structure": dict(distance="euclidean", normalize=True, neg_margin=1.0, pos_margin=0.0),
    "multi-similarity": dict(distance="cosine", normalize=True, alpha=2.0, beta=50.0, base=0.5),
    "circle": dict(distance="cosine", normalize=True, margin=0.4, gamma=80.0),
    "nt-xent": dict(distance="cosine", normalize=True, temperature=0.07),
    "supcon": dict(distance="cosine", normalize=True, temperature=0.1),
    "generalized-lifted-structure": dict(distance="euclidean", normalize=True, neg_margin=1.0, pos_margin=0.0),
}


class Guard:
    """Collects how close a case comes to a kink or a tie."""

    def __init__(self):
        self.closest = float("inf")

    def hinge(self, args):
        """`args`: hinge arguments that enter relu / the AvgNonZero threshold."""
        if args.numel():
            self.closest = min(self.closest, args.detach().abs().min().item())

    def tie(self, values, mask, largest):
        """Per row, the gap between the best and second-best masked value (for argmin/argmax)."""
        v = values.detach().clone()
        fill = -float("inf") if largest else float("inf")
        v[~mask] = fill
        cnt = mask.sum(1)
        rows = cnt >= 2
        if rows.any():
            s = torch.sort(v[rows], dim=1, descending=largest).values
            gap = (s[:, 0] - s[:, 1]).abs().min().item()
            self.closest = min(self.closest, gap)


# ----------------------------------------------------------------------------------------------
# SPEC transcription (torch float64, autograd)
# ----------------------------------------------------------------------------------------------


def is_sim(p):
    return p["distance"] in ("cosine", "dot")


def prep(x, p):
    if p["distance"] == "cosine" or p["normalize"]:
        return F.normalize(x, p=2, dim=1, eps=1e-12)
    return x


def spec_matrix(a, b, p):
    """The SPEC's distance / similarity between rows of a and b (already normalized)."""
    if is_sim(p):
        return a @ b.T
    r = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    if p["distance"] == "squared-euclidean":
        return r
    pos = r > 0
    safe = torch.where(pos, r, torch.ones_like(r))
    return torch.where(pos, torch.sqrt(safe), torch.zeros_like(r))


def avg_nonzero(v):
    pos = v > 0
    if pos.sum() == 0:
        return v.sum() * 0.0, 0
    return v[pos].mean(), int(pos.sum())


def label_masks(y):
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool)
    return same & ~eye, ~same


def spec_contrastive(x, y, p, g):
    xs = prep(x, p)
    m = spec_matrix(xs, xs, p)
    pos, neg = label_masks(y)
    if is_sim(p):
        pa, na = p["pos_margin"] - m[pos], m[neg] - p["neg_margin"]
    else:
        pa, na = m[pos] - p["pos_margin"], p["neg_margin"] - m[neg]
    g.hinge(pa)
    g.hinge(na)
    lp, cp = avg_nonzero(F.relu(pa))
    ln, cn = avg_nonzero(F.relu(na))
    return lp + ln, [cp, cn]


def triplet_args(m, a, pidx, nidx, sim, margin):
    if sim:
        return m[a, nidx] - m[a, pidx] + margin
    return m[a, pidx] - m[a, nidx] + margin


def spec_triplet(x, y, p, g):
    xs = prep(x, p)
    m = spec_matrix(xs, xs, p)
    pos, neg = label_masks(y)
    sim = is_sim(p)
    mining = p["mining"]
    if mining == "hard":
        md = m.detach()
        has = pos.any(1) & neg.any(1)
        a = torch.nonzero(has).flatten()
        g.tie(md, pos, largest=not sim)
        g.tie(md, neg, largest=sim)
        far = md.masked_fill(~pos, float("inf") if sim else -float("inf"))
        near = md.masked_fill(~neg, -float("inf") if sim else float("inf"))
        pi = (far.argmin(1) if sim else far.argmax(1))[a]
        ni = (near.argmax(1) if sim else near.argmin(1))[a]
    else:
        t = pos[:, :, None] & neg[:, None, :]
        a, pi, ni = torch.nonzero(t, as_tuple=True)
        if mining == "semihard":
            md = m.detach()
            gap = (md[a, pi] - md[a, ni]) if sim else (md[a, ni] - md[a, pi])
            g.hinge(gap)
            g.hinge(gap - p["margin"])
            keep = (gap > 0) & (gap <= p["margin"])
            a, pi, ni = a[keep], pi[keep], ni[keep]
    v = triplet_args(m, a, pi, ni, sim, p["margin"])
    if p["smooth"]:
        terms = F.softplus(v)
    else:
        g.hinge(v)
        terms = F.relu(v)
    loss, c = avg_nonzero(terms)
    return loss, [c, 0]


def spec_triplet_center(x, y, c, p, g):
    xs, cs = prep(x, p), prep(c, p)
    m = spec_matrix(xs, cs, p)
    n, k = m.shape
    own = torch.zeros((n, k), dtype=torch.bool)
    own[torch.arange(n), y] = True
    sim = is_sim(p)
    g.tie(m, ~own, largest=sim)
    if sim:
        other = m.masked_fill(own, -float("inf")).max(1).values
        v = other - m[own] + p["margin"]
    else:
        other = m.masked_fill(own, float("inf")).min(1).values
        v = m[own] - other + p["margin"]
    g.hinge(v)
    t = F.relu(v)
    return t.mean(), [int((t > 0).sum()), 0]


def npair_indices(y):
    first, second, order = {}, {}, []
    for i, l in enumerate(y.tolist()):
        if l not in first:
            first[l] = i
            order.append(l)
        elif l not in second:
            second[l] = i
    labs = [l for l in order if l in second]
    return [first[l] for l in labs], [second[l] for l in labs]


def spec_npair(x, y, p, g):
    ai, pi = npair_indices(y)
    k = len(ai)
    if k < 2:
        return x.sum() * 0.0, [0, 0]
    xs = prep(x, p)
    s = spec_matrix(xs[ai], xs[pi], p)
    if not is_sim(p):
        s = -s
    loss = (torch.logsumexp(s, 1) - torch.diagonal(s)).mean()
    return loss, [k, 0]


def spec_quadruplet(x, y, p, g):
    xs = prep(x, p)
    m = spec_matrix(xs, xs, p)
    pos, neg = label_masks(y)
    sim = is_sim(p)
    t = pos[:, :, None] & neg[:, None, :]
    a, pi, ni = torch.nonzero(t, as_tuple=True)
    v1 = triplet_args(m, a, pi, ni, sim, p["margin"])
    g.hinge(v1)
    l1, c1 = avg_nonzero(F.relu(v1))
    # quad[a, p, k, l]: pos(a,p), neg(k,l), y_k != y_a, y_l != y_a
    q = pos[:, :, None, None] & neg[None, None, :, :] & neg[:, None, :, None] & neg[:, None, None, :]
    a, pi, ki, li = torch.nonzero(q, as_tuple=True)
    if sim:
        v2 = m[ki, li] - m[a, pi] + p["margin2"]
    else:
        v2 = m[a, pi] - m[ki, li] + p["margin2"]
    g.hinge(v2)
    l2, c2 = avg_nonzero(F.relu(v2))
    return l1 + l2, [c1, c2]


def spec_lifted(x, y, p, g):
    xs = prep(x, p)
    m = spec_matrix(xs, xs, p)
    pos, neg = label_masks(y)
    if pos.sum() == 0 or neg.sum() == 0:
        return x.sum() * 0.0, [0, 0]
    sim = is_sim(p)
    rem = (m - p["neg_margin"]) if sim else (p["neg_margin"] - m)
    rem = rem.masked_fill(~neg, -float("inf"))
    i, j = torch.nonzero(pos, as_tuple=True)
    both = torch.cat([rem[i], rem[j]], dim=1)
    lse = torch.logsumexp(both, 1)
    jv = lse + ((p["pos_margin"] - m[i, j]) if sim else (m[i, j] - p["pos_margin"]))
    terms = F.relu(jv) ** 2 / 2
    return terms.mean(), [int((jv > 0).sum()), 0]


# ---- the losses of briefs/new_losses.md (PML 2.9 semantics; e = sign * m is "distance-like") ----


def sign_of(p):
    return -1.0 if is_sim(p) else 1.0


def masked_lse(x, mask, add_one=False):
    """PML's `lmu.logsumexp`: LSE over the masked entries per row (plus a 0 entry when
    `add_one`), 0 for a row with no entry. Filled with the most negative finite value, as PML,
    so that empty rows have a zero (not NaN) gradient."""
    x = x.masked_fill(~mask, torch.finfo(x.dtype).min)
    if add_one:
        x = torch.cat([x, torch.zeros((x.shape[0], 1), dtype=x.dtype)], dim=1)
    out = torch.logsumexp(x, dim=1)
    return torch.where(mask.any(1), out, torch.zeros_like(out))


def spec_multi_similarity(x, y, p, g):
    xs = prep(x, p)
    m = spec_matrix(xs, xs, p)
    pos, neg = label_masks(y)
    sg = sign_of(p)
    e, b = sg * m, sg * p["base"]
    lp = masked_lse(p["alpha"] * (e - b), pos, add_one=True) / p["alpha"]
    ln = masked_lse(p["beta"] * (b - e), neg, add_one=True) / p["beta"]
    return (lp + ln).mean(), [int(pos.any(1).sum()), int(neg.any(1).sum())]


def spec_circle(x, y, p, g):
    xs = prep(x, p)
    s = spec_matrix(xs, xs, p)
    pos, neg = label_masks(y)
    mg, gamma = p["margin"], p["gamma"]
    rows = pos.any(1) & neg.any(1)
    if not rows.any():
        return x.sum() * 0.0, [0, 0]
    lp = -gamma * F.relu(1 + mg - s).detach() * (s - (1 - mg))
    ln = gamma * F.relu(s + mg).detach() * (s - mg)
    z = (masked_lse(lp, pos) + masked_lse(ln, neg))[rows]
    terms = torch.logaddexp(z, torch.zeros_like(z))  # softplus, no threshold
    loss, c = avg_nonzero(terms)
    return loss, [c, 0]


def spec_nt_xent(x, y, p, g):
    xs = prep(x, p)
    m = spec_matrix(xs, xs, p)
    pos, neg = label_masks(y)
    if pos.sum() == 0 or neg.sum() == 0:
        return x.sum() * 0.0, [0, 0]
    v = -sign_of(p) * m / p["temperature"]
    a, pi = torch.nonzero(pos, as_tuple=True)
    lse_n = masked_lse(v, neg)
    has_n = neg.any(1)
    vap = v[a, pi]
    l = torch.where(has_n[a], torch.logaddexp(vap, lse_n[a]) - vap, torch.zeros_like(vap))
    return l.mean(), [len(a), 0]


def spec_supcon(x, y, p, g):
    xs = prep(x, p)
    m = spec_matrix(xs, xs, p)
    pos, neg = label_masks(y)
    if pos.sum() == 0 or neg.sum() == 0:
        return x.sum() * 0.0, [0, 0]
    v = -sign_of(p) * m / p["temperature"]
    lse = masked_lse(v, pos | neg)
    cnt = pos.sum(1)
    mean_pos = (v * pos).sum(1) / cnt.clamp(min=1)
    terms = torch.where(cnt > 0, lse - mean_pos, torch.zeros_like(lse))
    loss, c = avg_nonzero(terms)
    return loss, [c, 0]


def spec_generalized_lifted(x, y, p, g):
    xs = prep(x, p)
    m = spec_matrix(xs, xs, p)
    pos, neg = label_masks(y)
    sg = sign_of(p)
    e = sg * m
    arg = masked_lse(e - sg * p["pos_margin"], pos) + masked_lse(sg * p["neg_margin"] - e, neg)
    # Rows with neither set have arg exactly 0: not a kink a rounding could cross.
    g.hinge(arg[pos.any(1) | neg.any(1)])
    return F.relu(arg).mean(), [int((arg > 0).sum()), 0]


def spec_quadruplet_hard(x, y, p, g):
    """new_losses.md section 6 (margin's own definition; PML has no quadruplet loss)."""
    xs = prep(x, p)
    m = spec_matrix(xs, xs, p)
    pos, neg = label_masks(y)
    e = sign_of(p) * m
    ed = e.detach()
    n = len(y)
    t1s, t2s = [], []
    for a in range(n):
        if not (pos[a].any() and neg[a].any()):
            continue
        g.tie(ed[a : a + 1], pos[a : a + 1], largest=True)
        g.tie(ed[a : a + 1], neg[a : a + 1], largest=False)
        pa = [j for j in range(n) if pos[a, j]]
        na = [j for j in range(n) if neg[a, j]]
        ps = max(pa, key=lambda j: (ed[a, j].item(), -j))
        ns = min(na, key=lambda j: (ed[a, j].item(), j))
        t1s.append(e[a, ps] - e[a, ns] + p["margin"])
        other = (y != y[a])
        qmask = neg & other[:, None] & other[None, :]
        if not qmask.any():
            continue
        # Ties between (k, l) and (l, k) are harmless (same value, and e is symmetric);
        # guard only distinct unordered pairs.
        upper = qmask & torch.triu(torch.ones((n, n), dtype=torch.bool), diagonal=1)
        vals = torch.sort(ed[upper]).values
        if len(vals) >= 2:
            g.closest = min(g.closest, (vals[1] - vals[0]).abs().item())
        pairs = [(k, l) for k in range(n) for l in range(n) if qmask[k, l]]
        k, l = min(pairs, key=lambda kl: (ed[kl].item(), kl[0], kl[1]))
        t2s.append(e[a, ps] - e[k, l] + p["margin2"])
    zero = x.sum() * 0.0
    v1 = torch.stack(t1s) if t1s else zero.reshape(1) * 0 - 1.0
    v2 = torch.stack(t2s) if t2s else zero.reshape(1) * 0 - 1.0
    if t1s:
        g.hinge(v1)
    if t2s:
        g.hinge(v2)
    l1, c1 = avg_nonzero(F.relu(v1))
    l2, c2 = avg_nonzero(F.relu(v2))
    return l1 + l2, [c1, c2]


def spec_loss(case, x, c, g):
    y = torch.tensor(case["labels"], dtype=torch.int64)
    p, loss = case["full_params"], case["loss"]
    if loss == "contrastive":
        return spec_contrastive(x, y, p, g)
    if loss == "triplet":
        return spec_triplet(x, y, p, g)
    if loss == "triplet-center":
        return spec_triplet_center(x, y, c, p, g)
    if loss == "n-pair":
        return spec_npair(x, y, p, g)
    if loss == "quadruplet":
        if p["mining"] == "hard":
            return spec_quadruplet_hard(x, y, p, g)
        return spec_quadruplet(x, y, p, g)
    if loss == "lifted-structure":
        return spec_lifted(x, y, p, g)
    if loss == "multi-similarity":
        return spec_multi_similarity(x, y, p, g)
    if loss == "circle":
        return spec_circle(x, y, p, g)
    if loss == "nt-xent":
        return spec_nt_xent(x, y, p, g)
    if loss == "supcon":
        return spec_supcon(x, y, p, g)
    if loss == "generalized-lifted-structure":
        return spec_generalized_lifted(x, y, p, g)
    raise ValueError(loss)


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


def pml_loss(case, x):
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

PML_LOSSES = {
    "contrastive",
    "triplet",
    "n-pair",
    "lifted-structure",
    "multi-similarity",
    "circle",
    "nt-xent",
    "supcon",
    "generalized-lifted-structure",
}


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
    if spec["loss"] == "triplet-center":
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
        pv = pml_loss(case, xp)
        pv.backward()
        pgrad = xp.grad if xp.grad is not None else torch.zeros_like(xp)
        dv = abs(pv.item() - sv.item())
        dg = (pgrad - sgrad).norm().item()
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


def labels_cycle(n, classes, offset=0):
    return [offset + (i % classes) for i in range(n)]


def labels_random(rng, n, classes, values=None):
    lab = rng.integers(0, classes, size=n)
    if values is not None:
        lab = np.array([values[v] for v in lab])
    return [int(v) for v in lab]


ODD_LABELS = [-7, 2**40, -(2**62), 0, 9_000_000_000_000_000_000 // 1000, -1]
DIST_NORM = [
    ("euclidean", True),
    ("euclidean", False),
    ("squared-euclidean", True),
    ("squared-euclidean", False),
    ("cosine", True),
    ("dot", True),
    ("dot", False),
]


def sim_margins(loss, dist, norm):
    """Margins that leave a mix of active and inactive terms for each distance."""
    if loss in ("contrastive", "lifted-structure"):
        if dist in ("cosine", "dot") and (norm or dist == "cosine"):
            return {"pos_margin": 0.7, "neg_margin": 0.1}
        if dist == "dot":
            return {"pos_margin": 1.0, "neg_margin": -0.5}
        if dist == "squared-euclidean":
            return {"pos_margin": 0.4, "neg_margin": 2.2} if norm else {"pos_margin": 0.3, "neg_margin": 1.5}
        return {"pos_margin": 0.3, "neg_margin": 1.4} if norm else {"pos_margin": 0.2, "neg_margin": 1.2}
    return {}


def scale_for(dist, norm):
    return 1.0 if norm or dist == "cosine" else 0.35


def build_specs():
    rng = np.random.default_rng(20261129)
    specs = []

    def add(name, loss, n, d, labels, params=None, source=None, **kw):
        src = source or ("pml" if loss in PML_LOSSES else "torch-f64-spec")
        specs.append(dict(name=f"{loss}/{name}", loss=loss, n=n, d=d, labels=labels,
                          params=params or {}, source=src, **kw))

    # ---- contrastive ----
    L = "contrastive"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n2_d1_neg", L, 2, 1, [0, 1])
    add("default_n2_d3_pos", L, 2, 3, [5, 5], params={"pos_margin": 0.1})
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **sim_margins(L, dist, norm)}
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 5, labels_random(rng, 10, 3), prm,
            scale=scale_for(dist, norm))
    add("margins_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"pos_margin": 0.5, "neg_margin": 1.3})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 5, ODD_LABELS), {"neg_margin": 1.2})
    add("one_class", L, 6, 3, [3] * 6, {"pos_margin": 0.2})
    add("all_distinct", L, 7, 3, list(range(7)), {"neg_margin": 1.5})
    add("dup_rows_dot", L, 9, 4, labels_cycle(9, 3), {"distance": "dot", "pos_margin": 0.7, "neg_margin": 0.1},
        dup=[(3, 0), (7, 2)])
    add("dup_rows_sqeuclid_neg", L, 8, 3, [0, 1, 0, 1, 2, 2, 0, 1],
        {"distance": "squared-euclidean", "pos_margin": 0.3, "neg_margin": 2.0}, dup=[(1, 0)])
    add("spec_check_default", L, 11, 5, labels_random(rng, 11, 3), source="torch-f64-spec")
    add("spec_check_cosine", L, 9, 4, labels_random(rng, 9, 3),
        {"distance": "cosine", "pos_margin": 0.8, "neg_margin": 0.2}, source="torch-f64-spec")

    # ---- triplet ----
    L = "triplet"
    add("default", L, 12, 8, labels_cycle(12, 3))
    add("default_n3_d1", L, 3, 1, [1, 1, 2], params={"margin": 0.3})
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, "margin": 0.2}
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 5, labels_random(rng, 10, 3), prm,
            scale=scale_for(dist, norm))
    for dist, norm in [("euclidean", True), ("squared-euclidean", False), ("cosine", True), ("dot", False)]:
        tag = f"{dist}_{'norm' if norm else 'raw'}"
        add(f"smooth_{tag}", L, 9, 4, labels_random(rng, 9, 3),
            {"distance": dist, "normalize": norm, "smooth": True, "margin": 0.1}, scale=scale_for(dist, norm))
        add(f"hard_{tag}", L, 14, 5, labels_random(rng, 14, 4),
            {"distance": dist, "normalize": norm, "mining": "hard", "margin": 0.2}, scale=scale_for(dist, norm))
        add(f"semihard_{tag}", L, 14, 5, labels_random(rng, 14, 3),
            {"distance": dist, "normalize": norm, "mining": "semihard", "margin": 0.4}, scale=scale_for(dist, norm))
    add("hard_default_margin", L, 16, 6, labels_random(rng, 16, 4), {"mining": "hard"})
    add("semihard_default_margin", L, 20, 6, labels_random(rng, 20, 3), {"mining": "semihard"})
    add("smooth_hard", L, 12, 4, labels_random(rng, 12, 3), {"mining": "hard", "smooth": True})
    add("margin_n40_d16", L, 40, 16, labels_random(rng, 40, 5), {"margin": 0.5})
    add("n26_d2_odd_labels", L, 26, 2, labels_random(rng, 26, 4, ODD_LABELS), {"margin": 0.1})
    add("one_class", L, 5, 3, [2] * 5, {"margin": 0.2})
    add("all_distinct", L, 6, 3, list(range(6)), {"margin": 0.2})
    add("dup_rows_cosine", L, 10, 4, labels_cycle(10, 3), {"distance": "cosine", "margin": 0.3},
        dup=[(3, 0), (5, 1)])
    add("spec_check_default", L, 11, 5, labels_random(rng, 11, 3), {"margin": 0.2}, source="torch-f64-spec")
    add("spec_check_semihard_dot", L, 12, 4, labels_random(rng, 12, 3),
        {"distance": "dot", "mining": "semihard", "margin": 0.5}, source="torch-f64-spec")

    # ---- n-pair ----
    L = "n-pair"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n4_d1", L, 4, 1, [0, 1, 0, 1])
    for dist, norm in DIST_NORM:
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 11, 5, labels_random(rng, 11, 4),
            {"distance": dist, "normalize": norm}, scale=scale_for(dist, norm) * 2)
    add("singletons_and_triples", L, 10, 4, [4, 9, 4, 7, 4, 1, 9, 8, 7, 3])
    add("n40_d16", L, 40, 16, labels_random(rng, 40, 12))
    add("odd_labels", L, 14, 3, labels_random(rng, 14, 6, ODD_LABELS), {"normalize": False})
    add("one_class", L, 5, 3, [1] * 5)
    add("all_distinct", L, 5, 3, list(range(5)))
    add("dup_rows", L, 8, 3, labels_cycle(8, 4), dup=[(4, 0), (6, 1)])
    add("spec_check_default", L, 12, 6, labels_random(rng, 12, 4), source="torch-f64-spec")
    add("spec_check_euclid", L, 10, 4, labels_random(rng, 10, 3), {"distance": "euclidean"}, source="torch-f64-spec")

    # ---- lifted-structure ----
    L = "lifted-structure"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n3_d1", L, 3, 1, [2, 2, 8])
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **sim_margins(L, dist, norm)}
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 5, labels_random(rng, 10, 3), prm,
            scale=scale_for(dist, norm))
    add("margins_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"pos_margin": 0.2, "neg_margin": 1.5})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 4, ODD_LABELS))
    add("one_class", L, 5, 3, [4] * 5)
    add("all_distinct", L, 6, 3, list(range(6)))
    add("dup_rows_sqeuclid", L, 9, 4, labels_cycle(9, 3), {"distance": "squared-euclidean"}, dup=[(3, 0)])
    add("spec_check_default", L, 11, 5, labels_random(rng, 11, 3), source="torch-f64-spec")
    add("spec_check_dot", L, 9, 4, labels_random(rng, 9, 3),
        {"distance": "dot", "pos_margin": 0.7, "neg_margin": 0.1}, source="torch-f64-spec")

    # ---- triplet-center (SPEC only) ----
    L = "triplet-center"
    add("default", L, 12, 6, labels_random(rng, 12, 4), k=4, cscale=0.7)
    add("default_n1_d1", L, 1, 1, [1], k=2)
    add("n2_d2_k2", L, 2, 2, [0, 1], k=2)
    for dist, norm in DIST_NORM:
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 5, labels_random(rng, 10, 3),
            {"distance": dist, "normalize": norm, "margin": 0.3}, k=3, scale=scale_for(dist, norm))
    add("margin2_n40_d16_k6", L, 40, 16, labels_random(rng, 40, 6), {"margin": 2.0}, k=6)
    add("one_class_k5", L, 7, 3, [2] * 7, {"margin": 0.5}, k=5)
    add("unused_centers", L, 6, 4, [0, 0, 1, 1, 0, 1], {"margin": 1.5}, k=5)
    add("dup_rows_sqeuclid", L, 8, 3, labels_random(rng, 8, 3), {"distance": "squared-euclidean"},
        k=3, dup=[(2, 0), (5, 1)])

    # ---- quadruplet (SPEC only) ----
    L = "quadruplet"
    add("default", L, 12, 6, labels_cycle(12, 4))
    add("default_n3_d1", L, 3, 1, [0, 0, 1])
    add("n4_d2_three_classes", L, 4, 2, [0, 0, 1, 2])
    for dist, norm in DIST_NORM:
        if is_sim({"distance": dist}):
            prm = {"distance": dist, "normalize": norm, "margin": 0.3, "margin2": 0.15}
        else:
            prm = {"distance": dist, "normalize": norm, "margin": 0.5, "margin2": 0.25}
        add(f"{dist}_{'norm' if norm else 'raw'}", L, 10, 4, labels_random(rng, 10, 4), prm,
            scale=scale_for(dist, norm))
    add("margins_n24_d16", L, 24, 16, labels_random(rng, 24, 5), {"margin": 1.5, "margin2": 0.8})
    add("odd_labels", L, 14, 3, labels_random(rng, 14, 4, ODD_LABELS))
    add("one_class", L, 5, 3, [6] * 5)
    add("all_distinct", L, 6, 3, list(range(6)))
    add("two_classes_no_quads", L, 8, 3, labels_cycle(8, 2))
    add("dup_rows_dot", L, 10, 4, labels_cycle(10, 4), {"distance": "dot", "margin": 0.3, "margin2": 0.2},
        dup=[(4, 0)])

    # New losses (briefs/new_losses.md). Appended after the seed losses so that the cases above
    # keep their seeds and labels.
    build_new_specs(rng, add)
    return specs


def tag_of(dist, norm):
    return f"{dist}_{'norm' if norm else 'raw'}"


def ms_params(dist, norm):
    """Multi-similarity parameters whose `base` sits inside the range of the metric."""
    if dist == "cosine" or (dist == "dot" and norm):
        return {}
    if dist == "dot":
        return {"base": 0.1, "beta": 20.0}
    if dist == "squared-euclidean":
        return {"base": 2.0, "beta": 10.0} if norm else {"base": 1.2, "beta": 10.0}
    return {"base": 1.4, "beta": 10.0} if norm else {"base": 1.1, "beta": 10.0}


def temperature_for(dist, norm, default):
    return {"temperature": default} if dist == "cosine" or (dist == "dot" and norm) else {"temperature": 0.5}


def build_new_specs(rng, add):
    # ---- multi-similarity ----
    L = "multi-similarity"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n1_d2", L, 1, 2, [3])
    add("default_n2_d1_neg", L, 2, 1, [0, 1])
    add("default_n3_d2", L, 3, 2, [1, 1, 2])
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **ms_params(dist, norm)}
        add(tag_of(dist, norm), L, 10, 5, labels_random(rng, 10, 3), prm, scale=scale_for(dist, norm))
    add("params_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"alpha": 1.0, "beta": 20.0, "base": 0.3})
    add("params_large_alpha", L, 12, 4, labels_random(rng, 12, 3), {"alpha": 10.0, "beta": 5.0, "base": 0.7})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 5, ODD_LABELS))
    add("one_class", L, 6, 3, [3] * 6)
    add("all_distinct", L, 7, 3, list(range(7)))
    add("dup_rows_dot", L, 9, 4, labels_cycle(9, 3), {"distance": "dot"}, dup=[(3, 0), (7, 2)])

    # ---- circle (cosine only) ----
    L = "circle"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n1_d2", L, 1, 2, [0])
    add("default_n3_d2", L, 3, 2, [0, 0, 1])
    add("default_n10_d5", L, 10, 5, labels_random(rng, 10, 3))
    add("reid_params", L, 14, 6, labels_random(rng, 14, 4), {"margin": 0.25, "gamma": 128.0})
    add("small_gamma_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"margin": 0.3, "gamma": 4.0})
    add("gamma1_d3", L, 10, 3, labels_random(rng, 10, 3), {"gamma": 1.0})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 5, ODD_LABELS))
    add("one_class", L, 6, 3, [3] * 6)
    add("all_distinct", L, 7, 3, list(range(7)))
    add("dup_rows", L, 9, 4, labels_cycle(9, 3), {"gamma": 16.0}, dup=[(3, 0), (7, 2)])

    # ---- nt-xent ----
    L = "nt-xent"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n1_d2", L, 1, 2, [0])
    add("default_n2_d1_no_pos", L, 2, 1, [0, 1])
    add("default_n3_d2", L, 3, 2, [0, 0, 1])
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **temperature_for(dist, norm, 0.2)}
        add(tag_of(dist, norm), L, 10, 5, labels_random(rng, 10, 3), prm, scale=scale_for(dist, norm))
    add("tau_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"temperature": 0.5})
    add("tau1", L, 12, 4, labels_random(rng, 12, 3), {"temperature": 1.0})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 5, ODD_LABELS))
    add("one_class", L, 6, 3, [3] * 6)
    add("all_distinct", L, 7, 3, list(range(7)))
    add("dup_rows_dot", L, 9, 4, labels_cycle(9, 3), {"distance": "dot", "temperature": 0.3},
        dup=[(3, 0), (7, 2)])

    # ---- supcon ----
    L = "supcon"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n1_d2", L, 1, 2, [0])
    add("default_n2_d1_no_pos", L, 2, 1, [0, 1])
    add("default_n3_d2", L, 3, 2, [0, 0, 1])
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **temperature_for(dist, norm, 0.3)}
        add(tag_of(dist, norm), L, 10, 5, labels_random(rng, 10, 3), prm, scale=scale_for(dist, norm))
    add("tau_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"temperature": 0.5})
    add("tau_small", L, 12, 4, labels_random(rng, 12, 3), {"temperature": 0.05})
    add("singletons", L, 10, 4, [4, 9, 4, 7, 4, 1, 9, 8, 7, 3])
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 5, ODD_LABELS))
    add("one_class", L, 6, 3, [3] * 6)
    add("all_distinct", L, 7, 3, list(range(7)))
    add("dup_rows_sqeuclid", L, 9, 4, labels_cycle(9, 3), {"distance": "squared-euclidean", "temperature": 0.5},
        dup=[(3, 0), (7, 2)])

    # ---- generalized-lifted-structure ----
    L = "generalized-lifted-structure"
    add("default", L, 12, 8, labels_cycle(12, 4))
    add("default_n1_d2", L, 1, 2, [0])
    add("default_n3_d1", L, 3, 1, [2, 2, 8])
    for dist, norm in DIST_NORM:
        prm = {"distance": dist, "normalize": norm, **sim_margins("lifted-structure", dist, norm)}
        add(tag_of(dist, norm), L, 10, 5, labels_random(rng, 10, 3), prm, scale=scale_for(dist, norm))
    add("mixed_margins", L, 12, 6, labels_random(rng, 12, 3), {"pos_margin": 2.2, "neg_margin": -0.6})
    add("mixed_margins_cosine", L, 12, 6, labels_random(rng, 12, 3),
        {"distance": "cosine", "pos_margin": -0.2, "neg_margin": 1.5})
    add("margins_n40_d16", L, 40, 16, labels_random(rng, 40, 6), {"pos_margin": 0.2, "neg_margin": 1.5})
    add("n26_d4_odd_labels", L, 26, 4, labels_random(rng, 26, 4, ODD_LABELS))
    add("one_class", L, 5, 3, [4] * 5)
    add("all_distinct", L, 6, 3, list(range(6)))
    add("dup_rows_sqeuclid", L, 9, 4, labels_cycle(9, 3), {"distance": "squared-euclidean"}, dup=[(3, 0)])

    # ---- quadruplet, mining hard (margin's own definition, new_losses.md section 6) ----
    L = "quadruplet"
    H = {"mining": "hard"}
    add("hard_default", L, 12, 6, labels_cycle(12, 4), H)
    add("hard_n3_d1", L, 3, 1, [0, 0, 1], H)
    add("hard_n4_d2_three_classes", L, 4, 2, [0, 0, 1, 2], H)
    for dist, norm in DIST_NORM:
        if is_sim({"distance": dist}):
            prm = {"distance": dist, "normalize": norm, "margin": 0.3, "margin2": 0.15, **H}
        else:
            prm = {"distance": dist, "normalize": norm, "margin": 0.5, "margin2": 0.25, **H}
        add(f"hard_{tag_of(dist, norm)}", L, 10, 4, labels_random(rng, 10, 4), prm, scale=scale_for(dist, norm))
    add("hard_margins_n24_d16", L, 24, 16, labels_random(rng, 24, 5), {"margin": 1.5, "margin2": 0.8, **H})
    add("hard_n40_d8", L, 40, 8, labels_random(rng, 40, 6), {"margin": 0.2, "margin2": 0.1, **H})
    add("hard_odd_labels", L, 14, 3, labels_random(rng, 14, 4, ODD_LABELS), H)
    add("hard_one_class", L, 5, 3, [6] * 5, H)
    add("hard_all_distinct", L, 6, 3, list(range(6)), H)
    add("hard_two_classes_no_quads", L, 8, 3, labels_cycle(8, 2), H)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "pml"))
    args = ap.parse_args()
    torch.manual_seed(0)
    specs = build_specs()
    by_loss, discrepancies, dropped = {}, [], []
    for i, spec in enumerate(specs):
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
