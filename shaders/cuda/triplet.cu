// triplet.cu: batch-all and semihard triplets (stage 3), also the quadruplet loss's first term.
//
// Per anchor a (one block, grid-stride over anchors; each block owns a scratch slice):
//   x_p = e_ap for positives p, y_n = e_an for negatives n (e = sg * D).
//   all:      (p, n) active  <=>  (double)x + m > (double)y          (v = x - y + m > 0)
//   semihard: mined <=> 0 < y - x <= m, active (relu) <=> 0 < y - x < m   (in f64)
// Exact counting without enumerating triplets (docs/ALGORITHMS.md stage 3): the smaller side S
// is sorted; for every element u of the other side the active partners in S form a rank range
// [lo, hi) found by binary search, so u's count is hi - lo; a difference array (+1 at lo, -1 at
// hi) prefix-summed gives the count of every S rank, and an S element finds its rank by binary
// search of its own value (ties share a predicate, hence a count). With per-element counts c the
// loss sum is sum_p c_p (x_p + m) - sum_n c_n y_n and W[a][p] = +c_p, W[a][n] = -c_n (times sg,
// times scale). The smooth (softplus) variant has no such structure and loops over partners.

// part[a*stride + {0,1}] = loss sum, active count (written when write_stats).
// W[a][j] += sg * count * scale, scale = stats[scale_idx] (1 when < 0) (when write_w); in place
// (RowOut, write_w only) every entry of row a is written instead: after the first loop has copied
// the row to the scratch, each later loop reads only the entries it then writes.
// scratch: gridDim.x * 2 * cap floats; diff: gridDim.x * (cap + 1) ints; cap = pow2 >= n.
// Rectangular form (reference sets): row a has m columns labelled rlab and skips column
// skip_col(excl, a) (the diagonal when excl == nullptr); cap = pow2 >= m.
__device__ void triplet_body(const float* D, const int* lab, const int* rlab, int n, int m,
                             const unsigned* excl, float sg, double margin, int semihard,
                             int smooth, RowOut out, double* part, int stride, int write_stats,
                             int write_w, const double* stats, int scale_idx, float* scratch,
                             int* diff, int cap, int a0) {
    __shared__ int counts[2];
    __shared__ float smem[MARGIN_SORT_SMEM];
    __shared__ double red[MARGIN_THREADS];
    __shared__ int tot[MARGIN_THREADS];
    float* P = scratch + (size_t)blockIdx.x * 2 * cap;
    float* Q = P + cap;
    int* df = diff + (size_t)blockIdx.x * (cap + 1);
    const double scale = stat_scale(stats, scale_idx);
    const double mg = margin;
    for (int a = a0 + blockIdx.x; a < n; a += gridDim.x) {
        __syncthreads();
        if (threadIdx.x == 0) {
            counts[0] = 0;
            counts[1] = 0;
        }
        __syncthreads();
        const size_t row = (size_t)a * m;
        const int la = lab[a];
        const int skip = skip_col(excl, a);
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            if (j == skip) {
                continue;
            }
            const float e = sg * D[row + j];
            if (rlab[j] == la) {
                P[atomicAdd(&counts[0], 1)] = e;
            } else {
                Q[atomicAdd(&counts[1], 1)] = e;
            }
        }
        __syncthreads();
        const int mp = counts[0];
        const int mn = counts[1];
        double loss = 0.0;
        double count = 0.0;
        if (mp > 0 && mn > 0 && smooth) {
            for (int j = threadIdx.x; j < m; j += blockDim.x) {
                if (j == skip) {
                    continue;
                }
                const float dist = D[row + j];
                const float v = sg * dist;
                double s = 0.0;
                if (rlab[j] == la) {
                    for (int t = 0; t < mn; ++t) {
                        const double delta = (double)Q[t] - (double)v;
                        if (!semihard || (delta > 0.0 && delta <= mg)) {
                            s += sigmoid_f64((double)v - (double)Q[t] + mg);
                        }
                    }
                    if (write_w) {
                        put_weight(out, row + j, sg * s * scale, dist);
                    }
                } else {
                    for (int t = 0; t < mp; ++t) {
                        const double delta = (double)v - (double)P[t];
                        if (!semihard || (delta > 0.0 && delta <= mg)) {
                            const double vv = (double)P[t] - (double)v + mg;
                            s += sigmoid_f64(vv);
                            loss += softplus_f64(vv);
                            count += 1.0;
                        }
                    }
                    if (write_w) {
                        put_weight(out, row + j, -sg * s * scale, dist);
                    }
                }
            }
        } else if (mp > 0 && mn > 0) {
            const bool sort_neg = mn <= mp;
            float* S = sort_neg ? Q : P;
            const int ms = sort_neg ? mn : mp;
            block_sort_values(S, ms, smem);
            for (int r = threadIdx.x; r <= ms; r += blockDim.x) {
                df[r] = 0;
            }
            __syncthreads();
            int lo_zero = 0;
            // The unsorted side U: positives when the negatives are sorted, and vice versa.
            for (int j = threadIdx.x; j < m; j += blockDim.x) {
                if (j == skip) {
                    continue;
                }
                const bool is_pos = rlab[j] == la;
                if (is_pos != sort_neg) {
                    continue;
                }
                const float dist = D[row + j];
                const float v = sg * dist;
                const double dv = (double)v;
                int lo, hi;
                if (sort_neg) {  // v = x, S holds the y values ascending
                    if (semihard) {
                        lo = partition_point(S, ms, [&](float y) { return (double)y - dv <= 0.0; });
                        hi = partition_point(S, ms, [&](float y) { return (double)y - dv < mg; });
                    } else {
                        lo = 0;
                        hi = partition_point(S, ms, [&](float y) { return dv + mg > (double)y; });
                    }
                } else {  // v = y, S holds the x values ascending
                    if (semihard) {
                        lo = partition_point(S, ms, [&](float x) { return dv - (double)x >= mg; });
                        hi = partition_point(S, ms, [&](float x) { return dv - (double)x > 0.0; });
                    } else {
                        lo = partition_point(S, ms,
                                             [&](float x) { return !((double)x + mg > dv); });
                        hi = ms;
                    }
                }
                if (hi < lo) {
                    hi = lo;
                }
                const int c = hi - lo;
                if (c > 0) {
                    // Ranks 0 and ms are hit by most elements in batch-all: count rank 0 in a
                    // register (one atomic per thread below) and skip rank ms, never read.
                    if (lo == 0) {
                        ++lo_zero;
                    } else {
                        atomicAdd(&df[lo], 1);
                    }
                    if (hi < ms) {
                        atomicAdd(&df[hi], -1);
                    }
                    if (is_pos) {
                        loss += (double)c * (dv + mg);
                        count += (double)c;
                    } else {
                        loss -= (double)c * dv;
                    }
                }
                if (write_w) {
                    const double w = c > 0 ? (is_pos ? sg : -sg) * (double)c * scale : 0.0;
                    put_weight(out, row + j, w, dist);
                }
            }
            if (lo_zero > 0) {
                atomicAdd(&df[0], lo_zero);
            }
            __syncthreads();
            block_inclusive_scan_int(df, ms + 1, tot);
            // The sorted side: count of an element = prefix of the difference array at its rank.
            for (int j = threadIdx.x; j < m; j += blockDim.x) {
                if (j == skip) {
                    continue;
                }
                const bool is_pos = rlab[j] == la;
                if (is_pos == sort_neg) {
                    continue;
                }
                const float dist = D[row + j];
                const float v = sg * dist;
                const int r = partition_point(S, ms, [&](float s) { return s < v; });
                const int c = df[r];
                if (c > 0) {
                    if (is_pos) {
                        loss += (double)c * ((double)v + mg);
                        count += (double)c;
                    } else {
                        loss -= (double)c * (double)v;
                    }
                }
                if (write_w) {
                    const double w = c > 0 ? (is_pos ? sg : -sg) * (double)c * scale : 0.0;
                    put_weight(out, row + j, w, dist);
                }
            }
        }
        if (write_w) {
            // What no loop above wrote: the skipped column, or the whole row when it lacks a
            // positive or a negative (the first loop's reads ended at its barrier).
            for (int j = threadIdx.x; j < m; j += blockDim.x) {
                if (j == skip || mp == 0 || mn == 0) {
                    if (out.add != nullptr) {
                        put_weight(out, row + j, 0.0, D[row + j]);
                    } else {
                        put_none(out, row + j);
                    }
                }
            }
        }
        loss = block_sum_f64(loss, red);
        count = block_sum_f64(count, red);
        if (write_stats && threadIdx.x == 0) {
            part[(size_t)a * stride + 0] = loss;
            part[(size_t)a * stride + 1] = count;
        }
    }
}

