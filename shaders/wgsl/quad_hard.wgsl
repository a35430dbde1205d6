// Stage 3a, quadruplet with hard mining: the per-row candidates, one workgroup per row k of E
// (N x N; E = distance or -similarity), every arg-min / arg-max taking the lowest index on ties:
//   p_k  = argmax_{p in P(k)} e_kp             (the anchor's farthest positive)
//   l1_k = argmin_{l in N(k)} e_kl             (its nearest negative; c1 = y_l1)
//   l2_k = argmin_{l : y_l not in {y_k, c1}} e_kl
// The host then finds, per anchor class c, the nearest ordered negative pair (k, l) with
// y_k, y_l != c: row k offers (e_kl1, l1) when c1 != c and (e_kl2, l2) otherwise; the minimum over
// rows (lowest k on ties) is the pair. Loss terms and weights are formed on the host from these
// O(N) values (see losses/quad_hard.rs).
// Output per row: idx[4k..4k+3] = (p, l1, l2, 0) (0xffffffff = none), val = the matching e values.
// E is N x M (P.cols = M; columns from a reference set). With P.flags & 4 the row's excluded column
// competes for p_k (the host then drops the anchor when it wins, docs/REFERENCE_SETS.md 3.10).

@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> idx: array<u32>;
@group(0) @binding(4) var<storage, read_write> val: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = wg_index(wid, nwg);
    if (k >= P.n) {
        return;
    }
    let n = P.n;
    let nc = P.cols;
    let gk = grp[k];
    let sk = grp[n + nc + k];
    let self_competes = (P.flags & 4u) != 0u;
    let none = 0xffffffffu;
    var bp = -BIG;
    var ip = none;
    var bn = -BIG;
    var inn = none;
    for (var j = lid; j < nc; j += WG) {
        if (j == sk && !self_competes) {
            continue;
        }
        let v = e[k * nc + j];
        if (grp[n + j] == gk) {
            if (ip == none || v > bp) {
                bp = v;
                ip = j;
            }
        } else if (inn == none || -v > bn) {
            bn = -v;
            inn = j;
        }
    }
    let p = reduce_argmax(lid, bp, ip);
    let l1 = reduce_argmax(lid, bn, inn);
    var c1 = gk;
    if (l1 != none) {
        c1 = grp[n + l1];
    }
    var b2 = -BIG;
    var i2 = none;
    for (var j = lid; j < nc; j += WG) {
        let g = grp[n + j];
        if (g != gk && g != c1) {
            let v = -e[k * nc + j];
            if (i2 == none || v > b2) {
                b2 = v;
                i2 = j;
            }
        }
    }
    let l2 = reduce_argmax(lid, b2, i2);
    if (lid == 0u) {
        let picked = vec3<u32>(p, l1, l2);
        for (var t = 0u; t < 3u; t++) {
            idx[4u * k + t] = picked[t];
            var v = 0.0;
            if (picked[t] != none) {
                v = e[k * nc + picked[t]];
            }
            val[4u * k + t] = v;
        }
        idx[4u * k + 3u] = 0u;
        val[4u * k + 3u] = 0.0;
    }
}
