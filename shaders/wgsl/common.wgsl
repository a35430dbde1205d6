// Shared prelude, prepended to every kernel file: the per-dispatch parameter block, 64-bit count
// arithmetic (WGSL has no u64) and workgroup tree reductions (WGSL has no f64, so sums are combined
// pairwise to keep the rounding error logarithmic in the row length).

struct Params {
    n: u32,
    m: u32,
    d: u32,
    k: u32,
    flags: u32,
    off: u32,
    u6: u32,
    // Columns of the N x M loss matrix (per-row weight kernels; M = N without a reference set).
    cols: u32,
    f0: f32,
    f1: f32,
    f2: f32,
    f3: f32,
    f4: f32,
    f5: f32,
    f6: f32,
    f7: f32,
    // First row of the call held in E when E is a slab of rows (quad_keys, quad_pairs), else 0.
    row0: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

// The per-row weight kernels work on an N x M loss matrix (rows = the batch, columns = the batch
// again or a reference set; P.n = N, P.cols = M) and bind `grp`, the packed labels:
// grp[0..N) the group id of each row, grp[N..N+M) that of each column, grp[N+M..2N+M) the one
// column each row excludes from its positives (its own copy: i in the square case, NO_COL = none).
const NO_COL: u32 = 0xffffffffu;

const WG: u32 = 256u;
// Padding value for sort buffers: larger than any finite distance a kernel compares against.
const BIG: f32 = 3.0e38;

// (lo, hi) 64-bit unsigned addition.
fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    let carry = select(0u, 1u, lo < a.x);
    return vec2<u32>(lo, a.y + b.y + carry);
}

fn add64u(a: vec2<u32>, b: u32) -> vec2<u32> {
    return add64(a, vec2<u32>(b, 0u));
}

// Numerically stable softplus log(1 + e^v).
fn softplus(v: f32) -> f32 {
    let x = exp(-abs(v));
    var l: f32;
    if (x < 1e-4) {
        l = x - 0.5 * x * x;
    } else {
        l = log(1.0 + x);
    }
    return max(v, 0.0) + l;
}

// log(1 + x) for x >= 0, accurate for tiny x (WGSL has no log1p).
fn log1p_f(x: f32) -> f32 {
    if (x < 1e-4) {
        return x * (1.0 - x * (0.5 - x / 3.0));
    }
    return log(1.0 + x);
}

fn sigmoid(v: f32) -> f32 {
    if (v >= 0.0) {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}

var<workgroup> red_f: array<f32, 256>;
var<workgroup> red_u: array<vec2<u32>, 256>;

fn reduce_sum_f(lid: u32, v: f32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_f[lid] = red_f[lid] + red_f[lid + s];
        }
        workgroupBarrier();
    }
    let r = red_f[0];
    workgroupBarrier();
    return r;
}

fn reduce_max_f(lid: u32, v: f32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_f[lid] = max(red_f[lid], red_f[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red_f[0];
    workgroupBarrier();
    return r;
}

fn reduce_sum_u64(lid: u32, v: vec2<u32>) -> vec2<u32> {
    red_u[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_u[lid] = add64(red_u[lid], red_u[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red_u[0];
    workgroupBarrier();
    return r;
}

// Arg-max over (value, index) pairs; ties go to the smaller index. Index 0xffffffff means none.
fn reduce_argmax(lid: u32, v: f32, idx: u32) -> u32 {
    red_f[lid] = v;
    red_u[lid] = vec2<u32>(idx, 0u);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let a = red_f[lid];
            let b = red_f[lid + s];
            let ia = red_u[lid].x;
            let ib = red_u[lid + s].x;
            var take_b = false;
            if (ib != 0xffffffffu) {
                take_b = ia == 0xffffffffu || b > a || (b == a && ib < ia);
            }
            if (take_b) {
                red_f[lid] = b;
                red_u[lid] = vec2<u32>(ib, 0u);
            }
        }
        workgroupBarrier();
    }
    let r = red_u[0].x;
    workgroupBarrier();
    return r;
}

// Linear workgroup index for dispatches tiled over two dimensions (<= 65535 per dimension).
fn wg_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Stage 3 in place (docs/ALGORITHMS.md, SPEC "Cost": at most one N x N matrix): the per-row weight
// kernels overwrite row i of E with dL/dE, each invocation writing only entries it has just read,
// after the row's last reduction, so a loss keeps one N x M matrix. P.u6 = 1 asks for the
// euclidean chain's 1/d here, while the distance is at hand (0 at distance 0); the chain kernel
// then skips its own division (its mode 3).
fn weight_out(wv: f32, dist: f32) -> f32 {
    if (P.u6 == 1u) {
        return select(0.0, wv / dist, dist > 0.0);
    }
    return wv;
}
