// Quadruplet term 2, step 3: per row i (one workgroup), with the sorted lists of quad_keys:
// positive pair (i, j), t = e_ij + m2: active negative pairs (k, l) with neither label = y_i number
// #{all negative pairs < t} - #{those whose row label is y_i} - #{those whose column label is y_i}
// (the two sets are disjoint; in the square case E is symmetric and they have the same size, so
// the second is 2 x the first; with a reference set, P.flags & 2, it is read from list B's second
// half).
// Negative pair (i, j): active positive pairs (a, p) with y_a not in {y_i, y_j} number
// #{p + m2 > e_ij} over all positive pairs minus those of label y_i and of label y_j.
// Loss sum = sum_pos cnt * t - sum_neg q * e. With P.flags & 1, writes
// W = P.f1 * W + P.f2 * (cnt or -q) (term-1 weights scaled, term-2 weights added).
// P.n = N, P.m = number of positive-pair entries, P.k = number of negative-pair entries,
// P.f0 = m2, P.cols = M (E is N x M). offs holds per label [pos offset, pos len, neg offset, neg len,
// neg-by-column offset, neg-by-column len] in list B.

@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read> grp: array<u32>;
@group(0) @binding(4) var<storage, read> va: array<f32>;
@group(0) @binding(5) var<storage, read> vb: array<f32>;
@group(0) @binding(6) var<storage, read> offs: array<u32>;
@group(0) @binding(7) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(8) var<storage, read_write> rcnt: array<vec2<u32>>;

fn less_a(base: u32, len: u32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (va[base + mid] < t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

fn less_b(base: u32, len: u32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (vb[base + mid] < t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// #{p in A[base..base+len) : p + m <= t}
fn shift_le_a(base: u32, len: u32, m: f32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (va[base + mid] + m <= t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

fn shift_le_b(base: u32, len: u32, m: f32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (vb[base + mid] + m <= t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wg_index(wid, nwg);
    if (i >= P.n) {
        return;
    }
    let n = P.n;
    let nc = P.cols;
    let rect = (P.flags & 2u) != 0u;
    let si = grp[n + nc + i];
    let m2 = P.f0;
    let npos_all = P.m;
    let nneg_all = P.k;
    let gi = grp[i];
    let write = (P.flags & 1u) != 0u;
    var loss = 0.0;
    var cnt = vec2<u32>(0u, 0u);
    for (var j = lid; j < nc; j += WG) {
        var w2 = 0.0;
        if (j != si) {
            let v = e[i * nc + j];
            let gj = grp[n + j];
            if (gj == gi) {
                let t = v + m2;
                let all = less_a(npos_all, nneg_all, t);
                let own = less_b(offs[6u * gi + 2u], offs[6u * gi + 3u], t);
                var own_col = own;
                if (rect) {
                    own_col = less_b(offs[6u * gi + 4u], offs[6u * gi + 5u], t);
                }
                let c = all - own - own_col;
                loss += f32(c) * t;
                cnt = add64u(cnt, c);
                w2 = f32(c);
            } else {
                let all = npos_all - shift_le_a(0u, npos_all, m2, v);
                let li = offs[6u * gi + 1u] - shift_le_b(offs[6u * gi], offs[6u * gi + 1u], m2, v);
                let lj = offs[6u * gj + 1u] - shift_le_b(offs[6u * gj], offs[6u * gj + 1u], m2, v);
                let q = all - li - lj;
                loss -= f32(q) * v;
                w2 = -f32(q);
            }
        }
        if (write) {
            w[i * nc + j] = P.f1 * w[i * nc + j] + P.f2 * w2;
        }
    }
    let sl = reduce_sum_f(lid, loss);
    let sc = reduce_sum_u64(lid, cnt);
    if (lid == 0u) {
        rstat[2u * i] = sl;
        rstat[2u * i + 1u] = 0.0;
        rcnt[2u * i] = sc;
        rcnt[2u * i + 1u] = vec2<u32>(0u, 0u);
    }
}
