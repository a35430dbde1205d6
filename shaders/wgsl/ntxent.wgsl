// Stage 3, NT-Xent (PML NTXentLoss), one workgroup per anchor row a of E (N x N; E = distance or
// -similarity). With u = -e / tau (P.f0 = 1/tau) and LS_a = LSE_{n in N(a)} u_an (-inf when a has
// no negative), every positive p in P(a) gives
//   l_ap = log(e^{u_ap} + sum_n e^{u_an}) - u_ap = softplus(LS_a - u_ap)   (0 without negatives).
// Gradient (before the 1/(tau P) of the Mean over the P ordered positive pairs, applied by the chain
// kernel), W = dL/de = -tau dL/du:
//   W[a,p] = sigmoid(LS_a - u_ap)          (= 1 - q_ap)
//   W[a,n] = -softmax_N(u_a.)_n * sum_p sigmoid(LS_a - u_ap)
// Per row: rstat = [sum_p l_ap, 0], rcnt = [|P(a)|, 0]. With a reference set E is N x M (P.cols = M)
// and the row's own copy takes the place of the diagonal. In place: the weights overwrite E
// (weight_out in common.wgsl); positives and negatives are rewritten by separate loops, each
// reading an entry just before writing it.

@group(0) @binding(1) var<storage, read_write> e: array<f32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(4) var<storage, read_write> rcnt: array<vec2<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = wg_index(wid, nwg);
    if (a >= P.n) {
        return;
    }
    let n = P.n;
    let nc = P.cols;
    let ga = grp[a];
    let sa = grp[n + nc + a];
    // LS_a over the negatives.
    var mx = -BIG;
    for (var j = lid; j < nc; j += WG) {
        if (grp[n + j] != ga) {
            mx = max(mx, -e[a * nc + j] * P.f0);
        }
    }
    mx = reduce_max_f(lid, mx);
    let has_neg = mx > -BIG;
    var s = 0.0;
    if (has_neg) {
        for (var j = lid; j < nc; j += WG) {
            if (grp[n + j] != ga) {
                s += exp(-e[a * nc + j] * P.f0 - mx);
            }
        }
    }
    s = reduce_sum_f(lid, s);
    let ls = mx + log(max(s, 1e-30));
    // Positives: losses, weights and the sum of their sigmoids.
    var loss = 0.0;
    var sig = 0.0;
    var cnt = 0u;
    for (var j = lid; j < nc; j += WG) {
        if (j != sa && grp[n + j] == ga) {
            cnt += 1u;
            var wv = 0.0;
            let v = e[a * nc + j];
            if (has_neg) {
                let t = ls + v * P.f0;
                loss += softplus(t);
                wv = sigmoid(t);
                sig += wv;
            }
            e[a * nc + j] = weight_out(wv, v);
        }
    }
    let rsig = reduce_sum_f(lid, sig);
    let rloss = reduce_sum_f(lid, loss);
    let rcnt_p = reduce_sum_u64(lid, vec2<u32>(cnt, 0u));
    // Negatives and the diagonal.
    for (var j = lid; j < nc; j += WG) {
        if (grp[n + j] != ga) {
            let v = e[a * nc + j];
            e[a * nc + j] = weight_out(-exp(-v * P.f0 - ls) * rsig, v);
        } else if (j == sa) {
            e[a * nc + j] = 0.0;
        }
    }
    if (lid == 0u) {
        rstat[2u * a] = rloss;
        rstat[2u * a + 1u] = 0.0;
        rcnt[2u * a] = rcnt_p;
        rcnt[2u * a + 1u] = vec2<u32>(0u, 0u);
    }
}
