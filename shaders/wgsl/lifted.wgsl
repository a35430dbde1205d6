// Stage 3b, lifted structure, one workgroup per row j. For each positive partner i:
// L_ij = log(exp(lse_i) + exp(lse_j)), J = L_ij + e_ij - P.f1 (sign-adjusted pos_margin),
// loss relu(J)^2 / 2, g = dL/dJ = relu(J) * P.f2 with P.f2 = 1 / (ordered positive pairs).
// W[j,i] = g_ji; W[j,l] = -exp(P.f0 - e_jl - lse_j) * sum_i 2 g_ij exp(lse_j - L_ij) for negatives l
// (both orderings of a pair put softmax weight on the row's negatives; J is symmetric).

@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read> grp: array<u32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(6) var<storage, read_write> rcnt: array<vec2<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = wg_index(wid, nwg);
    if (j >= P.n) {
        return;
    }
    let n = P.n;
    let gj = grp[j];
    let lj = lse[j];
    var loss = 0.0;
    var cnt = vec2<u32>(0u, 0u);
    var coef = 0.0;
    for (var i = lid; i < n; i += WG) {
        var wv = 0.0;
        if (i != j && grp[i] == gj) {
            let li = lse[i];
            let mx = max(li, lj);
            if (mx > -BIG) {
                var s = 0.0;
                if (li > -BIG) {
                    s += exp(li - mx);
                }
                if (lj > -BIG) {
                    s += exp(lj - mx);
                }
                let big_l = mx + log(s);
                let jv = big_l + e[j * n + i] - P.f1;
                if (jv > 0.0) {
                    loss += 0.5 * jv * jv;
                    cnt = add64u(cnt, 1u);
                    let g = jv * P.f2;
                    wv = g;
                    if (lj > -BIG) {
                        coef += 2.0 * g * exp(lj - big_l);
                    }
                }
            }
        }
        if (grp[i] == gj) {
            w[j * n + i] = wv;
        }
    }
    let c = reduce_sum_f(lid, coef);
    for (var l = lid; l < n; l += WG) {
        if (grp[l] != gj) {
            var wv = 0.0;
            if (c != 0.0) {
                wv = -c * exp(P.f0 - e[j * n + l] - lj);
            }
            w[j * n + l] = wv;
        }
    }
    let sl = reduce_sum_f(lid, loss);
    let sc = reduce_sum_u64(lid, cnt);
    if (lid == 0u) {
        rstat[2u * j] = sl;
        rstat[2u * j + 1u] = 0.0;
        rcnt[2u * j] = sc;
        rcnt[2u * j + 1u] = vec2<u32>(0u, 0u);
    }
}
