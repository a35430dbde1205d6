// quadruplet.cu: the quadruplet loss's second term (stage 3), counted exactly.
//
// Term 2 pairs every ordered positive pair (a, p) with every ordered negative pair (k, l) whose
// labels both differ from y_a: active <=> (double)x + m2 > (double)z with x = e_ap, z = e_kl.
// All positive-pair values x are written as u64 keys and sorted twice on the device: globally
// (by value) and segmented by label (label in the high 32 bits). For a negative pair (k, l) the
// active x form a suffix in every sorted list, so its count is
//   (npos - loA) - (size_{y_k} - lo_{y_k}) - (size_{y_l} - lo_{y_l}),
// a subtraction of the per-label lists from the global one (y_k != y_l, so the two label lists
// are disjoint). Each negative pair also drops a +1 at its lower bound in a global histogram and
// in the histograms of both its labels' segments; after exclusive scans, the count of a positive
// pair of label c at global rank R and segment rank r is G[R+1] - (Sc[r+1] - Sc[0]).
// Loss sum = sum_pos cnt (x + m2) - sum_neg cnt z; W[a][p] += sg cnt s, W[k][l] -= sg cnt s.
// pstart[c] = first index of label c's positive pairs (size n_c (n_c - 1)); pstart[C] = npos.

// Writes the positive-pair keys of anchor a at pstart[c] + pos_in_label[a] * (n_c - 1) + rank.
extern "C" __global__ void quad_pair_keys_f32(const float* D, const int* lab, int n, float sg,
                                              const int* members, const int* mstart,
                                              const long long* pstart, const int* pos_in_label,
                                              u64* keys_g, u64* keys_s) {
    const int a = blockIdx.x;
    if (a >= n) {
        return;
    }
    const int c = lab[a];
    const int m0 = mstart[c];
    const int nc = mstart[c + 1] - m0;
    const int ia = pos_in_label[a];
    const size_t base = (size_t)pstart[c] + (size_t)ia * (size_t)(nc - 1);
    const size_t row = (size_t)a * n;
    for (int q = threadIdx.x; q < nc; q += blockDim.x) {
        const int p = members[m0 + q];
        if (p == a) {
            continue;
        }
        const size_t idx = base + (size_t)(q < ia ? q : q - 1);
        const unsigned ob = ordered_bits(sg * D[row + p]);
        keys_g[idx] = (u64)ob;
        keys_s[idx] = ((u64)(unsigned)c << 32) | (u64)ob;
    }
}

// Reference sets: the positive pairs of anchor a are the reference rows of its label
// (rmembers[rmstart[c] .. rmstart[c+1]), by index) but its self column, the one at position
// srank[a] of that list (-1: none); they are written at poff[a] + their rank among them.
extern "C" __global__ void quad_pair_keys_ref_f32(const float* D, const int* lab, int n, int m,
                                                  float sg, const int* rmembers,
                                                  const int* rmstart, const long long* poff,
                                                  const int* srank, u64* keys_g, u64* keys_s) {
    const int a = blockIdx.x;
    if (a >= n) {
        return;
    }
    const int c = lab[a];
    const int m0 = rmstart[c];
    const int nc = rmstart[c + 1] - m0;
    const int sr = srank[a];
    const size_t base = (size_t)poff[a];
    const size_t row = (size_t)a * m;
    for (int q = threadIdx.x; q < nc; q += blockDim.x) {
        if (q == sr) {
            continue;
        }
        const int p = rmembers[m0 + q];
        const size_t idx = base + (size_t)(sr >= 0 && q > sr ? q - 1 : q);
        const unsigned ob = ordered_bits(sg * D[row + p]);
        keys_g[idx] = (u64)ob;
        keys_s[idx] = ((u64)(unsigned)c << 32) | (u64)ob;
    }
}

