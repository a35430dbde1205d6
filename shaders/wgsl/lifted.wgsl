// Stage 3b, lifted structure, one workgroup per batch row k of E (N x M, P.cols = M). A positive
// pair (i, j), j a column of row i other than its excluded one, has
// L_ij = logaddexp(lse_i, lse'_j) (0 when both are empty), J = L_ij + e_ij - P.f1 (sign-adjusted
// pos_margin), loss relu(J)^2 / 2, g = dL/dJ = relu(J) * P.f2 with P.f2 = 1 / (ordered positive
// pairs). lse'_j is row j's own lse when j < N and j != i (PML's index aliasing, see
// docs/REFERENCE_SETS.md 3.6; always, in the square case), else empty.
// Row k writes W[k,j] = g_kj for its positives and, for its negatives l,
// W[k,l] = -exp(P.f0 - e_kl - lse_k) * c_k with c_k = sum over the pairs whose LSE holds row k's
// negatives of g exp(lse_k - L): its own pairs (k, j) and the pairs (i, k) aliased to it.
// Square case (P.flags & 1 == 0): J is symmetric, so the aliased pairs give the same sum again
// (c_k = 2 x own). Reference set (P.flags & 1): the pairs (i, k) are summed from column k by the
// `alias_sums` entry point into acoef[k], dispatched before `main`, because `main` works in
// place: the weights overwrite E (weight_out in common.wgsl), so column k is gone once other rows
// are done.
// Slabs of rows (losses/slabs.rs): E holds rows P.off .. P.off + P.n of the call's P.k rows (grp
// packed for those rows); lse and acoef hold every row's. `alias_sums` then runs once per slab
// before any `main`, each adding its rows' share to acoef (the first slab, P.off = 0, writes).

@group(0) @binding(1) var<storage, read_write> e: array<f32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> acoef: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(6) var<storage, read_write> rcnt: array<vec2<u32>>;

// log(exp(a) + exp(b)) with -BIG meaning an empty set; 0 when both are empty.
fn lae(a: f32, b: f32) -> f32 {
    let mx = max(a, b);
    if (mx <= -BIG) {
        return 0.0;
    }
    var s = 0.0;
    if (a > -BIG) {
        s += exp(a - mx);
    }
    if (b > -BIG) {
        s += exp(b - mx);
    }
    return mx + log(s);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = wg_index(wid, nwg);
    if (k >= P.n) {
        return;
    }
    let n = P.n;
    let nc = P.cols;
    let rect = (P.flags & 1u) != 0u;
    let gk = grp[k];
    let sk = grp[n + nc + k];
    // Row k of E is row kg of the call.
    let kg = P.off + k;
    let lk = lse[kg];
    var loss = 0.0;
    var cnt = vec2<u32>(0u, 0u);
    var coef = 0.0;
    for (var j = lid; j < nc; j += WG) {
        if (grp[n + j] != gk) {
            continue;
        }
        var wv = 0.0;
        let v = e[k * nc + j];
        if (j != sk) {
            var lj = -BIG;
            if (!rect) {
                // Every column is a row, and j != sk is j != kg.
                lj = lse[j];
            } else if (j < P.k && j != kg) {
                lj = lse[j];
            }
            let big_l = lae(lk, lj);
            let jv = big_l + v - P.f1;
            if (jv > 0.0) {
                loss += 0.5 * jv * jv;
                cnt = add64u(cnt, 1u);
                let g = jv * P.f2;
                wv = g;
                if (lk > -BIG) {
                    coef += g * exp(lk - big_l);
                }
            }
        }
        e[k * nc + j] = weight_out(wv, v);
    }
    var c = reduce_sum_f(lid, coef);
    if (!rect) {
        c = 2.0 * c;
    } else {
        c += acoef[kg];
    }
    for (var l = lid; l < nc; l += WG) {
        if (grp[n + l] != gk) {
            let v = e[k * nc + l];
            var wv = 0.0;
            if (c != 0.0) {
                wv = -c * exp(P.f0 - v - lk);
            }
            e[k * nc + l] = weight_out(wv, v);
        }
    }
    let sl = reduce_sum_f(lid, loss);
    let sc = reduce_sum_u64(lid, cnt);
    if (lid == 0u) {
        rstat[2u * k] = sl;
        rstat[2u * k + 1u] = 0.0;
        rcnt[2u * k] = sc;
        rcnt[2u * k + 1u] = vec2<u32>(0u, 0u);
    }
}

// Reference set, before `main`: acoef[k] = sum over the pairs (i, k) whose LSE aliases row k's
// negatives (column k, rows i != k of k's column label, k not their excluded column) of
// g exp(lse_k - L); 0 when k is not a batch row index < M or row k has no negative. One
// workgroup per row k of the call (P.k of them), summing over the rows i of E.
@compute @workgroup_size(256)
fn alias_sums(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = wg_index(wid, nwg);
    if (k >= P.k) {
        return;
    }
    let n = P.n;
    let nc = P.cols;
    let lk = lse[k];
    var coef = 0.0;
    if (k < nc && lk > -BIG) {
        let ck = grp[n + k];
        for (var il = lid; il < n; il += WG) {
            let i = P.off + il;
            if (i != k && grp[il] == ck && grp[n + nc + il] != k) {
                let big_l = lae(lse[i], lk);
                let jv = big_l + e[il * nc + k] - P.f1;
                if (jv > 0.0) {
                    coef += jv * P.f2 * exp(lk - big_l);
                }
            }
        }
    }
    let c = reduce_sum_f(lid, coef);
    if (lid == 0u) {
        if (P.off == 0u) {
            acoef[k] = c;
        } else {
            acoef[k] = acoef[k] + c;
        }
    }
}