// In place (RowOut, with write_w): DW holds the distances and receives the weights. The
// quadruplet's first term runs it over a copy of the distances (euclid = 0: raw weights).
extern "C" __global__ void triplet_rows_f32(float* DW, const int* lab, int n, float sg,
                                            double margin, int semihard, int smooth, int euclid,
                                            double* part, int stride, int write_stats,
                                            int write_w, const double* stats, int scale_idx,
                                            float* scratch, int* diff, int cap) {
    triplet_body(DW, lab, lab, n, n, nullptr, sg, margin, semihard, smooth,
                 RowOut{DW, euclid}, part, stride, write_stats, write_w, stats, scale_idx,
                 scratch, diff, cap, 0);
}

// The quadruplet's last pass over anchors [a0, a1) of the N x M matrix (square: rlab = lab,
// m = n, excl[i] = i), in place: weights sg * count * stats[scale_idx] plus
// add[(a - a0) * m + j] (term 2's weights of the chunk).
extern "C" __global__ void triplet_rows_add_f32(float* DW, const int* lab, const int* rlab, int a0,
                                                int a1, int m, const unsigned* excl, float sg,
                                                double margin, int euclid, const double* stats,
                                                int scale_idx, const float* add, float* scratch,
                                                int* diff, int cap) {
    const RowOut out{DW, euclid, add, (long long)a0 * m};
    // The body's rows run from a0 to its `n` argument (a1); its columns are all m.
    triplet_body(DW, lab, rlab, a1, m, excl, sg, margin, 0, 0, out, nullptr, 0, 0, 1, stats,
                 scale_idx, scratch, diff, cap, a0);
}

// Reference sets, in place over the N x M matrix DW (as triplet_rows_f32; the quadruplet's
// first term runs it over a copy of the distances with euclid = 0).
extern "C" __global__ void triplet_ref_rows_f32(float* DW, const int* lab, const int* rlab, int n,
                                                int m, const unsigned* excl, float sg,
                                                double margin, int semihard, int smooth,
                                                int euclid, double* part, int stride,
                                                int write_stats, int write_w,
                                                const double* stats, int scale_idx,
                                                float* scratch, int* diff, int cap) {
    triplet_body(DW, lab, rlab, n, m, excl, sg, margin, semihard, smooth,
                 RowOut{DW, euclid}, part, stride, write_stats, write_w, stats, scale_idx,
                 scratch, diff, cap, 0);
}
