// Stage 3, n-pair: E holds anchors P.off .. P.off + P.n against all k = P.cols positives (all k
// anchors, or a slab of them: losses/npair.rs); E = distance or -similarity, so the logits are
// S = -E. Per anchor row i (the call's anchor ig = P.off + i, whose own positive is column ig):
// logsumexp_j S_ij - S_i,ig; W = dL/dE = -(softmax - e_ig) / k. One workgroup per row.
// P.f0 = 1/k; rstat holds every anchor's loss.

@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstat: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wg_index(wid, nwg);
    if (i >= P.n) {
        return;
    }
    let k = P.cols;
    let ig = P.off + i;
    var mx = -BIG;
    for (var j = lid; j < k; j += WG) {
        mx = max(mx, -e[i * k + j]);
    }
    let rmx = reduce_max_f(lid, mx);
    var s = 0.0;
    for (var j = lid; j < k; j += WG) {
        s += exp(-e[i * k + j] - rmx);
    }
    let rs = reduce_sum_f(lid, s);
    for (var j = lid; j < k; j += WG) {
        let sm = exp(-e[i * k + j] - rmx) / rs;
        let delta = select(0.0, 1.0, j == ig);
        w[i * k + j] = -(sm - delta) * P.f0;
    }
    if (lid == 0u) {
        rstat[ig] = rmx + log(rs) + e[i * k + ig];
    }
}
