// Fused exact k-nearest neighbours: distances and top-k selection in one kernel, so the nq x nr
// matrix never exists in device memory. One workgroup takes TQ query rows and streams over tiles
// of TR reference rows. Each tile's TQ x TR values are accumulated like pairwise.wgsl (16-wide
// slabs of the shared dimension staged in workgroup memory, ascending order, the same expanded
// form and the same `refine` of close pairs), so they equal the pairwise kernel's values.
//
// Selection, per query row, in workgroup memory: a buffer of PB (key, index) entries whose first
// KP hold the best k so far (sorted, closest first) and whose other CAP = PB - KP slots collect
// candidates. Keys are "smaller is closer" (distances, or minus similarities). A value becomes a
// candidate when the row's list is not yet full or its key is below the current k-th key: since
// references stream in ascending index order, a key equal to the k-th one loses its tie (larger
// index), so the strict test is exact. When a row's buffer could overflow on the next tile (or at
// the end), the whole buffer is bitonic-sorted by (key, index) and the threshold updated.
//
// The constants TQ / KP / PB below are replaced by the host (crates/margin-wgpu/src/knn.rs) for
// each variant; keep them one per line in this form.
// P.n = total query rows, P.m = nr, P.d = width, P.k = k, P.flags = 0 euclidean, 1 squared
// euclidean, 2 dot (similarity; key = -dot), P.off = first query row of this dispatch,
// P.u6 = 1 to exclude each query's own row (reference = the queries), P.f0 = +infinity.

const TQ: u32 = 16u;
const KP: u32 = 32u;
const PB: u32 = 128u;

const TR: u32 = 64u;
const CAP: u32 = PB - KP;
const TPR: u32 = 256u / TQ;
const CPT: u32 = TR / TPR;
const NONE: u32 = 0xffffffffu;

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> sqa: array<f32>;
@group(0) @binding(4) var<storage, read> sqb: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_idx: array<u32>;
@group(0) @binding(6) var<storage, read_write> out_val: array<f32>;

var<workgroup> qs: array<array<f32, 17>, TQ>;
var<workgroup> rs: array<array<f32, 17>, TR>;
var<workgroup> keys: array<f32, TQ * PB>;
var<workgroup> ids: array<u32, TQ * PB>;
var<workgroup> cnt: array<atomic<u32>, TQ>;
var<workgroup> thr: array<f32, TQ>;
var<workgroup> kth: array<u32, TQ>;
var<workgroup> flag: u32;

// As in pairwise.wgsl: the squared distance of a close pair is recomputed directly.
fn refine(row: u32, col: u32, v: f32) -> f32 {
    if (v >= 1e-2 * (sqa[row] + sqb[col])) {
        return v;
    }
    let d = P.d;
    var s = 0.0;
    for (var t = 0u; t < d; t++) {
        let diff = a[row * d + t] - b[col * d + t];
        s += diff * diff;
    }
    return s;
}

// The value the pairwise kernel writes, as a key (smaller is closer).
fn key_of(row: u32, col: u32, acc: f32) -> f32 {
    let mode = P.flags;
    if (mode == 2u) {
        return -acc;
    }
    var v = refine(row, col, max(sqa[row] + sqb[col] - 2.0 * acc, 0.0));
    if (mode == 0u) {
        v = sqrt(v);
    }
    return v;
}

// (ka, ia) sorts before (kb, ib).
fn before(ka: f32, ia: u32, kb: f32, ib: u32) -> bool {
    return ka < kb || (ka == kb && ia < ib);
}

// Sorts every row's buffer (pads unused candidate slots first) and updates the thresholds.
// Called in uniform control flow.
fn merge(lid: u32) {
    workgroupBarrier();
    if (lid == 0u) {
        flag = 0u;
    }
    let inf = P.f0;
    for (var e = lid; e < TQ * CAP; e += 256u) {
        let row = e / CAP;
        let s = e % CAP;
        if (s >= atomicLoad(&cnt[row])) {
            keys[row * PB + KP + s] = inf;
            ids[row * PB + KP + s] = NONE;
        }
    }
    workgroupBarrier();
    for (var size = 2u; size <= PB; size = size << 1u) {
        for (var stride = size >> 1u; stride > 0u; stride = stride >> 1u) {
            for (var p = lid; p < TQ * (PB / 2u); p += 256u) {
                let row = p / (PB / 2u);
                let h = p % (PB / 2u);
                let i = 2u * stride * (h / stride) + h % stride;
                let x = row * PB + i;
                let y = x + stride;
                let kx = keys[x];
                let ky = keys[y];
                let ix = ids[x];
                let iy = ids[y];
                let ascending = (i & size) == 0u;
                var swap: bool;
                if (ascending) {
                    swap = before(ky, iy, kx, ix);
                } else {
                    swap = before(kx, ix, ky, iy);
                }
                if (swap) {
                    keys[x] = ky;
                    keys[y] = kx;
                    ids[x] = iy;
                    ids[y] = ix;
                }
            }
            workgroupBarrier();
        }
    }
    if (lid < TQ) {
        atomicStore(&cnt[lid], 0u);
        thr[lid] = keys[lid * PB + P.k - 1u];
        kth[lid] = ids[lid * PB + P.k - 1u];
    }
    workgroupBarrier();
}

