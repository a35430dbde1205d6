// Stage 1: per-row L2 normalization (x / max(|x|, 1e-12)) when P.flags & 1, else a copy.
// Keeps the raw norms for the backward pass and the squared norms of the output rows for the
// expanded distance form. One thread per row. P.n = rows, P.d = width.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> xh: array<f32>;
@group(0) @binding(3) var<storage, read_write> norms: array<f32>;
@group(0) @binding(4) var<storage, read_write> sq: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wg_index(wid, nwg) * WG + lid;
    if (i >= P.n) {
        return;
    }
    let d = P.d;
    let base = i * d;
    // The norm of x / max|x| (in [1, sqrt(d)]), times max|x|: a plain sum of squares overflows
    // f32 for |x| beyond about 1e19 (and underflows below 1e-19), where the normalized row is
    // still perfectly representable.
    var mx = 0.0;
    for (var c = 0u; c < d; c++) {
        mx = max(mx, abs(x[base + c]));
    }
    var s = 0.0;
    if (mx > 0.0) {
        for (var c = 0u; c < d; c++) {
            let v = x[base + c] / mx;
            s += v * v;
        }
    }
    let root = sqrt(s);
    // May be inf for rows beyond f32::MAX in norm: their gradient is then 0 (it is < 1e-38).
    let norm = mx * root;
    norms[i] = norm;
    let normalize = (P.flags & 1u) != 0u;
    // Divide rather than multiply by a reciprocal, so a one-column row becomes exactly +-1.
    // Below the 1e-12 floor the row is divided by the floor itself (the SPEC's max(|x|, 1e-12)).
    let scaled = normalize && norm >= 1e-12;
    var div = 1.0;
    if (normalize && !scaled) {
        div = 1e-12;
    }
    var s2 = 0.0;
    for (var c = 0u; c < d; c++) {
        var v = x[base + c] / div;
        if (scaled) {
            v = (x[base + c] / mx) / root;
        }
        xh[base + c] = v;
        s2 += v * v;
    }
    sq[i] = s2;
}
