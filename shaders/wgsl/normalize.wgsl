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
    var s = 0.0;
    for (var c = 0u; c < d; c++) {
        let v = x[base + c];
        s += v * v;
    }
    let norm = sqrt(s);
    norms[i] = norm;
    // Divide rather than multiply by a reciprocal, so a one-column row becomes exactly +-1.
    var div = 1.0;
    if ((P.flags & 1u) != 0u) {
        div = max(norm, 1e-12);
    }
    var s2 = 0.0;
    for (var c = 0u; c < d; c++) {
        let v = x[base + c] / div;
        xh[base + c] = v;
        s2 += v * v;
    }
    sq[i] = s2;
}
