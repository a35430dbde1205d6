// Stage 3, batch-hard triplet: per anchor its farthest positive (max e) and nearest negative
// (min e), ties to the smaller index; relu, or softplus when P.flags & 2. Writes raw weights.
// P.f0 = margin. With P.flags & 4 (a reference set) the row's excluded column competes for the
// farthest positive, and the anchor is dropped when it wins (PML mines before it removes self
// comparisons; docs/REFERENCE_SETS.md 3.2). E is N x M (P.cols = M).

// In place: the weights overwrite E (weight_out in common.wgsl) once every invocation has read
// the picks' values.

@group(0) @binding(1) var<storage, read_write> e: array<f32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(4) var<storage, read_write> rcnt: array<vec2<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wg_index(wid, nwg);
    if (i >= P.n) {
        return;
    }
    let n = P.n;
    let nc = P.cols;
    let gi = grp[i];
    let si = grp[n + nc + i];
    let self_competes = (P.flags & 4u) != 0u;
    let none = 0xffffffffu;
    var bp = -BIG;
    var ip = none;
    var bn = -BIG;
    var inn = none;
    for (var j = lid; j < nc; j += WG) {
        if (j == si && !self_competes) {
            continue;
        }
        let v = e[i * nc + j];
        if (grp[n + j] == gi) {
            if (ip == none || v > bp) {
                bp = v;
                ip = j;
            }
        } else if (inn == none || -v > bn) {
            bn = -v;
            inn = j;
        }
    }
    let p = reduce_argmax(lid, bp, ip);
    let q = reduce_argmax(lid, bn, inn);
    // Every invocation evaluates the anchor's one triplet (the same values), then the row is
    // rewritten: g at p, -g at q, 0 elsewhere.
    var loss = 0.0;
    var c = 0u;
    var g = 0.0;
    if (p != none && q != none && p != si) {
        let z = e[i * nc + p] - e[i * nc + q] + P.f0;
        if ((P.flags & 2u) != 0u) {
            loss = softplus(z);
            g = sigmoid(z);
            c = 1u;
        } else if (z > 0.0) {
            loss = z;
            g = 1.0;
            c = 1u;
        }
    }
    storageBarrier();
    for (var j = lid; j < nc; j += WG) {
        var wv = 0.0;
        if (c == 1u && j == p) {
            wv = g;
        } else if (c == 1u && j == q) {
            wv = -g;
        }
        let at = i * nc + j;
        e[at] = weight_out(wv, e[at]);
    }
    if (lid == 0u) {
        rstat[2u * i] = loss;
        rstat[2u * i + 1u] = 0.0;
        rcnt[2u * i] = vec2<u32>(c, 0u);
        rcnt[2u * i + 1u] = vec2<u32>(0u, 0u);
    }
}
