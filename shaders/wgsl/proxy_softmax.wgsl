// Stage 3 of the proxy-softmax losses (proxy-nca, normalized-softmax, cosface;
// losses/proxy_softmax.rs): E is a slab of rows of the N x K matrix between the samples and the
// centers (E = distance, or minus similarity: smaller is closer). One workgroup per sample row i
// (sample P.off + i, label y), threads striding over the K centers:
//   z_c = P.f0 (-e_c - P.f1 [c == y])      (f0 = scale, f1 = the target margin)
//   loss_i = -log p_y = LSE_c z_c - z_y    (max-shifted: scales reach 64 and beyond)
// A row counts unless P.flags & 1 (proxy-nca) and log p_y < P.f3 (ln 2^-1075 in f32, where
// PML's float64 softmax gives the target 0). Counted rows get, in place over E,
//   W_c = P.f2 (p_c - [c == y])            (f2 = -scale / N, or -scale when the count is known
//                                           only after every row: the host scales late),
// divided by the euclidean distance when P.u6 (weight_out); the others get 0.
// Accuracy where the row is confident (p_y -> 1, as at scale 64): the loss is taken as
// (max - z_y) + log1p(sum of the terms below the max + ties - 1), never as LSE - z_y, and
// W_y = P.f2 expm1(log p_y), never p_y - 1, so tiny losses and their gradients keep their
// relative precision instead of rounding to 0 against 1.
// rstat[2 (P.off + i)] = [loss_i or 0, 0], rcnt = [counted, 0]. P.n = rows of the slab,
// P.cols = K.

@group(0) @binding(1) var<storage, read_write> e: array<f32>;
@group(0) @binding(2) var<storage, read> lab: array<u32>;
@group(0) @binding(3) var<storage, read_write> rstat: array<f32>;
@group(0) @binding(4) var<storage, read_write> rcnt: array<vec2<u32>>;

fn logit(c: u32, y: u32, v: f32) -> f32 {
    return P.f0 * (-v - select(0.0, P.f1, c == y));
}

// log(1 + x) for x >= 0 to a few ulps: the series below 1e-2 (next term x^6 / 6 is under 2e-11
// relative there), where log(1 + x) would lose up to 1e-5 relative to the rounding of 1 + x.
fn log1p_acc(x: f32) -> f32 {
    if (x < 1e-2) {
        return x * (1.0 - x * (0.5 - x * (1.0 / 3.0 - x * (0.25 - x * 0.2))));
    }
    return log(1.0 + x);
}

// e^x - 1 for x <= 0, accurate near 0 the same way.
fn expm1_acc(x: f32) -> f32 {
    if (x > -1e-2) {
        return x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x / 120.0))));
    }
    return exp(x) - 1.0;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wg_index(wid, nwg);
    if (i >= P.n) {
        return;
    }
    let k = P.cols;
    let ig = P.off + i;
    let y = lab[ig];
    let base = i * k;
    // The target's logit, read by every invocation before the reductions' barriers: pass 3
    // overwrites that entry, and an invocation reading it after the barrier-free pass 3 began
    // could see the weight instead.
    let zy = logit(y, y, e[base + y]);
    // Pass 1: the row's largest logit.
    var mx = -BIG;
    for (var c = lid; c < k; c += WG) {
        mx = max(mx, logit(c, y, e[base + c]));
    }
    mx = reduce_max_f(lid, mx);
    // Pass 2: the sum of exp(z - max) over the logits below the max, and how many equal it (at
    // least one: the same expression as pass 1's), so that the 1s are kept apart from the rest.
    var rest = 0.0;
    var ties = 0.0;
    for (var c = lid; c < k; c += WG) {
        let z = logit(c, y, e[base + c]);
        if (z < mx) {
            rest += exp(z - mx);
        } else {
            ties += 1.0;
        }
    }
    rest = reduce_sum_f(lid, rest);
    ties = reduce_sum_f(lid, ties);
    // log of the sum of exp(z - max), and -log p_y.
    let log_s = log1p_acc(max(ties - 1.0, 0.0) + rest);
    let loss = (mx - zy) + log_s;
    let log_p = -loss;
    let counted = (P.flags & 1u) == 0u || log_p >= P.f3;
    // Pass 3: the weights, each entry read just before it is overwritten.
    for (var c = lid; c < k; c += WG) {
        let v = e[base + c];
        var wv = 0.0;
        if (counted) {
            if (c == y) {
                wv = P.f2 * expm1_acc(log_p);
            } else {
                wv = P.f2 * exp((logit(c, y, v) - mx) - log_s);
            }
        }
        e[base + c] = weight_out(wv, v);
    }
    if (lid == 0u) {
        rstat[2u * ig] = select(0.0, loss, counted);
        rstat[2u * ig + 1u] = 0.0;
        rcnt[2u * ig] = vec2<u32>(select(0u, 1u, counted), 0u);
        rcnt[2u * ig + 1u] = vec2<u32>(0u, 0u);
    }
}
