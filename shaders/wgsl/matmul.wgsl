// Stage 4b: G = alpha * (A B) + beta * diag(rs) X, tiled through workgroup memory.
// A is P.n x P.k (or, with P.flags & 1, stored transposed as P.k x P.n), B is P.k x P.m,
// X and G are P.n x P.m. alpha = P.f0, beta = P.f1 (beta = 0 never reads rs or X).
// Row r of the product lands in row P.off + r of G and reads row P.off + r of X (a slab of rows
// of a taller G, losses/slabs.rs); with P.flags & 2 it is added to what G holds.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> rs: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read_write> g: array<f32>;

// G[P.off + row, col] (+)= alpha * acc + beta * rs[row] * X[P.off + row, col].
fn write_out(row: u32, col: u32, acc: f32) {
    let m = P.m;
    let at = (P.off + row) * m + col;
    var v = P.f0 * acc;
    if (P.f1 != 0.0) {
        v += P.f1 * rs[row] * x[at];
    }
    if ((P.flags & 2u) != 0u) {
        v += g[at];
    }
    g[at] = v;
}

var<workgroup> ta: array<array<f32, 17>, 16>;
var<workgroup> tb: array<array<f32, 17>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row = wid.y * 16u + lid.y;
    let col = wid.x * 16u + lid.x;
    let n = P.n;
    let m = P.m;
    let k = P.k;
    let trans = (P.flags & 1u) != 0u;
    var acc = 0.0;
    for (var k0 = 0u; k0 < k; k0 += 16u) {
        // ta[r][t] = A[row0 + r, k0 + t]; tb[t][c] = B[k0 + t, col0 + c].
        let ar = wid.y * 16u + lid.y;
        let ak = k0 + lid.x;
        var va = 0.0;
        if (ar < n && ak < k) {
            if (trans) {
                va = a[ak * n + ar];
            } else {
                va = a[ar * k + ak];
            }
        }
        let bk = k0 + lid.y;
        let bc = wid.x * 16u + lid.x;
        var vb = 0.0;
        if (bk < k && bc < m) {
            vb = b[bk * m + bc];
        }
        ta[lid.y][lid.x] = va;
        tb[lid.y][lid.x] = vb;
        workgroupBarrier();
        for (var t = 0u; t < 16u; t++) {
            acc += ta[lid.y][t] * tb[t][lid.x];
        }
        workgroupBarrier();
    }
    if (row < n && col < m) {
        write_out(row, col, acc);
    }
}

// The same product without workgroup memory (for CPU adapters, see pairwise.wgsl `direct`).
@compute @workgroup_size(16, 16)
fn direct(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    let n = P.n;
    let m = P.m;
    let k = P.k;
    if (row >= n || col >= m) {
        return;
    }
    let trans = (P.flags & 1u) != 0u;
    var acc = 0.0;
    for (var t = 0u; t < k; t++) {
        var va: f32;
        if (trans) {
            va = a[t * n + row];
        } else {
            va = a[row * k + t];
        }
        acc += va * b[t * m + col];
    }
    write_out(row, col, acc);
}
