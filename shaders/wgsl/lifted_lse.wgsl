// Stage 3a, lifted structure: per row i, lse_i = logsumexp over negatives k of (P.f0 - e_ik)
// (P.f0 = sign-adjusted neg_margin) over the row's M columns (P.cols); -BIG when the row has no
// negative. Workgroup per row; row i of E is row P.off + i of the call (a slab of rows).

@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;

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
    var mx = -BIG;
    for (var j = lid; j < nc; j += WG) {
        if (grp[n + j] != gi) {
            mx = max(mx, P.f0 - e[i * nc + j]);
        }
    }
    let rmx = reduce_max_f(lid, mx);
    var s = 0.0;
    if (rmx > -BIG) {
        for (var j = lid; j < nc; j += WG) {
            if (grp[n + j] != gi) {
                s += exp(P.f0 - e[i * nc + j] - rmx);
            }
        }
    }
    let rs = reduce_sum_f(lid, s);
    if (lid == 0u) {
        lse[P.off + i] = select(-BIG, rmx + log(rs), rmx > -BIG);
    }
}
