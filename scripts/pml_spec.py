"""The SPEC transcription behind the golden fixtures: margin's loss definitions in torch float64
(autograd gives the gradients), the loss defaults in margin's spelling, and the kink/tie guard.
Imported by pml_golden.py (which checks it against PML) and pml_ref_golden.py."""

import math

import torch
import torch.nn.functional as F

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
    "proxy-anchor": dict(distance="cosine", normalize=True, margin=0.1, alpha=32.0),
    "proxy-nca": dict(distance="squared-euclidean", normalize=True, scale=1.0),
    "normalized-softmax": dict(distance="dot", normalize=True, temperature=0.05),
    "cosface": dict(distance="cosine", normalize=True, margin=0.35, scale=64.0),
}

# ln 2^-1075: a float64 probability below 2^-1075 rounds to 0 (PML's NCA then drops the sample).
UNDERFLOW = -1075 * math.log(2.0)


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


def spec_proxy_anchor(x, y, c, p, g):
    """Per proxy (a column of the N x K matrix): log(1 + sum exp) of its positives and of its
    negatives; the first summed over the proxies with a positive and divided by their number,
    the second over all K and divided by K (PML's DivisorReducer)."""
    xs, cs = prep(x, p), prep(c, p)
    k = c.shape[0]
    sg = sign_of(p)
    e, mp, a = sg * spec_matrix(xs, cs, p), sg * p["margin"], p["alpha"]
    pos = F.one_hot(y, k).bool().T  # K x N: proxy c's positives
    lp = masked_lse(a * (e - mp).T, pos, add_one=True)
    ln = masked_lse(a * (-mp - e).T, ~pos, add_one=True)
    cpos, cneg = int(pos.any(1).sum()), int((~pos).any(1).sum())
    return lp.sum() / cpos + ln.sum() / k, [cpos, cneg]


def spec_proxy_softmax(x, y, c, p, g, loss):
    """proxy-nca, normalized-softmax, cosface: per sample a cross-entropy over the K centers with
    logits scale * (-e - target_margin * onehot); Mean over the counted samples (proxy-nca leaves
    out those whose target probability underflows in float64, as PML's NCA)."""
    xs, cs = prep(x, p), prep(c, p)
    k = c.shape[0]
    e = sign_of(p) * spec_matrix(xs, cs, p)
    onehot = F.one_hot(y, k).to(DT)
    if loss == "proxy-nca":
        scale, tm = p["scale"], 0.0
    elif loss == "normalized-softmax":
        scale, tm = 1.0 / p["temperature"], 0.0
    else:
        scale, tm = p["scale"], p["margin"]
    z = scale * (-e - tm * onehot)
    log_p = (z * onehot).sum(1) - torch.logsumexp(z, dim=1)
    keep = log_p.detach() >= UNDERFLOW if loss == "proxy-nca" else torch.ones_like(log_p, dtype=torch.bool)
    # PML's -log(p) loses digits (and its gradient overflows) where p is subnormal: keep every
    # log-probability out of [ln 2^-1075 - 15, ln 2^-1022 + 8] (a re-draw, like a kink).
    lp = log_p.detach()
    if loss == "proxy-nca" and ((lp > UNDERFLOW - 15.0) & (lp < -1022 * math.log(2.0) + 8.0)).any():
        g.closest = 0.0
    if not keep.any():
        return x.sum() * 0.0, [0, 0]
    return -log_p[keep].mean(), [int(keep.sum()), 0]


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
    if loss == "proxy-anchor":
        return spec_proxy_anchor(x, y, c, p, g)
    if loss in ("proxy-nca", "normalized-softmax", "cosface"):
        return spec_proxy_softmax(x, y, c, p, g, loss)
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
