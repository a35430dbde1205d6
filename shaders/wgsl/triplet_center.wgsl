// Stage 3, triplet-center: E is N x K (embeddings against centers). Per sample i (one thread):
// relu(e_{i,y_i} - min_{c != y_i} e_ic + margin), ties to the smaller center index.
// Writes W scaled by 1/N (Mean). P.n = rows of E, P.m = K, P.f0 = margin, P.f1 = 1/N. Row i of E
// is sample P.off + i (all N samples, or a slab of them: losses/centers.rs); lab, rstat and rcnt
// hold every sample's.

@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read> lab: array<u32>;
@group(0) @binding(4) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(5) var<storage, read_write> rcnt: array<vec2<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wg_index(wid, nwg) * WG + lid;
    if (i >= P.n) {
        return;
    }
    let k = P.m;
    let ig = P.off + i;
    let y = lab[ig];
    var best = BIG;
    var bc = 0u;
    var found = false;
    for (var c = 0u; c < k; c++) {
        w[i * k + c] = 0.0;
        if (c == y) {
            continue;
        }
        let v = e[i * k + c];
        if (!found || v < best) {
            best = v;
            bc = c;
            found = true;
        }
    }
    let z = e[i * k + y] - best + P.f0;
    var loss = 0.0;
    var cnt = 0u;
    if (found && z > 0.0) {
        loss = z;
        cnt = 1u;
        w[i * k + y] = P.f1;
        w[i * k + bc] = -P.f1;
    }
    rstat[2u * ig] = loss;
    rstat[2u * ig + 1u] = 0.0;
    rcnt[2u * ig] = vec2<u32>(cnt, 0u);
    rcnt[2u * ig + 1u] = vec2<u32>(0u, 0u);
}