// Resets every row's buffer, counter and threshold.
fn init(lid: u32) {
    let inf = P.f0;
    for (var e = lid; e < TQ * PB; e += 256u) {
        keys[e] = inf;
        ids[e] = NONE;
    }
    if (lid < TQ) {
        atomicStore(&cnt[lid], 0u);
        thr[lid] = inf;
        kth[lid] = NONE;
    }
    if (lid == 0u) {
        flag = 0u;
    }
    workgroupBarrier();
}

// Offers the value of (query row `row` = q0 + lrow, reference row `col`) from its dot product.
fn offer(lrow: u32, row: u32, col: u32, acc: f32) {
    if (row >= P.n || col >= P.m || (P.u6 == 1u && col == row)) {
        return;
    }
    let key = key_of(row, col, acc);
    if (kth[lrow] == NONE || key < thr[lrow]) {
        let s = atomicAdd(&cnt[lrow], 1u);
        keys[lrow * PB + KP + s] = key;
        ids[lrow * PB + KP + s] = col;
    }
}

// After a tile's offers: merges when a buffer could overflow on the next tile.
fn after_tile(lid: u32) {
    workgroupBarrier();
    if (lid < TQ && atomicLoad(&cnt[lid]) > CAP - TR) {
        flag = 1u;
    }
    if (workgroupUniformLoad(&flag) != 0u) {
        merge(lid);
    }
}

// The final merge and the k best of each row, back to similarities where the metric is one.
fn finish(lid: u32, q0: u32) {
    merge(lid);
    let k = P.k;
    for (var e = lid; e < TQ * k; e += 256u) {
        let r = e / k;
        let i = e % k;
        if (q0 + r < P.n) {
            let key = keys[r * PB + i];
            var v = key;
            if (P.flags == 2u) {
                v = -key;
            }
            out_idx[(q0 + r) * k + i] = ids[r * PB + i];
            out_val[(q0 + r) * k + i] = v;
        }
    }
}

// GPUs: slabs of the shared dimension staged in workgroup memory, as pairwise.wgsl `main`.
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let q0 = P.off + wg_index(wid, nwg) * TQ;
    if (q0 >= P.n) {
        return;
    }
    let d = P.d;
    init(lid);
    let lrow = lid / TPR;
    let lcol = lid % TPR;
    for (var j0 = 0u; j0 < P.m; j0 += TR) {
        var acc: array<f32, CPT>;
        for (var c = 0u; c < CPT; c++) {
            acc[c] = 0.0;
        }
        for (var k0 = 0u; k0 < d; k0 += 16u) {
            if (lid < TQ * 16u) {
                let r = lid / 16u;
                let kk = k0 + lid % 16u;
                var v = 0.0;
                if (q0 + r < P.n && kk < d) {
                    v = a[(q0 + r) * d + kk];
                }
                qs[r][lid % 16u] = v;
            }
            for (var e = lid; e < TR * 16u; e += 256u) {
                let r = e / 16u;
                let kk = k0 + e % 16u;
                var v = 0.0;
                if (j0 + r < P.m && kk < d) {
                    v = b[(j0 + r) * d + kk];
                }
                rs[r][e % 16u] = v;
            }
            workgroupBarrier();
            for (var t = 0u; t < 16u; t++) {
                let x = qs[lrow][t];
                for (var c = 0u; c < CPT; c++) {
                    acc[c] += x * rs[lcol + c * TPR][t];
                }
            }
            workgroupBarrier();
        }
        for (var c = 0u; c < CPT; c++) {
            offer(lrow, q0 + lrow, j0 + lcol + c * TPR, acc[c]);
        }
        after_tile(lid);
    }
    finish(lid, q0);
}

// CPU adapters (lavapipe): the dot products read their rows directly, with no staging barriers
// (as pairwise.wgsl `direct`); same accumulation order, so the same values.
@compute @workgroup_size(256)
fn direct(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let q0 = P.off + wg_index(wid, nwg) * TQ;
    if (q0 >= P.n) {
        return;
    }
    let d = P.d;
    init(lid);
    let lrow = lid / TPR;
    let lcol = lid % TPR;
    let row = q0 + lrow;
    // Out-of-range rows and columns are clamped for the reads and dropped by `offer`.
    let qrow = min(row, P.n - 1u) * d;
    for (var j0 = 0u; j0 < P.m; j0 += TR) {
        var acc: array<f32, CPT>;
        var base: array<u32, CPT>;
        for (var c = 0u; c < CPT; c++) {
            acc[c] = 0.0;
            base[c] = min(j0 + lcol + c * TPR, P.m - 1u) * d;
        }
        for (var t = 0u; t < d; t++) {
            let x = a[qrow + t];
            for (var c = 0u; c < CPT; c++) {
                acc[c] += x * b[base[c] + t];
            }
        }
        for (var c = 0u; c < CPT; c++) {
            offer(lrow, row, j0 + lcol + c * TPR, acc[c]);
        }
        after_tile(lid);
    }
    finish(lid, q0);
}
