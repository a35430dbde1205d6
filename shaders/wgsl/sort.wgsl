// One step (k, j) of a global bitonic sort of P.n (a power of two) (key, value) pairs, ordered by
// key then value. P.k = k, P.m = j. One thread per element; the lower index of a pair acts.

@group(0) @binding(1) var<storage, read_write> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> vals: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = wg_index(wid, nwg) * WG + lid;
    if (t >= P.n) {
        return;
    }
    let l = t ^ P.m;
    if (l <= t) {
        return;
    }
    let asc = (t & P.k) == 0u;
    let ka = keys[t];
    let kb = keys[l];
    let va = vals[t];
    let vb = vals[l];
    let greater = ka > kb || (ka == kb && va > vb);
    if (greater == asc) {
        keys[t] = kb;
        keys[l] = ka;
        vals[t] = vb;
        vals[l] = va;
    }
}
