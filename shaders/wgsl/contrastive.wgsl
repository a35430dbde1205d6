// Stage 3, contrastive: one workgroup per anchor row i of E (N x M, E = distance or -similarity).
// Positive pair: relu(e - P.f0); negative pair: relu(P.f1 - e) (margins already sign-adjusted for
// similarities). Writes raw weights (+1 / -1 for active pairs, 0 otherwise); the AvgNonZero
// denominators are applied later by the chain kernel. Per row: loss sums and active counts.
// In place: the weights overwrite E (weight_out in common.wgsl).

@group(0) @binding(1) var<storage, read_write> e: array<f32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(4) var<storage, read_write> rcnt: array<vec2<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wg_index(wid, nwg);
    if (i >= P.n) {
        return;
    }
    let n = P.n;
    let nc = P.cols;
    let gi = grp[i];
    let si = grp[n + nc + i];
    var lp = 0.0;
    var ln = 0.0;
    var cp = vec2<u32>(0u, 0u);
    var cn = vec2<u32>(0u, 0u);
    for (var j = lid; j < nc; j += WG) {
        let v = e[i * nc + j];
        var wv = 0.0;
        if (j != si) {
            if (grp[n + j] == gi) {
                let l = v - P.f0;
                if (l > 0.0) {
                    lp += l;
                    cp = add64u(cp, 1u);
                    wv = 1.0;
                }
            } else {
                let l = P.f1 - v;
                if (l > 0.0) {
                    ln += l;
                    cn = add64u(cn, 1u);
                    wv = -1.0;
                }
            }
        }
        e[i * nc + j] = weight_out(wv, v);
    }
    let slp = reduce_sum_f(lid, lp);
    let sln = reduce_sum_f(lid, ln);
    let scp = reduce_sum_u64(lid, cp);
    let scn = reduce_sum_u64(lid, cn);
    if (lid == 0u) {
        rstat[2u * i] = slp;
        rstat[2u * i + 1u] = sln;
        rcnt[2u * i] = scp;
        rcnt[2u * i + 1u] = scn;
    }
}
