// Stage 3 for the losses built from one log-sum-exp over a row's positives and one over its
// negatives. One workgroup per anchor row i of E (N x N; E = distance or -similarity, so smaller is
// closer; N x M with a reference set, P.cols = M). P(i) = {j != i : y_j = y_i},
// N(i) = {j : y_j != y_i} (with a reference set: column labels, and the row's own copy instead of
// i). With per-entry logits lp_j (j in P(i)) and ln_j (j in N(i)):
//   A = LSE_P(lp), B = LSE_N(ln)   (over {0} U the set when P.flags & 4: log(1 + sum exp))
// and W[i,j] = dL/de_ij = dL/dA * softmax(lp)_j * dlp_j/de  (and likewise for B), where softmax is
// exp(logit - A), so that with the {0} term it is PML's exp(x) / (1 + sum exp).
// Mode P.flags & 3:
//  0 multi-similarity: lp = P.f0 (e - P.f2), ln = P.f1 (P.f3 - e) (f0 = alpha, f1 = beta,
//    f2 = f3 = sign * base); add-one LSEs; L_i = A / alpha + B / beta; dL/dA = 1/alpha,
//    dL/dB = 1/beta. Counts: [row has a positive, row has a negative].
//  1 generalized lifted structure: same logits with f0 = f1 = 1, f2 = sign * pos_margin,
//    f3 = sign * neg_margin; an empty LSE is 0; L_i = relu(A + B), dL/dA = dL/dB = [A + B > 0].
//    Counts: [A + B > 0, 0].
//  2 circle (cosine: s = -e), f0 = f1 = gamma, f2 = m:
//    lp = -gamma relu(1 + m - s) (s - (1 - m)), ln = gamma relu(s + m) (s - m), the relu factors
//    held constant (PML detaches them), so dlp/de = gamma relu(1 + m - s),
//    dln/de = -gamma relu(s + m). Only rows with a positive and a negative: L_i = softplus(A + B),
//    dL/dA = dL/dB = sigmoid(A + B). Counts: [1, 0] for every row with a positive and a negative (softplus > 0).
//  3 proxy-anchor, on the transposed K x N matrix (row i = proxy, columns = the samples, row
//    group = the proxy's class, no excluded column; losses/proxy_anchor.rs): mode 0's logits
//    with f0 = f1 = alpha, f2 = m', f3 = -m' (m' = sign * margin), add-one LSEs;
//    dL/dA = P.f4 = 1/|proxies with a positive|, dL/dB = P.f5 = 1/K, both known on the host
//    before the launch, so these weights come out scaled. rstat = [A, B] unscaled (the host
//    divides in f64). Counts: [row has a positive, row has a negative].
// Modes 0-2 write W unscaled (the 1/N or 1/count of the reducer is applied by the chain kernel).
// Per row: rstat = [L_i, 0] (mode 3: [A, B]), rcnt = the two counts.

// In place: the weights overwrite E (weight_out in common.wgsl); the last pass reads each entry
// just before it writes it.
@group(0) @binding(1) var<storage, read_write> e: array<f32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(4) var<storage, read_write> rcnt: array<vec2<u32>>;

fn mode() -> u32 {
    return P.flags & 3u;
}

fn logit(pos: bool, v: f32) -> f32 {
    if (mode() == 2u) {
        let s = -v;
        if (pos) {
            return -P.f0 * max(1.0 + P.f2 - s, 0.0) * (s - (1.0 - P.f2));
        }
        return P.f1 * max(s + P.f2, 0.0) * (s - P.f2);
    }
    if (pos) {
        return P.f0 * (v - P.f2);
    }
    return P.f1 * (P.f3 - v);
}

fn dlogit(pos: bool, v: f32) -> f32 {
    if (mode() == 2u) {
        let s = -v;
        if (pos) {
            return P.f0 * max(1.0 + P.f2 - s, 0.0);
        }
        return -P.f1 * max(s + P.f2, 0.0);
    }
    return select(-P.f1, P.f0, pos);
}

// 0 = not in the row's sets (its excluded column: the diagonal, or its own copy in a reference
// set), 1 = positive, 2 = negative.
fn kind(i: u32, j: u32, gi: u32) -> u32 {
    if (j == grp[P.n + P.cols + i]) {
        return 0u;
    }
    return select(2u, 1u, grp[P.n + j] == gi);
}

