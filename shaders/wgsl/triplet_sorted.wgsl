// Stage 3, hinge triplet over all (P.flags & 1 == 0) or semihard (P.flags & 1) triplets, exact
// without enumerating triplets: per anchor, its positive and negative values are bitonic-sorted in
// a global scratch slot (2 x P.k floats, P.k = next power of two >= M), then every positive counts
// its active negatives and every negative its active positives by binary search.
// Triplet (a, p, n) is active when e_an < e_ap + margin (and, semihard, e_ap < e_an).
// Loss sum per anchor = sum_p c_p (e_ap + m) - sum_n k_n e_an (both sides count the same set).
// Writes raw weights W[a,p] = c_p, W[a,n] = -k_n. One workgroup per anchor of the chunk
// starting at row P.off. P.n = N, P.cols = M (E is N x M), P.f0 = margin. In place: the weights
// overwrite E (weight_out in common.wgsl); the fill loop reads the row before the sort's barriers.

@group(0) @binding(1) var<storage, read_write> e: array<f32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(5) var<storage, read_write> rcnt: array<vec2<u32>>;
// P.flags & 2: statistics only, E is left as it is (the quadruplet counts before it writes).
// P.flags & 4: the quadruplet's last pass, W = P.f1 * count + addend[(i - P.off) * M + j]
// (term 2's weights of the chunk, already scaled). Otherwise addend is a stand-in, never read.
@group(0) @binding(6) var<storage, read> addend: array<f32>;

// Number of entries of the sorted slot [base, base + len) that are < t.
fn count_less(base: u32, len: u32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (scratch[base + mid] < t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// Number of entries <= t.
fn count_le(base: u32, len: u32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (scratch[base + mid] <= t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// Number of sorted positives p with p + m <= t (monotone in p).
fn count_pos_shift_le(base: u32, len: u32, m: f32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (scratch[base + mid] + m <= t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let slot = wg_index(wid, nwg);
    let i = P.off + slot;
    if (i >= P.n) {
        return;
    }
    let n = P.n;
    let p2 = P.k;
    let m = P.f0;
    let semihard = (P.flags & 1u) != 0u;
    let nb = slot * 2u * p2;
    let pb = nb + p2;
    let nc = P.cols;
    let gi = grp[i];
    let si = grp[n + nc + i];

    // Fill: negatives in [nb, nb + p2), positives in [pb, pb + p2), BIG elsewhere.
    for (var j = lid; j < p2; j += WG) {
        var nv = BIG;
        var pv = BIG;
        if (j < nc && j != si) {
            let v = e[i * nc + j];
            if (grp[n + j] == gi) {
                pv = v;
            } else {
                nv = v;
            }
        }
        scratch[nb + j] = nv;
        scratch[pb + j] = pv;
    }
    storageBarrier();

    // Bitonic sort of both halves at once.
    for (var k = 2u; k <= p2; k = k << 1u) {
        for (var jj = k >> 1u; jj > 0u; jj = jj >> 1u) {
            for (var t = lid; t < p2; t += WG) {
                let l = t ^ jj;
                if (l > t) {
                    let asc = (t & k) == 0u;
                    let a0 = scratch[nb + t];
                    let b0 = scratch[nb + l];
                    if ((a0 > b0) == asc) {
                        scratch[nb + t] = b0;
                        scratch[nb + l] = a0;
                    }
                    let a1 = scratch[pb + t];
                    let b1 = scratch[pb + l];
                    if ((a1 > b1) == asc) {
                        scratch[pb + t] = b1;
                        scratch[pb + l] = a1;
                    }
                }
            }
            storageBarrier();
        }
    }

    // Counts of each kind: the finite prefix of each sorted half.
    let nneg = count_less(nb, p2, BIG);
    let npos = count_less(pb, p2, BIG);

    var loss = 0.0;
    var cnt = vec2<u32>(0u, 0u);
    for (var j = lid; j < nc; j += WG) {
        var wv = 0.0;
        let v = e[i * nc + j];
        if (j != si) {
            if (grp[n + j] == gi) {
                let t = v + m;
                var c = count_less(nb, nneg, t);
                if (semihard) {
                    let below = count_le(nb, nneg, v);
                    c = select(0u, c - below, c > below);
                }
                loss += f32(c) * t;
                cnt = add64u(cnt, c);
                wv = f32(c);
            } else {
                // Active positives: p + m > v, and semihard also p < v.
                let inactive = count_pos_shift_le(pb, npos, m, v);
                var kk = npos - inactive;
                if (semihard) {
                    let below = count_less(pb, npos, v);
                    kk = select(0u, below - inactive, below > inactive);
                }
                loss -= f32(kk) * v;
                wv = -f32(kk);
            }
        }
        if ((P.flags & 2u) == 0u) {
            var out = wv;
            if ((P.flags & 4u) != 0u) {
                out = P.f1 * wv + addend[(i - P.off) * nc + j];
            }
            e[i * nc + j] = weight_out(out, v);
        }
    }
    let sl = reduce_sum_f(lid, loss);
    let sc = reduce_sum_u64(lid, cnt);
    if (lid == 0u) {
        rstat[2u * i] = sl;
        rstat[2u * i + 1u] = 0.0;
        rcnt[2u * i] = sc;
        rcnt[2u * i + 1u] = vec2<u32>(0u, 0u);
    }
}
