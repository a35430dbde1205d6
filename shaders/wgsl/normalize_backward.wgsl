// Stage 5: normalization backward, in place: g <- (g - xh (xh . g)) / max(|x|, 1e-12).
// One thread per row. P.n = rows, P.d = width.

@group(0) @binding(1) var<storage, read> xh: array<f32>;
@group(0) @binding(2) var<storage, read> norms: array<f32>;
@group(0) @binding(3) var<storage, read_write> g: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wg_index(wid, nwg) * WG + lid;
    if (i >= P.n) {
        return;
    }
    let d = P.d;
    let base = i * d;
    var dotv = 0.0;
    for (var c = 0u; c < d; c++) {
        dotv += xh[base + c] * g[base + c];
    }
    let inv = 1.0 / max(norms[i], 1e-12);
    for (var c = 0u; c < d; c++) {
        g[base + c] = (g[base + c] - xh[base + c] * dotv) * inv;
    }
}