// The LSE from a set's shift `mx` and its sum `s` of exp(logit - mx); an empty set without the
// {0} term counts 0. With the {0} term and a shift of 0 (every logit <= 0), log1p keeps a sum far
// below 1 that adding the 1 first would round away in f32.
fn lse(mx: f32, s: f32, nonempty: bool, add_one: bool) -> f32 {
    if (add_one) {
        if (mx == 0.0) {
            return log1p_f(s);
        }
        return mx + log(s + exp(-mx));
    }
    return select(0.0, mx + log(s), nonempty);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wg_index(wid, nwg);
    if (i >= P.n) {
        return;
    }
    let nc = P.cols;
    let gi = grp[i];
    let add_one = (P.flags & 4u) != 0u;
    // Pass 1: the maxima of both logit sets and whether each set is empty.
    var mp = -BIG;
    var mn = -BIG;
    var cp = 0u;
    var cn = 0u;
    for (var j = lid; j < nc; j += WG) {
        let k = kind(i, j, gi);
        if (k == 1u) {
            mp = max(mp, logit(true, e[i * nc + j]));
            cp = 1u;
        } else if (k == 2u) {
            mn = max(mn, logit(false, e[i * nc + j]));
            cn = 1u;
        }
    }
    mp = reduce_max_f(lid, mp);
    mn = reduce_max_f(lid, mn);
    let has_p = reduce_max_f(lid, f32(cp)) > 0.0;
    let has_n = reduce_max_f(lid, f32(cn)) > 0.0;
    if (add_one) {
        mp = max(mp, 0.0);
        mn = max(mn, 0.0);
    }
    // Pass 2: the sums of exp(logit - max).
    var sp = 0.0;
    var sn = 0.0;
    for (var j = lid; j < nc; j += WG) {
        let k = kind(i, j, gi);
        if (k == 1u) {
            sp += exp(logit(true, e[i * nc + j]) - mp);
        } else if (k == 2u) {
            sn += exp(logit(false, e[i * nc + j]) - mn);
        }
    }
    sp = reduce_sum_f(lid, sp);
    sn = reduce_sum_f(lid, sn);
    let a = lse(mp, sp, has_p, add_one);
    let b = lse(mn, sn, has_n, add_one);
    var loss = 0.0;
    var loss2 = 0.0;
    var ga = 0.0;
    var gb = 0.0;
    var c0 = 0u;
    var c1 = 0u;
    let m = mode();
    if (m == 0u) {
        loss = a / P.f0 + b / P.f1;
        ga = 1.0 / P.f0;
        gb = 1.0 / P.f1;
        c0 = select(0u, 1u, has_p);
        c1 = select(0u, 1u, has_n);
    } else if (m == 1u) {
        let z = a + b;
        if (z > 0.0) {
            loss = z;
            ga = 1.0;
            gb = 1.0;
            c0 = 1u;
        }
    } else if (m == 3u) {
        loss = a;
        loss2 = b;
        ga = P.f4;
        gb = P.f5;
        c0 = select(0u, 1u, has_p);
        c1 = select(0u, 1u, has_n);
    } else if (has_p && has_n) {
        let z = a + b;
        loss = softplus(z);
        ga = sigmoid(z);
        gb = ga;
        // softplus > 0: counted even where it underflows in f32 (as every backend does).
        c0 = 1u;
    }
    // Pass 3: the weights.
    for (var j = lid; j < nc; j += WG) {
        let k = kind(i, j, gi);
        let v = e[i * nc + j];
        var wv = 0.0;
        if (k == 1u && ga != 0.0) {
            wv = ga * exp(logit(true, v) - a) * dlogit(true, v);
        } else if (k == 2u && gb != 0.0) {
            wv = gb * exp(logit(false, v) - b) * dlogit(false, v);
        }
        e[i * nc + j] = weight_out(wv, v);
    }
    if (lid == 0u) {
        rstat[2u * i] = loss;
        rstat[2u * i + 1u] = loss2;
        rcnt[2u * i] = vec2<u32>(c0, 0u);
        rcnt[2u * i + 1u] = vec2<u32>(c1, 0u);
    }
}
