// Exclusive prefix sum of P.n u32 values in place, in blocks of WG: P.flags = 0 scans each block
// and writes its total to sums[block]; P.flags = 1 adds sums[block] (by then the scanned block
// totals) to every value of the block. The host recurses on `sums` between the two
// (stages::exclusive_scan_u32). Sums wrap modulo 2^32; callers only take differences that fit.

@group(0) @binding(1) var<storage, read_write> data: array<u32>;
@group(0) @binding(2) var<storage, read_write> sums: array<u32>;

var<workgroup> part: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wg_index(wid, nwg);
    // Uniform per workgroup: the whole block lies past the end (spare groups of a 2-D dispatch).
    if (g * WG >= P.n) {
        return;
    }
    let t = g * WG + lid;
    if (P.flags == 1u) {
        if (t < P.n) {
            data[t] = data[t] + sums[g];
        }
        return;
    }
    var v = 0u;
    if (t < P.n) {
        v = data[t];
    }
    part[lid] = v;
    workgroupBarrier();
    // Hillis-Steele inclusive scan of the block.
    for (var off = 1u; off < WG; off = off << 1u) {
        var x = 0u;
        if (lid >= off) {
            x = part[lid - off];
        }
        workgroupBarrier();
        part[lid] = part[lid] + x;
        workgroupBarrier();
    }
    if (t < P.n) {
        data[t] = part[lid] - v;
    }
    if (lid == WG - 1u) {
        sums[g] = part[lid];
    }
}
