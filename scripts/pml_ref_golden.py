#!/usr/bin/env python3
"""Golden fixtures for reference sets (PML's ref_emb / ref_labels) and CrossBatchMemory.

Writes tests/fixtures/pml_ref/<loss>.json (one file per loss PML 2.9 supports with ref_emb) and
tests/fixtures/pml_ref/cross-batch-memory.json. Values and gradients (w.r.t. the batch X only; the
reference set is a constant) come from pytorch-metric-learning itself in float64 on the CPU. Every
case is cross-checked against a direct torch transcription of docs/REFERENCE_SETS.md (the
rectangular N x M formulas); a disagreement is printed as DISCREPANCY and the case is dropped.
Cases within KINK_TOL of a hinge kink or a mining tie are re-drawn with the next seed.

Run:  /opt/pyenv-pml/bin/python scripts/pml_ref_golden.py [--out tests/fixtures/pml_ref]
Deterministic. Reuses the helpers of scripts/pml_golden.py, pml_spec.py and pml_cases.py.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pml_cases  # noqa: E402
import pml_golden as pg  # noqa: E402
import pml_spec  # noqa: E402

import pytorch_metric_learning  # noqa: E402
from pytorch_metric_learning import losses as pml_l  # noqa: E402
from pytorch_metric_learning import miners as pml_m  # noqa: E402

torch.set_default_dtype(torch.float64)
DT = torch.float64
KINK_TOL = pml_spec.KINK_TOL
XCHECK_VALUE, XCHECK_GRAD = 1e-9, 1e-8
DEFAULTS = pml_spec.DEFAULTS
PAIR_LOSSES = {"contrastive", "lifted-structure", "multi-similarity", "circle", "nt-xent", "supcon",
               "generalized-lifted-structure"}

# ----------------------------------------------------------------------------------------------
# Transcription of docs/REFERENCE_SETS.md (rectangular, e = sign * m, gradient through X only)
# ----------------------------------------------------------------------------------------------


def ref_masks(y, ry, self_index):
    """pos/neg masks N x M; the self column (CrossBatchMemory) is removed from pos only."""
    pos = y[:, None] == ry[None, :]
    neg = ~pos
    selfm = torch.zeros_like(pos)
    if self_index is not None:
        for i, s in enumerate(self_index):
            if s >= 0:
                selfm[i, s] = True
    return pos & ~selfm, neg, selfm


def spec_ref(loss, x, y, r, ry, p, g, self_index=None):
    sim = pml_spec.is_sim(p)
    sg = -1.0 if sim else 1.0
    xs, rs = pml_spec.prep(x, p), pml_spec.prep(r, p)
    m = pml_spec.spec_matrix(xs, rs, p)
    e = sg * m
    pos, neg, selfm = ref_masks(y, ry, self_index)
    zero = x.sum() * 0.0
    n, mm = pos.shape
    if loss in PAIR_LOSSES and pos.sum() <= 1 and neg.sum() <= 1:
        return zero, [0, 0]  # PML GenericPairLoss: every index tensor of length <= 1
    if loss == "contrastive":
        pa = e[pos] - sg * p["pos_margin"]
        na = sg * p["neg_margin"] - e[neg]
        g.hinge(pa)
        g.hinge(na)
        lp, cp = pml_spec.avg_nonzero(F.relu(pa))
        ln, cn = pml_spec.avg_nonzero(F.relu(na))
        return lp + ln, [cp, cn]
    if loss == "triplet":
        ed = e.detach()
        if p["mining"] == "hard":
            cand = pos | selfm  # PML mines before removing self comparisons
            g.tie(ed, cand, largest=True)
            g.tie(ed, neg, largest=False)
            far = ed.masked_fill(~cand, -float("inf"))
            near = ed.masked_fill(~neg, float("inf"))
            pi_all, ni_all = far.argmax(1), near.argmin(1)
            keep = cand.any(1) & neg.any(1)
            keep &= ~selfm[torch.arange(n), pi_all]  # the hardest "positive" was the anchor itself
            a = torch.nonzero(keep).flatten()
            pi, ni = pi_all[a], ni_all[a]
        else:
            t = pos[:, :, None] & neg[:, None, :]
            a, pi, ni = torch.nonzero(t, as_tuple=True)
            if p["mining"] == "semihard":
                gap = ed[a, ni] - ed[a, pi]
                g.hinge(gap)
                g.hinge(gap - p["margin"])
                k = (gap > 0) & (gap <= p["margin"])
                a, pi, ni = a[k], pi[k], ni[k]
        if len(a) == 0:
            return zero, [0, 0]
        v = e[a, pi] - e[a, ni] + p["margin"]
        if p["smooth"]:
            terms = F.softplus(v)
        else:
            g.hinge(v)
            terms = F.relu(v)
        l, c = pml_spec.avg_nonzero(terms)
        return l, [c, 0]
    if loss == "lifted-structure":
        if pos.sum() == 0 or neg.sum() == 0:
            return zero, [0, 0]
        ne = (sg * p["neg_margin"] - e).masked_fill(~neg, -float("inf"))
        i, j = torch.nonzero(pos, as_tuple=True)
        terms, args = [], []
        for a, b in zip(i.tolist(), j.tolist()):
            # PML compares batch-row indices (a2) with reference indices (p): batch row b's
            # negatives join when b < N (index aliasing, see REFERENCE_SETS.md).
            rows = [a] + ([b] if (b < n and b != a) else [])
            vals = torch.cat([ne[k][neg[k]] for k in rows])
            lse = torch.logsumexp(vals, 0) if len(vals) else zero
            jv = lse + e[a, b] - sg * p["pos_margin"]
            args.append(jv)
        jv = torch.stack(args)
        g.hinge(jv)
        terms = F.relu(jv) ** 2 / 2
        return terms.mean(), [int((jv > 0).sum()), 0]
    if loss == "multi-similarity":
        b = sg * p["base"]
        lp = pml_spec.masked_lse(p["alpha"] * (e - b), pos, add_one=True) / p["alpha"]
        ln = pml_spec.masked_lse(p["beta"] * (b - e), neg, add_one=True) / p["beta"]
        return (lp + ln).mean(), [int(pos.any(1).sum()), int(neg.any(1).sum())]
    if loss == "circle":
        s = m
        mg, gamma = p["margin"], p["gamma"]
        rows = pos.any(1) & neg.any(1)
        if not rows.any():
            return zero, [0, 0]
        lp = -gamma * F.relu(1 + mg - s).detach() * (s - (1 - mg))
        ln = gamma * F.relu(s + mg).detach() * (s - mg)
        z = (pml_spec.masked_lse(lp, pos) + pml_spec.masked_lse(ln, neg))[rows]
        terms = torch.logaddexp(z, torch.zeros_like(z))
        return terms.sum() / int(rows.sum()), [int(rows.sum()), 0]
    if loss == "nt-xent":
        if pos.sum() == 0 or neg.sum() == 0:
            return zero, [0, 0]
        v = -e / p["temperature"]
        a, pi = torch.nonzero(pos, as_tuple=True)
        lse_n = pml_spec.masked_lse(v, neg)
        has_n = neg.any(1)
        vap = v[a, pi]
        l = torch.where(has_n[a], torch.logaddexp(vap, lse_n[a]) - vap, torch.zeros_like(vap))
        return l.mean(), [len(a), 0]
    if loss == "supcon":
        if pos.sum() == 0 or neg.sum() == 0:
            return zero, [0, 0]
        v = -e / p["temperature"]
        lse = pml_spec.masked_lse(v, pos | neg)
        cnt = pos.sum(1)
        mean_pos = (v * pos).sum(1) / cnt.clamp(min=1)
        terms = torch.where(cnt > 0, lse - mean_pos, torch.zeros_like(lse))
        active = (cnt > 0) & (neg.any(1) | (cnt >= 2))
        c = int(active.sum())
        if c == 0:
            return zero, [0, 0]
        return terms.sum() / c, [c, 0]
    if loss == "generalized-lifted-structure":
        arg = pml_spec.masked_lse(e - sg * p["pos_margin"], pos) + pml_spec.masked_lse(sg * p["neg_margin"] - e, neg)
        g.hinge(arg[pos.any(1) | neg.any(1)])
        return F.relu(arg).mean(), [int((arg > 0).sum()), 0]
    raise ValueError(loss)


def spec_quadruplet_ref(x, y, r, ry, p, g, self_index=None):
    """margin's own quadruplet with a reference set (REFERENCE_SETS.md; PML has no quadruplet).
    a, k: batch rows; p, n, l: reference rows. Term 2's negative pair (k, l) is a batch-reference
    entry of the same N x M matrix."""
    sg = -1.0 if pml_spec.is_sim(p) else 1.0
    e = sg * pml_spec.spec_matrix(pml_spec.prep(x, p), pml_spec.prep(r, p), p)
    ed = e.detach()
    pos, neg, selfm = ref_masks(y, ry, self_index)
    n, m = pos.shape
    zero = x.sum() * 0.0
    kl_ok = lambda a: neg & (y != y[a])[:, None] & (ry != y[a])[None, :]  # noqa: E731
    t1, t2 = [], []
    if p["mining"] == "hard":
        for a in range(n):
            cand = pos[a] | selfm[a]
            if not (cand.any() and neg[a].any()):
                continue
            g.tie(ed[a:a + 1], cand[None], largest=True)
            g.tie(ed[a:a + 1], neg[a:a + 1], largest=False)
            ps = max([j for j in range(m) if cand[j]], key=lambda j: (ed[a, j].item(), -j))
            if selfm[a, ps]:
                continue  # the anchor's own copy is its hardest positive: no term at all (as triplet)
            ns = min([j for j in range(m) if neg[a, j]], key=lambda j: (ed[a, j].item(), j))
            t1.append(e[a, ps] - e[a, ns] + p["margin"])
            q = kl_ok(a)
            if not q.any():
                continue
            vals = torch.sort(ed[q]).values
            if len(vals) >= 2:
                g.closest = min(g.closest, (vals[1] - vals[0]).abs().item())
            pairs = [(k, l) for k in range(n) for l in range(m) if q[k, l]]
            k, l = min(pairs, key=lambda kl: (ed[kl].item(), kl[0], kl[1]))
            t2.append(e[a, ps] - e[k, l] + p["margin2"])
        v1 = torch.stack(t1) if t1 else None
        v2 = torch.stack(t2) if t2 else None
    else:
        t = pos[:, :, None] & neg[:, None, :]
        a, pi, ni = torch.nonzero(t, as_tuple=True)
        v1 = (e[a, pi] - e[a, ni] + p["margin"]) if len(a) else None
        q = pos[:, :, None, None] & neg[None, None, :, :] & (y[:, None] != y[None, :])[:, None, :, None] \
            & (y[:, None] != ry[None, :])[:, None, None, :]
        a, pi, ki, li = torch.nonzero(q, as_tuple=True)
        v2 = (e[a, pi] - e[ki, li] + p["margin2"]) if len(a) else None
    out, act = zero, []
    for v in (v1, v2):
        if v is None:
            act.append(0)
            continue
        g.hinge(v)
        l, c = pml_spec.avg_nonzero(F.relu(v))
        out = out + l
        act.append(c)
    return out, act


# ----------------------------------------------------------------------------------------------
# PML
# ----------------------------------------------------------------------------------------------


def pml_loss_fn(loss, p):
    dist = pg.pml_distance(p)
    if loss == "contrastive":
        return pml_l.ContrastiveLoss(pos_margin=p["pos_margin"], neg_margin=p["neg_margin"], distance=dist)
    if loss == "triplet":
        return pml_l.TripletMarginLoss(margin=p["margin"], smooth_loss=p["smooth"], distance=dist)
    if loss == "lifted-structure":
        return pml_l.LiftedStructureLoss(neg_margin=p["neg_margin"], pos_margin=p["pos_margin"], distance=dist)
    if loss == "multi-similarity":
        return pml_l.MultiSimilarityLoss(alpha=p["alpha"], beta=p["beta"], base=p["base"], distance=dist)
    if loss == "circle":
        return pml_l.CircleLoss(m=p["margin"], gamma=p["gamma"], distance=dist)
    if loss == "nt-xent":
        return pml_l.NTXentLoss(temperature=p["temperature"], distance=dist)
    if loss == "supcon":
        return pml_l.SupConLoss(temperature=p["temperature"], distance=dist)
    if loss == "generalized-lifted-structure":
        return pml_l.GeneralizedLiftedStructureLoss(neg_margin=p["neg_margin"], pos_margin=p["pos_margin"],
                                                    distance=dist)
    raise ValueError(loss)


def pml_miner(loss, p):
    if loss != "triplet" or p["mining"] == "all":
        return None
    if p["mining"] == "hard":
        return pml_m.BatchHardMiner(distance=pg.pml_distance(p))
    return pml_m.TripletMarginMiner(margin=p["margin"], type_of_triplets="semihard", distance=pg.pml_distance(p))


def pml_ref(loss, p, x, y, r, ry):
    fn = pml_loss_fn(loss, p)
    miner = pml_miner(loss, p)
    it = miner(x, y, r, ry) if miner is not None else None
    return fn(x, y, it, ref_emb=r, ref_labels=ry)


# ----------------------------------------------------------------------------------------------
# Plain reference-set cases
# ----------------------------------------------------------------------------------------------


def draw(spec, seed):
    rng = np.random.default_rng(seed)
    n, m, d = spec["n"], spec["m"], spec["d"]
    sc = spec.get("scale", 1.0)
    x = (rng.standard_normal((n, d)) * sc).astype(np.float32)
    r = (rng.standard_normal((m, d)) * sc).astype(np.float32)
    for dst, src in spec.get("ref_dup", []):  # reference row dst = batch row src
        r[dst] = x[src]
    return x, r


def xcheck(pv, pgrad, sv, sgrad):
    dv = abs(pv - sv)
    dg = (pgrad - sgrad).norm().item()
    ok_v = dv <= XCHECK_VALUE * max(1.0, abs(sv))
    ok_g = dg <= XCHECK_GRAD * max(sgrad.norm().item(), 1e-6)
    return ok_v and ok_g, dv, dg


def compute(spec, seed, discrepancies):
    p = {**DEFAULTS[spec["loss"]], **spec.get("params", {})}
    x32, r32 = draw(spec, seed)
    y = torch.tensor(spec["labels"], dtype=torch.int64)
    ry = torch.tensor(spec["ref_labels"], dtype=torch.int64)  # never the same object as y
    g = pml_spec.Guard()
    xs = torch.tensor(x32, dtype=DT, requires_grad=True)
    rs = torch.tensor(r32, dtype=DT)
    si = spec.get("self_index")
    if spec["loss"] == "quadruplet":
        sv, active = spec_quadruplet_ref(xs, y, rs, ry, p, g, si)
    else:
        sv, active = spec_ref(spec["loss"], xs, y, rs, ry, p, g, si)
    sv.backward()
    sgrad = xs.grad.clone() if xs.grad is not None else torch.zeros_like(xs)
    if g.closest < KINK_TOL:
        return None
    out = {
        "name": spec["name"], "loss": spec["loss"], "source": "pml", "params": spec.get("params", {}),
        "n": spec["n"], "m": spec["m"], "d": spec["d"], "seed": seed,
        "labels": [int(v) for v in spec["labels"]], "embeddings": pg.f32_list(x32),
        "ref_labels": [int(v) for v in spec["ref_labels"]], "ref_embeddings": pg.f32_list(r32),
    }
    if si is not None:
        out["self_index"] = si
    if spec["loss"] == "quadruplet":
        out.update(source="torch-f64-ref-spec", value=sv.item() + 0.0, active=active, grad=pg.g_list(sgrad))
        return out
    xp = torch.tensor(x32, dtype=DT, requires_grad=True)
    pv = pml_ref(spec["loss"], p, xp, y.clone(), torch.tensor(r32, dtype=DT), ry.clone())
    pv.backward()
    pgrad = xp.grad if xp.grad is not None else torch.zeros_like(xp)
    ok, dv, dg = xcheck(pv.item(), pgrad, sv.item(), sgrad)
    if not ok:
        discrepancies.append(f"{spec['name']} seed {seed}: pml {pv.item()!r} spec {sv.item()!r} "
                             f"|dv| {dv:.3e} |dgrad| {dg:.3e} |grad| {sgrad.norm().item():.3e}")
        return "discrepancy"
    out.update(value=pv.item() + 0.0, active=active, grad=pg.g_list(pgrad))
    return out


def lab(rng, n, k):
    return [int(v) for v in rng.integers(0, k, size=n)]


def build_specs():
    rng = np.random.default_rng(20261130)
    specs = []

    def add(name, loss, n, m, d, labels, ref_labels, params=None, **kw):
        specs.append(dict(name=f"{loss}/{name}", loss=loss, n=n, m=m, d=d, labels=labels,
                          ref_labels=ref_labels, params=params or {}, **kw))

    def common(L, prm_for, extra=()):
        """The shared case list: defaults, every distance, shared labels, no positives, M=1..."""
        add("default", L, 8, 12, 6, lab(rng, 8, 3), lab(rng, 12, 3))
        for dist, norm in pml_cases.DIST_NORM:
            if L == "circle" and dist != "cosine":
                continue
            prm = {"distance": dist, "normalize": norm, **prm_for(dist, norm)}
            add(pml_cases.tag_of(dist, norm), L, 7, 10, 5, lab(rng, 7, 3), lab(rng, 10, 3), prm,
                scale=pml_cases.scale_for(dist, norm))
        # the reference has exactly the batch's labels (M = N), independent embeddings
        yb = lab(rng, 7, 3)
        add("ref_same_labels", L, 7, 7, 4, yb, list(yb))
        # the reference holds copies of the batch rows with their labels: the self pairs (i, i) are
        # ordinary positives (PML drops the diagonal only when ref_labels *is* labels). Cosine, so
        # that no self pair sits at a kink or at the undefined euclidean gradient at 0.
        yb = lab(rng, 6, 3)
        prm = {"distance": "cosine", **prm_for("cosine", True)}
        add("ref_copies_batch_cosine", L, 6, 9, 4, yb, yb + lab(rng, 3, 3), prm,
            ref_dup=[(k, k) for k in range(6)])
        add("no_positives_in_ref", L, 6, 8, 4, lab(rng, 6, 2), [5, 6, 7, 5, 6, 7, 8, 9])
        add("all_positive_ref", L, 5, 6, 3, [1, 1, 2, 1, 2], [1] * 6)
        add("m1", L, 6, 1, 4, [0, 1, 0, 2, 1, 0], [0])
        add("m1_n2", L, 2, 1, 3, [0, 1], [0])
        add("n1_m5", L, 1, 5, 3, [2], [2, 0, 2, 1, 3])
        add("n20_m24_d8", L, 20, 24, 8, lab(rng, 20, 5), lab(rng, 24, 5))
        add("ref_extra_classes", L, 9, 7, 4, lab(rng, 9, 2), [0, 1, 4, 5, 0, 6, 1])
        for args in extra:
            add(*args[:1], L, *args[1:])

    common("contrastive", lambda d, n: pml_cases.sim_margins("contrastive", d, n),
           extra=[("margins", 10, 6, 4, lab(rng, 10, 3), lab(rng, 6, 3), {"pos_margin": 0.3, "neg_margin": 1.3})])
    L = "triplet"
    common(L, lambda d, n: {"margin": 0.2}, extra=[("margin_0_4", 10, 6, 4, lab(rng, 10, 3), lab(rng, 6, 3),
                                                    {"margin": 0.4})])
    for mining in ("hard", "semihard"):
        for dist, norm in [("euclidean", True), ("squared-euclidean", False), ("cosine", True), ("dot", False)]:
            add(f"{mining}_{pml_cases.tag_of(dist, norm)}", L, 10, 12, 5, lab(rng, 10, 3), lab(rng, 12, 4),
                {"distance": dist, "normalize": norm, "mining": mining, "margin": 0.3},
                scale=pml_cases.scale_for(dist, norm))
        add(f"{mining}_default_margin", L, 12, 14, 6, lab(rng, 12, 4), lab(rng, 14, 4), {"mining": mining})
        add(f"{mining}_m1", L, 5, 1, 3, [0, 1, 0, 1, 0], [1], {"mining": mining, "margin": 0.5})
        add(f"{mining}_no_positives", L, 5, 6, 3, [0, 0, 1, 1, 0], [2, 3, 2, 3, 4, 2], {"mining": mining})
    for dist, norm in [("euclidean", True), ("dot", False)]:
        add(f"smooth_{pml_cases.tag_of(dist, norm)}", L, 8, 9, 4, lab(rng, 8, 3), lab(rng, 9, 3),
            {"distance": dist, "normalize": norm, "smooth": True, "margin": 0.1}, scale=pml_cases.scale_for(dist, norm))
    add("smooth_hard", L, 9, 10, 4, lab(rng, 9, 3), lab(rng, 10, 3), {"mining": "hard", "smooth": True})

    common("lifted-structure", lambda d, n: pml_cases.sim_margins("lifted-structure", d, n),
           extra=[("margins_m_gt_n", 6, 14, 4, lab(rng, 6, 3), lab(rng, 14, 3), {"pos_margin": 0.2, "neg_margin": 1.5}),
                  ("m_lt_n_aliasing", 10, 4, 4, lab(rng, 10, 2), [0, 1, 0, 1], {})])
    common("multi-similarity", pml_cases.ms_params,
           extra=[("params", 9, 7, 4, lab(rng, 9, 3), lab(rng, 7, 3), {"alpha": 1.0, "beta": 20.0, "base": 0.3})])
    common("circle", lambda d, n: {},
           extra=[("reid_params", 9, 11, 6, lab(rng, 9, 3), lab(rng, 11, 3), {"margin": 0.25, "gamma": 128.0}),
                  ("gamma4", 8, 8, 4, lab(rng, 8, 3), lab(rng, 8, 3), {"gamma": 4.0, "margin": 0.3})])
    common("nt-xent", lambda d, n: pml_cases.temperature_for(d, n, 0.2),
           extra=[("tau1", 8, 10, 4, lab(rng, 8, 3), lab(rng, 10, 3), {"temperature": 1.0})])
    common("supcon", lambda d, n: pml_cases.temperature_for(d, n, 0.3),
           extra=[("tau_0_5", 8, 10, 4, lab(rng, 8, 3), lab(rng, 10, 3), {"temperature": 0.5})])
    common("generalized-lifted-structure", lambda d, n: pml_cases.sim_margins("lifted-structure", d, n),
           extra=[("mixed_margins", 8, 10, 5, lab(rng, 8, 3), lab(rng, 10, 3), {"pos_margin": 2.2, "neg_margin": -0.6})])
    # ---- quadruplet (margin's own; torch transcription of REFERENCE_SETS.md) ----
    L = "quadruplet"
    for mining in ("all", "hard"):
        H = {"mining": mining}
        add(f"{mining}_default", L, 8, 10, 5, lab(rng, 8, 4), lab(rng, 10, 4), H)
        for dist, norm in pml_cases.DIST_NORM:
            if pml_spec.is_sim({"distance": dist}):
                prm = {"distance": dist, "normalize": norm, "margin": 0.3, "margin2": 0.15, **H}
            else:
                prm = {"distance": dist, "normalize": norm, "margin": 0.5, "margin2": 0.25, **H}
            add(f"{mining}_{pml_cases.tag_of(dist, norm)}", L, 7, 9, 4, lab(rng, 7, 4), lab(rng, 9, 4), prm,
                scale=pml_cases.scale_for(dist, norm))
        add(f"{mining}_m1", L, 5, 1, 3, [0, 1, 2, 0, 1], [0], H)
        add(f"{mining}_two_classes_no_quads", L, 6, 6, 3, [0, 1, 0, 1, 0, 1], [1, 0, 0, 1, 1, 0], H)
        add(f"{mining}_no_positives", L, 5, 6, 3, [0, 0, 1, 1, 0], [2, 3, 2, 3, 4, 2], H)
        # self_index: reference rows 2..7 are copies of batch rows 0..5 (a CrossBatchMemory state)
        yb = lab(rng, 6, 3)
        add(f"{mining}_self_index", L, 6, 9, 4, yb, lab(rng, 2, 3) + yb + lab(rng, 1, 3),
            {"distance": "cosine", "margin": 0.3, "margin2": 0.15, **H},
            ref_dup=[(k + 2, k) for k in range(6)], self_index=[k + 2 for k in range(6)])
    # self_index with a PML loss: PML has no such argument, so these are computed through
    # CrossBatchMemory in cross-batch-memory.json instead.
    return specs


# ----------------------------------------------------------------------------------------------
# CrossBatchMemory cases
# ----------------------------------------------------------------------------------------------


def cbm_specs():
    """Each: loss, params, d, memory_size, calls = [(labels, extra)], extra: enqueue_mask and
    derive = [(row, prev_call, prev_row, factor)] (row := factor * that earlier row)."""
    S = []

    def add(name, loss, d, memory_size, calls, params=None, scale=1.0):
        S.append(dict(name=f"cross-batch-memory/{name}", loss=loss, d=d, memory_size=memory_size,
                      calls=calls, params=params or {}, scale=scale))

    c3 = [([0, 1, 2, 0, 1, 2], {}), ([1, 2, 3, 1, 0, 3], {}), ([0, 3, 2, 2, 1, 0], {})]
    add("contrastive_wrap", "contrastive", 4, 10, c3)
    add("triplet_all_wrap", "triplet", 4, 10, c3, {"margin": 0.2})
    add("triplet_hard", "triplet", 4, 9, c3, {"mining": "hard", "margin": 0.2})
    add("triplet_semihard_sqeuclid", "triplet", 4, 10, c3,
        {"mining": "semihard", "margin": 0.5, "distance": "squared-euclidean"})
    add("multi_similarity", "multi-similarity", 5, 8, c3)
    add("circle", "circle", 5, 8, c3, {"gamma": 16.0})
    add("nt_xent", "nt-xent", 4, 10, c3, {"temperature": 0.2})
    add("supcon_full_wrap", "supcon", 4, 6, c3, {"temperature": 0.3})  # batch == memory size
    add("generalized_lifted", "generalized-lifted-structure", 4, 10, c3)
    add("lifted_structure", "lifted-structure", 4, 16, c3)
    # raw dot, hard mining: call 2 row 0 = 0.3 * call 1 row 0 (same label 0); its only other positive
    # in memory is that row, with a larger dot product than with itself, so PML's miner picks the
    # anchor's own copy as the hardest positive and then drops the triplet.
    add("triplet_hard_dot_self_wins", "triplet", 4, 12,
        [([0, 1, 2, 1], {}), ([0, 2, 3, 3], {"derive": [(0, 0, 0, 0.3)]}), ([1, 0, 2, 3], {})],
        {"mining": "hard", "distance": "dot", "normalize": False, "margin": 0.2}, scale=0.5)
    add("contrastive_enqueue_mask", "contrastive", 4, 10,
        [([0, 1, 2, 0, 1, 2], {"enqueue_mask": [True, True, True, False, False, False]}),
         ([1, 2, 0, 1, 0, 2], {"enqueue_mask": [True, False, True, False, True, False]})])
    return S


def cbm_run(spec, seed, discrepancies):
    p = {**DEFAULTS[spec["loss"]], **spec["params"]}
    rng = np.random.default_rng(seed)
    d, ms = spec["d"], spec["memory_size"]
    wrapper = pml_l.CrossBatchMemory(pml_loss_fn(spec["loss"], p), embedding_size=d, memory_size=ms,
                                     miner=pml_miner(spec["loss"], p))
    calls_out, xs_hist = [], []
    for ci, (labels, extra) in enumerate(spec["calls"]):
        n = len(labels)
        x32 = (rng.standard_normal((n, d)) * spec["scale"]).astype(np.float32)
        for row, pc, pr, f in extra.get("derive", []):
            x32[row] = (xs_hist[pc][pr] * np.float32(f)).astype(np.float32)
        xs_hist.append(x32)
        y = torch.tensor(labels, dtype=torch.int64)
        mask = extra.get("enqueue_mask")
        xp = torch.tensor(x32, dtype=DT, requires_grad=True)
        if mask is None:
            pv = wrapper(xp, y)
        else:
            pv = wrapper(xp, y, enqueue_mask=torch.tensor(mask))
        pv.backward()
        pgrad = xp.grad if xp.grad is not None else torch.zeros_like(xp)
        # The memory as PML used it (E_mem, L_mem) and each anchor's own slot in it.
        size = ms if wrapper.has_been_filled else wrapper.queue_idx
        r = wrapper.embedding_memory[:size].detach().clone()
        ry = wrapper.label_memory[:size].clone()
        if mask is None:
            anchors = list(range(n))
            self_index = [int(v) for v in wrapper.curr_batch_idx]
        else:
            anchors = [i for i in range(n) if not mask[i]]
            self_index = None
        g = pml_spec.Guard()
        xa = torch.tensor(x32, dtype=DT, requires_grad=True)
        sv, active = spec_ref(spec["loss"], xa[anchors], y[anchors], r, ry, p, g, self_index)
        sv.backward()
        sgrad = xa.grad.clone() if xa.grad is not None else torch.zeros_like(xa)
        if g.closest < KINK_TOL:
            return None
        ok, dv, dg = xcheck(pv.item(), pgrad, sv.item(), sgrad)
        if not ok:
            discrepancies.append(f"{spec['name']} call {ci} seed {seed}: pml {pv.item()!r} spec {sv.item()!r} "
                                 f"|dv| {dv:.3e} |dgrad| {dg:.3e}")
            return "discrepancy"
        call = {"n": n, "labels": labels, "embeddings": pg.f32_list(x32)}
        if mask is not None:
            call["enqueue_mask"] = mask
        call.update({"m": size, "ref_labels": [int(v) for v in ry], "ref_embeddings": pg.f32_list(r.numpy()),
                     "self_index": self_index, "queue_idx_after": int(wrapper.queue_idx),
                     "value": pv.item() + 0.0, "active": active, "grad": pg.g_list(pgrad)})
        calls_out.append(call)
    return {"name": spec["name"], "loss": spec["loss"], "source": "pml", "params": spec["params"],
            "d": d, "memory_size": ms, "seed": seed, "calls": calls_out}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "pml_ref"))
    args = ap.parse_args()
    torch.manual_seed(0)
    by_loss, discrepancies, dropped = {}, [], []
    jobs = [(s, compute) for s in build_specs()] + [(s, cbm_run) for s in cbm_specs()]
    for i, (spec, fn) in enumerate(jobs):
        got = None
        for attempt in range(60):
            got = fn(spec, 1000 * i + attempt, discrepancies)
            if isinstance(got, dict) or got == "discrepancy":
                break
        if not isinstance(got, dict):
            dropped.append(f"{spec['name']} ({got or 'always near a kink'})")
            continue
        key = "cross-batch-memory" if fn is cbm_run else spec["loss"]
        by_loss.setdefault(key, []).append(got)
    os.makedirs(args.out, exist_ok=True)
    meta = {"generator": "scripts/pml_ref_golden.py", "torch": torch.__version__,
            "pytorch_metric_learning": pytorch_metric_learning.__version__, "numpy": np.__version__}
    for loss, cases in by_loss.items():
        path = os.path.join(args.out, f"{loss}.json")
        with open(path, "w") as f:
            json.dump({**meta, "loss": loss, "cases": cases}, f, separators=(",", ":"))
            f.write("\n")
        print(f"{loss:28s} {len(cases):3d} cases  {os.path.getsize(path)} bytes")
    for d in discrepancies:
        print("DISCREPANCY", d, file=sys.stderr)
    for d in dropped:
        print("DROPPED", d, file=sys.stderr)


if __name__ == "__main__":
    main()