// Negative-pair side, one block per row k. build: fills the histograms and writes
// part[k*stride + {2,3}] = -sum cnt z, sum cnt. write_w: W[k][l] -= sg * cnt * scale.
// Rectangular form: row k pairs with the m reference columns labelled rlab (square: rlab = lab,
// m = n; the diagonal has k's own label and never is a negative pair).
__device__ void quad_neg_body(const float* D, const int* lab, const int* rlab, int n, int m,
                              float sg, double m2, const float* xs_g, const float* xs_s,
                              const long long* pstart, size_t npos, u64* hist_g, u64* hist_s,
                              int build, double* part, int stride, int write_w, float* W,
                              const double* stats, int scale_idx, int k0) {
    __shared__ double red[MARGIN_THREADS];
    const int k = k0 + blockIdx.x;
    if (k >= n) {
        return;
    }
    const size_t row = (size_t)k * m;
    // W holds rows k0.. (all rows when k0 = 0).
    const size_t wrow = (size_t)(k - k0) * m;
    const int c1 = lab[k];
    const size_t b1 = (size_t)pstart[c1];
    const size_t s1 = (size_t)pstart[c1 + 1] - b1;
    const double scale = stat_scale(stats, scale_idx);
    double loss = 0.0, count = 0.0;
    for (int l = threadIdx.x; l < m; l += blockDim.x) {
        const int c2 = rlab[l];
        if (c2 == c1) {
            continue;
        }
        const size_t b2 = (size_t)pstart[c2];
        const size_t s2 = (size_t)pstart[c2 + 1] - b2;
        const float z = sg * D[row + l];
        const double dz = (double)z;
        auto inactive = [&](float x) { return !((double)x + m2 > dz); };
        const size_t lo_all = partition_point_big(xs_g, npos, inactive);
        const size_t lo1 = partition_point_big(xs_s + b1, s1, inactive);
        const size_t lo2 = partition_point_big(xs_s + b2, s2, inactive);
        const u64 cnt = (u64)((npos - lo_all) - (s1 - lo1) - (s2 - lo2));
        if (build) {
            if (lo_all < npos) {
                atomicAdd(&hist_g[lo_all], 1ULL);
            }
            if (lo1 < s1) {
                atomicAdd(&hist_s[b1 + lo1], 1ULL);
            }
            if (lo2 < s2) {
                atomicAdd(&hist_s[b2 + lo2], 1ULL);
            }
        }
        if (cnt > 0) {
            loss -= (double)cnt * dz;
            count += (double)cnt;
            if (write_w) {
                W[wrow + l] -= (float)(sg * (double)cnt * scale);
            }
        }
    }
    if (build) {
        loss = block_sum_f64(loss, red);
        count = block_sum_f64(count, red);
        if (threadIdx.x == 0) {
            part[(size_t)k * stride + 2] = loss;
            part[(size_t)k * stride + 3] = count;
        }
    }
}

extern "C" __global__ void quad_neg_pairs_f32(const float* D, const int* lab, int n, float sg,
                                              double m2, const float* xs_g, const float* xs_s,
                                              const long long* pstart, size_t npos, u64* hist_g,
                                              u64* hist_s, int build, double* part, int stride,
                                              int write_w, float* W, const double* stats,
                                              int scale_idx) {
    quad_neg_body(D, lab, lab, n, n, sg, m2, xs_g, xs_s, pstart, npos, hist_g, hist_s, build,
                  part, stride, write_w, W, stats, scale_idx, 0);
}

extern "C" __global__ void quad_neg_pairs_ref_f32(const float* D, const int* lab,
                                                  const int* rlab, int n, int m, float sg,
                                                  double m2, const float* xs_g,
                                                  const float* xs_s, const long long* pstart,
                                                  size_t npos, u64* hist_g, u64* hist_s,
                                                  int build, double* part, int stride,
                                                  int write_w, float* W, const double* stats,
                                                  int scale_idx) {
    quad_neg_body(D, lab, rlab, n, m, sg, m2, xs_g, xs_s, pstart, npos, hist_g, hist_s, build,
                  part, stride, write_w, W, stats, scale_idx, 0);
}

