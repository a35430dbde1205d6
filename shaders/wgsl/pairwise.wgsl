// Stage 2: the nq x nr matrix between rows of `a` and rows of `b` in expanded form
// |a|^2 + |b|^2 - 2 a.b, as a matrix product tiled through workgroup memory (16 x 16 outputs per
// workgroup, 16-wide slabs of the shared dimension). The accumulation order does not depend on
// which operand is which, so the square case is exactly symmetric.
// P.n = nq, P.m = nr, P.d = width, P.flags = mode: 0 euclidean, 1 squared euclidean, 2 dot,
// 3 negated dot (the "distance-like" form of a similarity used by the loss kernels).
// P.off = 1 when `a` and `b` are the same rows: the distance diagonal is then exactly 0.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> sqa: array<f32>;
@group(0) @binding(4) var<storage, read> sqb: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> ta: array<array<f32, 17>, 16>;
var<workgroup> tb: array<array<f32, 17>, 16>;

// The expanded form loses relative precision when |a - b|^2 is much smaller than |a|^2 + |b|^2
// (cancellation: its error is about 1e-7 (|a|^2 + |b|^2)), which the euclidean gradient's 1/d
// amplifies. Such pairs are rare; for them the squared distance is recomputed directly.
fn refine(row: u32, col: u32, v: f32) -> f32 {
    if (v >= 1e-2 * (sqa[row] + sqb[col])) {
        return v;
    }
    let d = P.d;
    var s = 0.0;
    for (var t = 0u; t < d; t++) {
        let diff = a[row * d + t] - b[col * d + t];
        s += diff * diff;
    }
    return s;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row = wid.y * 16u + lid.y;
    let col = wid.x * 16u + lid.x;
    let d = P.d;
    var acc = 0.0;
    for (var k0 = 0u; k0 < d; k0 += 16u) {
        let kk = k0 + lid.x;
        let ar = wid.y * 16u + lid.y;
        let br = wid.x * 16u + lid.y;
        var va = 0.0;
        if (ar < P.n && kk < d) {
            va = a[ar * d + kk];
        }
        var vb = 0.0;
        if (br < P.m && kk < d) {
            vb = b[br * d + kk];
        }
        ta[lid.y][lid.x] = va;
        tb[lid.y][lid.x] = vb;
        workgroupBarrier();
        for (var t = 0u; t < 16u; t++) {
            acc += ta[lid.y][t] * tb[lid.x][t];
        }
        workgroupBarrier();
    }
    if (row < P.n && col < P.m) {
        var v: f32;
        let mode = P.flags;
        if (mode == 2u) {
            v = acc;
        } else if (mode == 3u) {
            v = -acc;
        } else {
            v = refine(row, col, max(sqa[row] + sqb[col] - 2.0 * acc, 0.0));
            if (mode == 0u) {
                v = sqrt(v);
            }
            if (P.off == 1u && row == col) {
                v = 0.0;
            }
        }
        out[row * P.m + col] = v;
    }
}

// The same values without workgroup memory or barriers: each invocation reads its two rows
// directly. Faster on CPU adapters (lavapipe), where barriers are expensive and caches do the
// tiling; same accumulation order, so the same symmetry.
@compute @workgroup_size(16, 16)
fn direct(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    if (row >= P.n || col >= P.m) {
        return;
    }
    let d = P.d;
    var acc = 0.0;
    for (var t = 0u; t < d; t++) {
        acc += a[row * d + t] * b[col * d + t];
    }
    var v: f32;
    let mode = P.flags;
    if (mode == 2u) {
        v = acc;
    } else if (mode == 3u) {
        v = -acc;
    } else {
        v = refine(row, col, max(sqa[row] + sqb[col] - 2.0 * acc, 0.0));
        if (mode == 0u) {
            v = sqrt(v);
        }
        if (P.off == 1u && row == col) {
            v = 0.0;
        }
    }
    out[row * P.m + col] = v;
}
