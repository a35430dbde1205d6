// Stage 4a: turn W = dL/dE (E = distance, or minus similarity) into the multiplier M' of the
// gradient products. Entries are first scaled by sign (P.f0 for positive entries, P.f1 for negative
// ones: the AvgNonZero denominators of losses whose weights were written as raw counts).
// Mode P.flags: 0 euclidean (M' = M / D, 0 where D = 0), 1 squared euclidean (M' = 2 M),
// 2 similarity (M' = -M, since E = -S), 3 euclidean with W written in place over E and already
// divided by the distance there (M' = M; `e` is then a stand-in that is never read).
// `square`: M = W + W^T in place (N x N, P.n = N); one thread owns the pair (i, j), (j, i).
// `cross`: elementwise on an nq x nr matrix (P.n = nq, P.m = nr), no transpose.

@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> e: array<f32>;

fn scaled(v: f32) -> f32 {
    return v * select(P.f1, P.f0, v > 0.0);
}

fn chained(m: f32, dist: f32) -> f32 {
    let mode = P.flags;
    if (mode == 0u) {
        return select(0.0, m / dist, dist > 0.0);
    } else if (mode == 1u) {
        return 2.0 * m;
    } else if (mode == 3u) {
        return m;
    }
    return -m;
}

@compute @workgroup_size(16, 16)
fn square(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y;
    let j = gid.x;
    let n = P.n;
    if (i >= n || j >= n || j < i) {
        return;
    }
    if (i == j) {
        w[i * n + i] = 0.0;
        return;
    }
    let m = scaled(w[i * n + j]) + scaled(w[j * n + i]);
    let v = chained(m, e[i * n + j]);
    w[i * n + j] = v;
    w[j * n + i] = v;
}

@compute @workgroup_size(256)
fn cross(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = wg_index(wid, nwg) * WG + lid;
    if (t >= P.n * P.m) {
        return;
    }
    w[t] = chained(scaled(w[t]), e[t]);
}
