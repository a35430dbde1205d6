// Sparse write into a matrix: w[at[t]] = val[t] for t < P.n, one thread per entry. The host makes
// the positions unique (it adds up contributions to the same entry first), so there is no race.
// Used by hard-mined quadruplet, whose few non-zero weights per row are formed on the host.

@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> at: array<u32>;
@group(0) @binding(3) var<storage, read> val: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = wg_index(wid, nwg) * WG + lid;
    if (t >= P.n) {
        return;
    }
    w[at[t]] = val[t];
}