// Positive-pair side, one block per anchor a. excl_g / excl_s: exclusive scans of the
// histograms (npos + 1 entries). write_stats: part[a*stride + 4] = sum cnt (x + m2).
// write_w: W[a][p] += sg * cnt * scale.
// Rectangular form: the positives of anchor a are the columns labelled like it but
// skip_col(excl, a).
__device__ void quad_pos_body(const float* D, const int* lab, const int* rlab, int n, int m,
                              const unsigned* excl, float sg, double m2, const float* xs_g,
                              const float* xs_s, const long long* pstart, size_t npos,
                              const u64* excl_g, const u64* excl_s, int write_stats,
                              double* part, int stride, int write_w, float* W,
                              const double* stats, int scale_idx, int k0) {
    __shared__ double red[MARGIN_THREADS];
    const int a = k0 + blockIdx.x;
    if (a >= n) {
        return;
    }
    const size_t row = (size_t)a * m;
    // W holds rows k0.. (all rows when k0 = 0).
    const size_t wrow = (size_t)(a - k0) * m;
    const int c = lab[a];
    const int skip = skip_col(excl, a);
    const size_t b = (size_t)pstart[c];
    const size_t sc = (size_t)pstart[c + 1] - b;
    const double scale = stat_scale(stats, scale_idx);
    double loss = 0.0;
    for (int p = threadIdx.x; p < m; p += blockDim.x) {
        if (p == skip || rlab[p] != c) {
            continue;
        }
        const float x = sg * D[row + p];
        auto below = [&](float v) { return v < x; };
        const size_t rg = partition_point_big(xs_g, npos, below);
        const size_t rs = partition_point_big(xs_s + b, sc, below);
        const u64 cnt = excl_g[rg + 1] - (excl_s[b + rs + 1] - excl_s[b]);
        if (cnt > 0) {
            loss += (double)cnt * ((double)x + m2);
            if (write_w) {
                W[wrow + p] += (float)(sg * (double)cnt * scale);
            }
        }
    }
    if (write_stats) {
        loss = block_sum_f64(loss, red);
        if (threadIdx.x == 0) {
            part[(size_t)a * stride + 4] = loss;
        }
    }
}

extern "C" __global__ void quad_pos_pairs_f32(const float* D, const int* lab, int n, float sg,
                                              double m2, const float* xs_g, const float* xs_s,
                                              const long long* pstart, size_t npos,
                                              const u64* excl_g, const u64* excl_s,
                                              int write_stats, double* part, int stride,
                                              int write_w, float* W, const double* stats,
                                              int scale_idx) {
    quad_pos_body(D, lab, lab, n, n, nullptr, sg, m2, xs_g, xs_s, pstart, npos, excl_g, excl_s,
                  write_stats, part, stride, write_w, W, stats, scale_idx, 0);
}

extern "C" __global__ void quad_pos_pairs_ref_f32(const float* D, const int* lab,
                                                  const int* rlab, int n, int m,
                                                  const unsigned* excl, float sg, double m2,
                                                  const float* xs_g, const float* xs_s,
                                                  const long long* pstart, size_t npos,
                                                  const u64* excl_g, const u64* excl_s,
                                                  int write_stats, double* part, int stride,
                                                  int write_w, float* W, const double* stats,
                                                  int scale_idx) {
    quad_pos_body(D, lab, rlab, n, m, excl, sg, m2, xs_g, xs_s, pstart, npos, excl_g, excl_s,
                  write_stats, part, stride, write_w, W, stats, scale_idx, 0);
}

// Term 2's weights of rows [k0, k0 + blocks) into the zeroed chunk buffer W (row k at
// (k - k0) * m), for the quadruplet's last pass over chunks of rows (the triplet kernel then adds
// them as it rewrites those rows of D in place): the negative-pair side, then the positive-pair
// side once the histograms are scanned (excl_g, excl_s). Written for the N x M rectangle; the
// square case passes rlab = lab, m = n and excl[i] = i.
extern "C" __global__ void quad_neg_rows_f32(const float* D, const int* lab, const int* rlab,
                                             int n, int m, float sg, double m2,
                                             const float* xs_g, const float* xs_s,
                                             const long long* pstart, size_t npos, int k0,
                                             float* W, const double* stats, int scale_idx) {
    quad_neg_body(D, lab, rlab, n, m, sg, m2, xs_g, xs_s, pstart, npos, nullptr, nullptr, 0,
                  nullptr, 0, 1, W, stats, scale_idx, k0);
}

extern "C" __global__ void quad_pos_rows_f32(const float* D, const int* lab, const int* rlab,
                                             int n, int m, const unsigned* excl, float sg,
                                             double m2, const float* xs_g, const float* xs_s,
                                             const long long* pstart, size_t npos,
                                             const u64* excl_g, const u64* excl_s, int k0,
                                             float* W, const double* stats, int scale_idx) {
    quad_pos_body(D, lab, rlab, n, m, excl, sg, m2, xs_g, xs_s, pstart, npos, excl_g, excl_s, 0,
                  nullptr, 0, 1, W, stats, scale_idx, k0);
}
