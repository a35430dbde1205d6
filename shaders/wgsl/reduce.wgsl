// Row sums (one workgroup per row, tree reduction) and column sums (one thread per column) of an
// P.n x P.m matrix: the diagonal terms of the distance gradients.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn row_sums(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wg_index(wid, nwg);
    if (i >= P.n) {
        return;
    }
    var s = 0.0;
    for (var j = lid; j < P.m; j += WG) {
        s += a[i * P.m + j];
    }
    let r = reduce_sum_f(lid, s);
    if (lid == 0u) {
        out[i] = r;
    }
}

@compute @workgroup_size(256)
fn col_sums(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = wg_index(wid, nwg) * WG + lid;
    if (j >= P.m) {
        return;
    }
    var s = 0.0;
    for (var i = 0u; i < P.n; i++) {
        s += a[i * P.m + j];
    }
    out[j] = s;
}
