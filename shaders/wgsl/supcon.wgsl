// Stage 3, SupCon (PML SupConLoss), one workgroup per anchor row i of E (N x N; E = distance or
// -similarity). With u = -e / tau (P.f0 = 1/tau), for a row with |P(i)| >= 1 positives:
//   L_i = LSE_{j != i} u_ij - (1/|P(i)|) sum_{p in P(i)} u_ip      (rows without positives: 0)
// Gradient (before the 1/(tau c) of AvgNonZero, applied by the chain kernel), W = dL/de = -tau dL/du:
//   W[i,j] = [j in P(i)] / |P(i)| - softmax_{j != i}(u_i.)_j.
// c = #{L_i > 0} = the rows with a positive (the host runs this kernel only when the batch has a
// negative, so N >= 3 and L_i > 0 exactly; counted structurally, never from the rounded loss).
// With a reference set (E is N x M, P.cols = M, the row's own copy replaces the diagonal) a row can
// have positives and no negative: c = #{|P(i)| >= 1 and (a negative or |P(i)| >= 2)}
// (docs/REFERENCE_SETS.md 3.8).
// Per row: rstat = [L_i, 0], rcnt = [row counted, 0].

// In place: the weights overwrite E (weight_out in common.wgsl); the last pass reads each entry
// just before it writes it.
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
    // Pass 1: the row maximum of u over j != i and the number of positives.
    var mx = -BIG;
    var np = 0u;
    var nall = 0u;
    for (var j = lid; j < nc; j += WG) {
        if (j != si) {
            mx = max(mx, -e[i * nc + j] * P.f0);
            nall += 1u;
            if (grp[n + j] == gi) {
                np += 1u;
            }
        }
    }
    mx = reduce_max_f(lid, mx);
    let npos = f32(reduce_sum_u64(lid, vec2<u32>(np, 0u)).x);
    let nneg = f32(reduce_sum_u64(lid, vec2<u32>(nall, 0u)).x) - npos;
    // Pass 2: LSE = mx + log(t + r), t = #{u = mx}, r = sum over u < mx of e^(u - mx), so that
    // log(1 + r) keeps tiny r; q = sum_p (mx - u_p) >= 0. L_i = log(t + r) + q / |P| is then a sum
    // of non-negative terms, free of cancellation.
    var r = 0.0;
    var t = 0.0;
    var q = 0.0;
    for (var j = lid; j < nc; j += WG) {
        if (j != si) {
            let u = -e[i * nc + j] * P.f0 - mx;
            if (u < 0.0) {
                r += exp(u);
            } else {
                t += 1.0;
            }
            if (grp[n + j] == gi) {
                q -= u;
            }
        }
    }
    r = reduce_sum_f(lid, r);
    t = reduce_sum_f(lid, t);
    q = reduce_sum_f(lid, q);
    var log_s = log(max(t + r, 1e-30));
    if (t == 1.0) {
        log_s = log1p_f(r);
    }
    var loss = 0.0;
    // A row with one positive and no negative has L_i = 0 exactly (and zero weights): not counted.
    let live = npos > 0.0 && (nneg > 0.0 || npos >= 2.0);
    if (live) {
        loss = log_s + q / npos;
    }
    let lse = mx + log_s;
    // Pass 3: W[i,j] = [j in P(i)] / |P(i)| - softmax_j; for the lone positive at the strict
    // maximum, 1 - 1 / (1 + r) = r / (1 + r) directly.
    let lone = npos == 1.0 && q == 0.0 && t == 1.0;
    for (var j = lid; j < nc; j += WG) {
        var wv = 0.0;
        let v = e[i * nc + j];
        if (live && j != si) {
            let pos = grp[n + j] == gi;
            if (pos && lone) {
                wv = r / (1.0 + r);
            } else {
                wv = select(0.0, 1.0 / npos, pos) - exp(-v * P.f0 - lse);
            }
        }
        e[i * nc + j] = weight_out(wv, v);
    }
    if (lid == 0u) {
        rstat[2u * i] = select(0.0, loss, live);
        rstat[2u * i + 1u] = 0.0;
        rcnt[2u * i] = vec2<u32>(select(0u, 1u, live), 0u);
        rcnt[2u * i + 1u] = vec2<u32>(0u, 0u);
    }
}
