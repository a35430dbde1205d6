// Quadruplet term 2, step 1: the sort keys of the positive pairs only (O(positive pairs), not
// O(N x M)). Each positive pair (i, j) of E (N x P.cols) is written twice at the same index:
// to list G with key 0 (sorted: every positive value) and to list S with key = label of i
// (sorted: the positive values grouped by label). Its index is poff[i] (the row's first slot)
// plus the rank of column j among the columns of its label, less one past the row's excluded
// column. Indices [P.m, P.d) are padding (key 0xffffffff, value BIG).
// aux = packed labels (2N + M), per label [segment start, length] (2G), poff (N), column rank (M).
// P.n = N, P.cols = M, P.k = G, P.m = number of positive pairs, P.d = padded list length.
// Workgroup w writes row P.off + w while that is below N (E holds the rows from P.row0: a slab of
// rows, or all of them), the padding from there.

@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read> aux: array<u32>;
@group(0) @binding(3) var<storage, read_write> keys_g: array<u32>;
@group(0) @binding(4) var<storage, read_write> vals_g: array<f32>;
@group(0) @binding(5) var<storage, read_write> keys_s: array<u32>;
@group(0) @binding(6) var<storage, read_write> vals_s: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = P.off + wg_index(wid, nwg);
    let n = P.n;
    let nc = P.cols;
    if (g >= n) {
        let t = (g - n) * WG + lid + P.m;
        if (t < P.d) {
            keys_g[t] = 0xffffffffu;
            vals_g[t] = BIG;
            keys_s[t] = 0xffffffffu;
            vals_s[t] = BIG;
        }
        return;
    }
    let i = g;
    let gi = aux[i];
    let si = aux[n + nc + i];
    let poff = 2u * n + nc + 2u * P.k;
    let rank = poff + n;
    // Rank of the excluded column when it is a positive of the row (else none: NO_COL).
    var srank = NO_COL;
    if (si != NO_COL && aux[n + si] == gi) {
        srank = aux[rank + si];
    }
    let base = aux[poff + i];
    for (var j = lid; j < nc; j += WG) {
        if (j == si || aux[n + j] != gi) {
            continue;
        }
        let r = aux[rank + j];
        let idx = base + r - select(0u, 1u, r > srank);
        let v = e[(i - P.row0) * nc + j];
        keys_g[idx] = 0u;
        vals_g[idx] = v;
        keys_s[idx] = gi;
        vals_s[idx] = v;
    }
}
