// proxy_softmax.cu: stage 3 (weights) of the proxy-softmax losses, proxy-nca (PML ProxyNCALoss),
// normalized-softmax (NormalizedSoftmaxLoss) and cosface (CosFaceLoss): one kernel for the three,
// as margin-core's ProxySoftmax form describes them. Dxc is the N x K matrix between the batch and
// the K centers (labels index them). Unlike proxy-anchor's per-proxy terms, each term here is a
// row: a softmax cross-entropy of sample i over the K centers.
//
// With e = sg * D (sg = +1 for a distance, -1 for a similarity), per sample i:
//   z_ic = scale * (-e_ic - target_margin * [c == y_i]),  lse_i = LSE_c z_ic,
//   log_p_i = z_{i,y_i} - lse_i,  counted(i) = !drop || log_p_i >= PROXY_SOFTMAX_UNDERFLOW,
//   L = sum_{counted} -log_p_i / count,
//   dL/dD_ic = -sg * scale * (p_ic - [c == y_i]) / count on counted rows (0 elsewhere).
// Scales are large (cosface 64, normalized-softmax 20, proxy-nca's user scale on raw distances),
// so the LSE is always max-shifted, in f64. proxy-nca's count is only known once every row is
// decided: its host passes inv_count = 1 and scales W by the reduced 1/count afterwards
// (scale_by_stat_f32) on the device; the other two count every row and pass 1/N.

// ln 2^-1075 (margin_core::ProxySoftmax::UNDERFLOW): a target probability below it is 0 in f64,
// and PML's proxy-nca drops such a sample from its mean.
#define PROXY_SOFTMAX_UNDERFLOW (-745.1332191019412)

// One block per sample row i (a power of two <= MARGIN_THREADS threads, for the block
// reductions); K may be large (thousands of classes), so the block strides over the row in each
// of its three passes: the maximum logit, the shifted sum, the weights. Every entry of row i of
// W is written (0 on a dropped row). W is its own buffer: the chain still reads Dxc afterwards
// (euclidean division), so nothing is done in place. part[i*2 + {0,1}] = (-log_p_i, 1) for a
// counted row, (0, 0) for a dropped one, summed by reduce_cols_f64. inv_count multiplies every
// weight (1/N, or 1 when the host scales by 1/count later).
extern "C" __global__ void proxy_softmax_rows_f32(const float* Dxc, const int* lab, int n, int kc,
                                                  float sg, double scale, double target_margin,
                                                  int drop, double inv_count, float* W,
                                                  double* part) {
    __shared__ double red[MARGIN_THREADS];
    const int i = blockIdx.x;
    if (i >= n) {
        return;
    }
    const size_t row = (size_t)i * kc;
    const int y = lab[i];
    auto logit = [&](int c) {
        const double e = (double)(sg * Dxc[row + c]);
        return scale * (-e - (c == y ? target_margin : 0.0));
    };
    double mx = MARGIN_NEG_INF;
    for (int c = threadIdx.x; c < kc; c += blockDim.x) {
        mx = fmax(mx, logit(c));
    }
    mx = block_max_f64(mx, red);
    double s = 0.0;
    for (int c = threadIdx.x; c < kc; c += blockDim.x) {
        s += exp(logit(c) - mx);
    }
    s = block_sum_f64(s, red);  // s >= 1: the maximum's own term is exp(0)
    const double lse = mx + log(s);
    const double log_p = logit(y) - lse;
    const bool counted = !drop || log_p >= PROXY_SOFTMAX_UNDERFLOW;
    // dL/dD = dL/dz * dz/de * de/dD = (p - onehot) * inv_count * (-scale) * sg.
    const double g = counted ? -(double)sg * scale * inv_count : 0.0;
    for (int c = threadIdx.x; c < kc; c += blockDim.x) {
        // p <= 1 (z never exceeds the LSE); p - 1 in f64 keeps the target's weight exact when
        // the row is confident.
        const double p = exp(logit(c) - lse);
        W[row + c] = (float)(g * (p - (c == y ? 1.0 : 0.0)));
    }
    if (threadIdx.x == 0) {
        part[(size_t)i * 2 + 0] = counted ? -log_p : 0.0;
        part[(size_t)i * 2 + 1] = counted ? 1.0 : 0.0;
    }
}

// W[j] *= stats[idx] over len elements: proxy-nca's 1/count (safe_inverse_f64 of the reduced
// count, 0 when no row counts), applied on the device so the loss call reads the stats once,
// at its end. One thread per element.
extern "C" __global__ void scale_by_stat_f32(float* W, size_t len, const double* stats, int idx) {
    const size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j < len) {
        W[j] = (float)((double)W[j] * stats[idx]);
    }
}
