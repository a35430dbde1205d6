// Quadruplet term 2, step 1: sort keys for every off-diagonal entry (i, j) of E (N x N).
// List A is keyed by kind (0 positive pair, 1 negative pair): sorted, it holds all positive-pair
// values then all negative-pair values. List B is keyed by kind * G + group(i): sorted, it holds
// the values grouped by the label of the row. Diagonal and padding entries get key 0xffffffff.
// P.n = N, P.m = padded length (power of two), P.k = G (number of distinct labels).

@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> keys_a: array<u32>;
@group(0) @binding(4) var<storage, read_write> vals_a: array<f32>;
@group(0) @binding(5) var<storage, read_write> keys_b: array<u32>;
@group(0) @binding(6) var<storage, read_write> vals_b: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = wg_index(wid, nwg) * WG + lid;
    if (t >= P.m) {
        return;
    }
    let n = P.n;
    var ka = 0xffffffffu;
    var kb = 0xffffffffu;
    var v = BIG;
    if (t < n * n) {
        let i = t / n;
        let j = t % n;
        if (i != j) {
            let kind = select(1u, 0u, grp[i] == grp[j]);
            ka = kind;
            kb = kind * P.k + grp[i];
            v = e[t];
        }
    }
    keys_a[t] = ka;
    vals_a[t] = v;
    keys_b[t] = kb;
    vals_b[t] = v;
}
