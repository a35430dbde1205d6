// chain.cu: preparing the weight matrix W = dL/dD for the gradient product (stage 4).

// In place: W[i][j] = W[j][i] = scale(i, j) * (W[i][j] + W[j][i]) / (euclid ? D[i][j] : 1), with
// 0 where an euclidean distance is 0 (the SPEC's gradient at 0). scale is stats[pos_idx] for a
// positive pair, stats[neg_idx] for a negative one (1 for an index < 0): losses that reduce with
// AvgNonZero write raw counts and are scaled here, without a host round trip. Each unordered pair
// is handled by exactly one thread (the one with i <= j). Grid (ceil(n/16), ceil(n/16)), 16x16.
extern "C" __global__ void chain_prep_f32(float* W, const float* D, const int* lab,
                                          const double* stats, int pos_idx, int neg_idx, int n,
                                          int euclid) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const int i = blockIdx.y * blockDim.y + threadIdx.y;
    if (i >= n || j >= n || j < i) {
        return;
    }
    const size_t ij = (size_t)i * n + j;
    const size_t ji = (size_t)j * n + i;
    double m = (double)W[ij] + (double)W[ji];
    m *= (lab[i] == lab[j]) ? stat_scale(stats, pos_idx) : stat_scale(stats, neg_idx);
    if (euclid) {
        const float dist = D[ij];
        m = dist > 0.0f ? m / (double)dist : 0.0;
    }
    W[ij] = (float)m;
    W[ji] = (float)m;
}

// W[i] = D[i] > 0 ? W[i] / D[i] : 0 over len elements (euclidean, against centers).
extern "C" __global__ void div_by_dist_f32(float* W, const float* D, size_t len) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) {
        return;
    }
    const float dist = D[i];
    W[i] = dist > 0.0f ? W[i] / dist : 0.0f;
}

// rs[i] = sum_j M[i][j] (f64 accumulation). One block per row.
extern "C" __global__ void row_sums_f32(const float* M, float* rs, int rows, int cols) {
    __shared__ double red[MARGIN_THREADS];
    const int row = blockIdx.x;
    if (row >= rows) {
        return;
    }
    const float* mr = M + (size_t)row * cols;
    double s = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        s += mr[c];
    }
    s = block_sum_f64(s, red);
    if (threadIdx.x == 0) {
        rs[row] = (float)s;
    }
}

// cs[c] = sum_i M[i][c] (f64 accumulation). One thread per column.
extern "C" __global__ void col_sums_f32(const float* M, float* cs, int rows, int cols) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    double s = 0.0;
    for (int i = 0; i < rows; ++i) {
        s += M[(size_t)i * cols + c];
    }
    cs[c] = (float)s;
}

// Reference sets (docs/REFERENCE_SETS.md section 6): W is N x M and only the anchor side gets a
// gradient, so there is no W + W^T. In place over all n * m entries: W[i][j] = scale(i, j) *
// W[i][j] / (euclid ? D[i][j] : 1) (0 where an euclidean distance is 0), scale = stats[pos_idx]
// when lab[i] == rlab[j], else stats[neg_idx] (1 for an index < 0). One thread per entry.
extern "C" __global__ void chain_prep_rect_f32(float* W, const float* D, const int* lab,
                                               const int* rlab, const double* stats, int pos_idx,
                                               int neg_idx, int n, int m, int euclid) {
    const size_t at = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (at >= (size_t)n * (size_t)m) {
        return;
    }
    const int i = (int)(at / (size_t)m);
    const int j = (int)(at % (size_t)m);
    double w = (double)W[at];
    if (w == 0.0) {
        return;
    }
    w *= (lab[i] == rlab[j]) ? stat_scale(stats, pos_idx) : stat_scale(stats, neg_idx);
    if (euclid) {
        const float dist = D[at];
        w = dist > 0.0f ? w / (double)dist : 0.0;
    }
    W[at] = (float)w;
}
