// Quadruplet term 2, steps 2-4 (one workgroup per row i of E, N x P.cols), with the sorted
// positive-pair lists of quad_keys: G (all positive values, [0, P.m)) and S (label c's values at
// [sb_c, sb_c + sl_c)). A positive pair x and a negative pair z form an active quadruplet when
// x + m2 > z and neither label of z is the positive pair's label (docs/ALGORITHMS.md).
// Negative pair (i, j), value z: the active positives are a suffix of each sorted list, from
// lo = #{x : x + m2 <= z}; q = (P.m - lo_G) - (sl_yi - lo_yi) - (sl_yj - lo_yj) (yi != yj, so
// the two label lists are disjoint). With P.flags & 2 (build) it also drops a +1 at lo_G in
// hist[0..P.m] and at lo_y in hist[H + sb_y ..] (H = P.m + 1) for both labels, and writes
// row slot 0: -sum q z and sum q.
// Positive pair (i, j) of label c, value x, after hist was scanned (exclusive): with rg and rs its
// first ranks in G and in S_c, the negatives active for it number
// hist[rg + 1] - (hist[H + sb_c + rs + 1] - hist[H + sb_c]): all those whose lower bound is at or
// before it, less those with label c. With P.flags & 4 it writes row slot 1: sum cnt (x + m2),
// sum cnt. With P.flags & 1 it writes term 2's weights P.f2 * (cnt or -q) of the rows
// [P.off, P.off + workgroups) to the chunk buffer `add` (row i at (i - P.off) * M), which the
// triplet kernel's last pass adds to term 1's in place (losses/quadruplet.rs). With P.flags & 8
// `add` holds term 1's weights of every row instead (computed over a copy of E) and it writes
// E = P.f1 * add + weight_out(P.f2 * (cnt or -q)) in place (each entry by the thread that read it).
// aux as in quad_keys; P.n = N, P.cols = M, P.k = G, P.m = positive pairs, P.f0 = m2. Row i of the
// call is row i - P.row0 of E (a slab of rows from P.row0, or all of them); rstat and rcnt hold
// every row of the call.

@group(0) @binding(1) var<storage, read_write> e: array<f32>;
@group(0) @binding(2) var<storage, read_write> add: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<u32>;
@group(0) @binding(4) var<storage, read> vals_g: array<f32>;
@group(0) @binding(5) var<storage, read> vals_s: array<f32>;
@group(0) @binding(6) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(7) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(8) var<storage, read_write> rcnt: array<vec2<u32>>;

// #{x in G[0..len) : x < t}
fn below_g(len: u32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (vals_g[mid] < t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

fn below_s(base: u32, len: u32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (vals_s[base + mid] < t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// #{x in G[0..len) : x + m <= z}: the first positive active with the negative value z.
fn inactive_g(len: u32, m: f32, z: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (vals_g[mid] + m <= z) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

fn inactive_s(base: u32, len: u32, m: f32, z: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (vals_s[base + mid] + m <= z) {
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
    let i = P.off + wg_index(wid, nwg);
    if (i >= P.n) {
        return;
    }
    let n = P.n;
    let nc = P.cols;
    let si = aux[n + nc + i];
    let gi = aux[i];
    let seg = 2u * n + nc;
    let npos = P.m;
    let h = npos + 1u;
    let m2 = P.f0;
    let write = (P.flags & 1u) != 0u;
    let build = (P.flags & 2u) != 0u;
    let pos_stats = (P.flags & 4u) != 0u;
    let combine = (P.flags & 8u) != 0u;
    let weights = write || combine;
    let sbi = aux[seg + 2u * gi];
    let sli = aux[seg + 2u * gi + 1u];
    var loss = 0.0;
    var cnt = vec2<u32>(0u, 0u);
    for (var j = lid; j < nc; j += WG) {
        var w2 = 0.0;
        let at = (i - P.row0) * nc + j;
        let v = e[at];
        if (j != si) {
            let gj = aux[n + j];
            if (gj == gi && (pos_stats || weights)) {
                let rg = below_g(npos, v);
                let rs = below_s(sbi, sli, v);
                let own = atomicLoad(&hist[h + sbi + rs + 1u]) - atomicLoad(&hist[h + sbi]);
                let c = atomicLoad(&hist[rg + 1u]) - own;
                loss += f32(c) * (v + m2);
                cnt = add64u(cnt, c);
                w2 = f32(c);
            } else if (gj != gi && (build || weights)) {
                let sbj = aux[seg + 2u * gj];
                let slj = aux[seg + 2u * gj + 1u];
                let lo = inactive_g(npos, m2, v);
                let lo_i = inactive_s(sbi, sli, m2, v);
                let lo_j = inactive_s(sbj, slj, m2, v);
                let q = (npos - lo) - (sli - lo_i) - (slj - lo_j);
                if (build) {
                    if (lo < npos) {
                        atomicAdd(&hist[lo], 1u);
                    }
                    if (lo_i < sli) {
                        atomicAdd(&hist[h + sbi + lo_i], 1u);
                    }
                    if (lo_j < slj) {
                        atomicAdd(&hist[h + sbj + lo_j], 1u);
                    }
                    loss -= f32(q) * v;
                    cnt = add64u(cnt, q);
                }
                w2 = -f32(q);
            }
        }
        if (write) {
            add[(i - P.off) * nc + j] = P.f2 * w2;
        }
        if (combine) {
            e[at] = P.f1 * add[at] + weight_out(P.f2 * w2, v);
        }
    }
    let sl = reduce_sum_f(lid, loss);
    let sc = reduce_sum_u64(lid, cnt);
    if (lid == 0u && (build || pos_stats)) {
        let slot = select(0u, 1u, pos_stats);
        rstat[2u * i + slot] = sl;
        rcnt[2u * i + slot] = sc;
    }
}
