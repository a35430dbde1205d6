// Stage 3, smooth (softplus) triplet over all (P.flags & 1 == 0) or semihard (P.flags & 1)
// triplets. Softplus is not piecewise linear, so there is no counting shortcut: one workgroup per
// anchor loops over positives x negatives (O(M^2) per anchor, E is N x M, no triplet storage).
// Writes raw weights W[a,p] = sum_n sigmoid(v), W[a,n] = -sum_p sigmoid(v). P.f0 = margin.
// In place (weight_out in common.wgsl): every entry needs the whole row, so the row is first
// copied to the workgroup's scratch slot (P.k floats, P.k >= M) and read from there. One
// workgroup per anchor of the chunk starting at row P.off (the slots bound the scratch).

@group(0) @binding(1) var<storage, read_write> e: array<f32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(5) var<storage, read_write> rcnt: array<vec2<u32>>;

fn mined(ep: f32, en: f32) -> bool {
    if ((P.flags & 1u) == 0u) {
        return true;
    }
    let gap = en - ep;
    return gap > 0.0 && gap <= P.f0;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let slot = wg_index(wid, nwg);
    let i = P.off + slot;
    if (i >= P.n) {
        return;
    }
    let n = P.n;
    let nc = P.cols;
    let m = P.f0;
    let gi = grp[i];
    let si = grp[n + nc + i];
    let row = slot * P.k;
    for (var j = lid; j < nc; j += WG) {
        scratch[row + j] = e[i * nc + j];
    }
    storageBarrier();
    var loss = 0.0;
    var cnt = vec2<u32>(0u, 0u);
    for (var j = lid; j < nc; j += WG) {
        var wv = 0.0;
        let v = scratch[row + j];
        if (j != si) {
            let pos = grp[n + j] == gi;
            for (var o = 0u; o < nc; o++) {
                if (o == si || (grp[n + o] == gi) == pos) {
                    continue;
                }
                let u = scratch[row + o];
                if (pos) {
                    if (mined(v, u)) {
                        let z = v - u + m;
                        loss += softplus(z);
                        cnt = add64u(cnt, 1u);
                        wv += sigmoid(z);
                    }
                } else if (mined(u, v)) {
                    wv -= sigmoid(u - v + m);
                }
            }
        }
        e[i * nc + j] = weight_out(wv, v);
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
