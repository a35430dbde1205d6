// proxy_anchor.cu: stage 3 (weights) of the proxy-anchor loss (PML ProxyAnchorLoss) over the
// N x K matrix Dxc of distances between the batch and the K proxies (the centers; labels index
// them). Its terms are per proxy, i.e. per column, where every other loss here works per row.
//
// With e = sg * D (sg = +1 for a distance, -1 for a similarity) and m' = sg * margin, per proxy
// c over its positives P(c) (lab[i] == c) and negatives N(c) (the other rows):
//   x_ic = alpha (e_ic - m') on P(c),  alpha (-m' - e_ic) on N(c)
//   lp_c = log(1 + sum_P exp x),  ln_c = log(1 + sum_N exp x)  (0 for an empty side)
//   L = sum_c lp_c / cpos + sum_c ln_c / K,  cpos = proxies with a positive
// and dL/dD_ic = sg alpha exp(x_ic - lp_c) / cpos on P(c), -sg alpha exp(x_ic - ln_c) / K on N(c).
// alpha = 32 puts exponents far past exp's f64 range for unnormalized distances, so each side is
// taken max-shifted with the "1 +" as exp(0): M = max(0, max x), lse = M + log(exp(-M) +
// sum exp(x - M)). The host knows cpos and K from the labels, so the weights come out final.

// Reduces a and b over threadIdx.y for every threadIdx.x (sum, or max with take_max): each
// column of the block gets its own two results. blockDim.y must be a power of two; `red` holds
// 2 * MARGIN_THREADS doubles. Every thread of the block must call it (it has barriers).
__device__ __forceinline__ void column_reduce2(double& a, double& b, bool take_max, double* red) {
    const unsigned at = threadIdx.y * blockDim.x + threadIdx.x;
    double* ra = red;
    double* rb = red + MARGIN_THREADS;
    __syncthreads();
    ra[at] = a;
    rb[at] = b;
    __syncthreads();
    for (unsigned s = blockDim.y / 2; s > 0; s >>= 1) {
        if (threadIdx.y < s) {
            const unsigned o = at + s * blockDim.x;
            ra[at] = take_max ? fmax(ra[at], ra[o]) : ra[at] + ra[o];
            rb[at] = take_max ? fmax(rb[at], rb[o]) : rb[at] + rb[o];
        }
        __syncthreads();
    }
    a = ra[threadIdx.x];
    b = rb[threadIdx.x];
    __syncthreads();
}

// One block holds blockDim.x consecutive proxies (columns) side by side, so that a warp reads
// consecutive addresses of a row when K is large, and blockDim.y threads (a power of two,
// blockDim.x * blockDim.y <= MARGIN_THREADS) stride down the N rows of each column; with a
// small K the host makes blockDim.x small and blockDim.y large, so the rows still spread over
// the block. Three passes over the column: the maxima, the shifted sums, the weights.
// W (N x K) receives every entry of the block's columns (final dL/dD; stage 4's chain_centers
// divides by the euclidean distance); part[c] = lp_c * inv_pos + ln_c * inv_k, summed by
// reduce_cols_f64. inv_pos = 1 / cpos, inv_k = 1 / K.
extern "C" __global__ void proxy_anchor_cols_f32(const float* Dxc, const int* lab, int n, int kc,
                                                 float sg, double margin, double alpha,
                                                 double inv_pos, double inv_k, float* W,
                                                 double* part) {
    __shared__ double red[2 * MARGIN_THREADS];
    const int c = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    // Threads past the last proxy hold empty columns but still join every reduction's barriers.
    const bool live = c < kc;
    const double m = (double)sg * margin;
    // x_ic, and whether row i is a positive of proxy c.
    auto exponent = [&](int i, bool& pos) {
        const double e = (double)(sg * Dxc[(size_t)i * kc + c]);
        pos = lab[i] == c;
        return pos ? alpha * (e - m) : alpha * (-m - e);
    };
    // Both maxima start at 0: the "1 +" of each log is exp(0), so M = max(0, max x).
    double mp = 0.0, mn = 0.0;
    for (int i = threadIdx.y; live && i < n; i += blockDim.y) {
        bool pos;
        const double x = exponent(i, pos);
        if (pos) {
            mp = fmax(mp, x);
        } else {
            mn = fmax(mn, x);
        }
    }
    column_reduce2(mp, mn, true, red);
    double sp = 0.0, sn = 0.0;
    for (int i = threadIdx.y; live && i < n; i += blockDim.y) {
        bool pos;
        const double x = exponent(i, pos);
        if (pos) {
            sp += exp(x - mp);
        } else {
            sn += exp(x - mn);
        }
    }
    column_reduce2(sp, sn, false, red);
    if (!live) {
        return;  // after the block's last barrier
    }
    const double lp = mp + log(exp(-mp) + sp);
    const double ln = mn + log(exp(-mn) + sn);
    const double gp = (double)sg * alpha * inv_pos;
    const double gn = -(double)sg * alpha * inv_k;
    for (int i = threadIdx.y; i < n; i += blockDim.y) {
        bool pos;
        const double x = exponent(i, pos);
        // exp(x - lse) <= 1: x never exceeds its side's log-sum-exp.
        const double w = pos ? gp * exp(x - lp) : gn * exp(x - ln);
        W[(size_t)i * kc + c] = (float)w;
    }
    if (threadIdx.y == 0) {
        part[c] = lp * inv_pos + ln * inv_k;
    }
}
