// Row gather (P.flags == 0: dst[r] = src[idx[r]]) or scatter (P.flags == 1: dst[idx[r]] = src[r])
// of P.n rows of width P.d, for n-pair's anchors and positives. One thread per element.

@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = wg_index(wid, nwg) * WG + lid;
    if (t >= P.n * P.d) {
        return;
    }
    let r = t / P.d;
    let c = t % P.d;
    if (P.flags == 0u) {
        dst[t] = src[idx[r] * P.d + c];
    } else {
        dst[idx[r] * P.d + c] = src[t];
    }
}
