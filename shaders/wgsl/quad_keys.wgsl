// Quadruplet term 2, step 1: sort keys for every entry (i, j) of E (N x M, P.cols = M) other than
// the row's excluded column (the diagonal in the square case). List A is keyed by kind (0 positive
// pair, 1 negative pair): sorted, it holds all positive-pair values then all negative-pair values.
// List B is keyed by kind * G + group(i): sorted, it holds the values grouped by the label of the
// row. With a reference set (P.flags & 1; E is not symmetric) list B is twice as long: its second
// half holds every negative pair again, keyed by 2G + group(j), so that sorted, the negative pairs
// also come grouped by the label of the column. Excluded and padding entries get key 0xffffffff.
// P.n = N, P.m = padded length of list A (power of two), P.k = G (number of distinct labels).

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
    let nc = P.cols;
    let rect = (P.flags & 1u) != 0u;
    var ka = 0xffffffffu;
    var kb = 0xffffffffu;
    var kc = 0xffffffffu;
    var v = BIG;
    if (t < n * nc) {
        let i = t / nc;
        let j = t % nc;
        if (j != grp[n + nc + i]) {
            let kind = select(1u, 0u, grp[i] == grp[n + j]);
            ka = kind;
            kb = kind * P.k + grp[i];
            if (kind == 1u) {
                kc = 2u * P.k + grp[n + j];
            }
            v = e[t];
        }
    }
    keys_a[t] = ka;
    vals_a[t] = v;
    keys_b[t] = kb;
    vals_b[t] = v;
    if (rect) {
        keys_b[P.m + t] = kc;
        vals_b[P.m + t] = select(BIG, v, kc != 0xffffffffu);
    }
}
