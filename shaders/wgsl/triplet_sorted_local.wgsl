// triplet_sorted.wgsl with the per-anchor sort in workgroup memory, for rows that fit (P.k, the
// padded row length, at most LOCAL_LEN). Same counting rules, same outputs; used on GPUs, where
// workgroup memory is much faster than the global scratch slot. In place, as triplet_sorted.wgsl.

const LOCAL_LEN: u32 = 1024u;

@group(0) @binding(1) var<storage, read_write> e: array<f32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(4) var<storage, read_write> rcnt: array<vec2<u32>>;
// P.flags & 2: statistics only, E is left as it is (the quadruplet counts before it writes).
// P.flags & 4: the quadruplet's last pass, W = P.f1 * count + addend[(i - P.off) * M + j]
// (term 2's weights of the chunk, already scaled). Otherwise addend is a stand-in, never read.
@group(0) @binding(5) var<storage, read> addend: array<f32>;

var<workgroup> sn: array<f32, 1024>;
var<workgroup> sp: array<f32, 1024>;

fn neg_less(len: u32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (sn[mid] < t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

fn neg_le(len: u32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (sn[mid] <= t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

fn pos_less(len: u32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (sp[mid] < t) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// Number of sorted positives p with p + m <= t.
fn pos_shift_le(len: u32, m: f32, t: f32) -> u32 {
    var lo = 0u;
    var hi = len;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (sp[mid] + m <= t) {
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
    let i = P.off + wg_index(wid, nwg);
    if (i >= P.n) {
        return;
    }
    let n = P.n;
    let p2 = min(P.k, LOCAL_LEN);
    let m = P.f0;
    let semihard = (P.flags & 1u) != 0u;
    let nc = P.cols;
    let gi = grp[i];
    let si = grp[n + nc + i];

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
        sn[j] = nv;
        sp[j] = pv;
    }
    workgroupBarrier();

    for (var k = 2u; k <= p2; k = k << 1u) {
        for (var jj = k >> 1u; jj > 0u; jj = jj >> 1u) {
            for (var t = lid; t < p2; t += WG) {
                let l = t ^ jj;
                if (l > t) {
                    let asc = (t & k) == 0u;
                    let a0 = sn[t];
                    let b0 = sn[l];
                    if ((a0 > b0) == asc) {
                        sn[t] = b0;
                        sn[l] = a0;
                    }
                    let a1 = sp[t];
                    let b1 = sp[l];
                    if ((a1 > b1) == asc) {
                        sp[t] = b1;
                        sp[l] = a1;
                    }
                }
            }
            workgroupBarrier();
        }
    }

    let nneg = neg_less(p2, BIG);
    let npos = pos_less(p2, BIG);

    var loss = 0.0;
    var cnt = vec2<u32>(0u, 0u);
    for (var j = lid; j < nc; j += WG) {
        var wv = 0.0;
        let v = e[i * nc + j];
        if (j != si) {
            if (grp[n + j] == gi) {
                let t = v + m;
                var c = neg_less(nneg, t);
                if (semihard) {
                    let below = neg_le(nneg, v);
                    c = select(0u, c - below, c > below);
                }
                loss += f32(c) * t;
                cnt = add64u(cnt, c);
                wv = f32(c);
            } else {
                let inactive = pos_shift_le(npos, m, v);
                var kk = npos - inactive;
                if (semihard) {
                    let below = pos_less(npos, v);
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
