// quad_hard.cu: the quadruplet loss with hard mining (stage 3), O(N^2), in four launches:
//   1. quad_hard_top2_f32     per row k: its smallest negative entry (v1 at l1) and its smallest
//                             entry among l with y_l not in {y_k, y_l1} (v2 at l2);
//   2. quad_hard_class_f32    per class c: the smallest e_kl over ordered pairs whose labels differ
//                             from each other and from c, as the min over rows k (y_k != c) of
//                             (v1, l1) when y_l1 != c, else (v2, l2); ties lowest k, then lowest l;
//   3. quad_hard_rows_f32     per anchor: hardest positive p*, hardest negative n*, both terms;
//   (host: reduce the per-anchor partials, 1/count of each term on the device)
//   4. quad_hard_inplace_f32  per row, in place over the distances (the SPEC's one matrix): adds
//                             the number of anchors of each class with an active term 2 at that
//                             class's pair (integer-valued float atomics: exact, so the result does
//                             not depend on the order), turns those counts into -sg * count / c2,
//                             then writes the row's term-1 and positive weights.
// Each has a rectangular form for reference sets (the `_ref_` kernels; step 4 takes rlab and m).
// e = sg * D; the margins are not multiplied by sg (as in triplet). Ties: lowest index.

// v1/l1, v2/l2 per row (l = -1 when there is no such entry).
// Rectangular form (reference sets): row k has m columns labelled rlab; the square kernel is
// rlab = lab, m = n.
__device__ void quad_hard_top2_body(const float* D, const int* lab, const int* rlab, int n, int m,
                                    float sg, float* v1, int* l1, float* v2, int* l2) {
    __shared__ float sval[MARGIN_THREADS];
    __shared__ int sidx[MARGIN_THREADS];
    const int k = blockIdx.x;
    if (k >= n) {
        return;
    }
    const size_t row = (size_t)k * m;
    const int yk = lab[k];
    float best = 0.0f;
    int bi = -1;
    for (int l = threadIdx.x; l < m; l += blockDim.x) {
        const float e = sg * D[row + l];
        if (rlab[l] != yk && (bi < 0 || e < best)) {
            best = e;
            bi = l;
        }
    }
    block_arg_best(best, bi, false, sval, sidx);
    const int c1 = bi >= 0 ? rlab[bi] : yk;
    float best2 = 0.0f;
    int bi2 = -1;
    for (int l = threadIdx.x; l < m; l += blockDim.x) {
        const float e = sg * D[row + l];
        const int yl = rlab[l];
        if (yl != yk && yl != c1 && (bi2 < 0 || e < best2)) {
            best2 = e;
            bi2 = l;
        }
    }
    block_arg_best(best2, bi2, false, sval, sidx);
    if (threadIdx.x == 0) {
        v1[k] = best;
        l1[k] = bi;
        v2[k] = best2;
        l2[k] = bi2;
    }
}

extern "C" __global__ void quad_hard_top2_f32(const float* D, const int* lab, int n, float sg,
                                              float* v1, int* l1, float* v2, int* l2) {
    quad_hard_top2_body(D, lab, lab, n, n, sg, v1, l1, v2, l2);
}

extern "C" __global__ void quad_hard_top2_ref_f32(const float* D, const int* lab, const int* rlab,
                                                  int n, int m, float sg, float* v1, int* l1,
                                                  float* v2, int* l2) {
    quad_hard_top2_body(D, lab, rlab, n, m, sg, v1, l1, v2, l2);
}

// cv/ck/cl per class c (ck = -1 when no pair avoids c). One block per class.
// Rectangular form: l1 / l2 are reference columns labelled rlab.
__device__ void quad_hard_class_body(const int* lab, const int* rlab, int n, int classes,
                                     const float* v1, const int* l1, const float* v2,
                                     const int* l2, float* cv, int* ck, int* cl) {
    __shared__ float sval[MARGIN_THREADS];
    __shared__ int sidx[MARGIN_THREADS];
    const int c = blockIdx.x;
    if (c >= classes) {
        return;
    }
    float best = 0.0f;
    int bk = -1;
    for (int k = threadIdx.x; k < n; k += blockDim.x) {
        if (lab[k] == c) {
            continue;
        }
        const int a = l1[k];
        float v;
        if (a >= 0 && rlab[a] != c) {
            v = v1[k];
        } else if (l2[k] >= 0) {
            v = v2[k];
        } else {
            continue;
        }
        if (bk < 0 || v < best) {
            best = v;
            bk = k;
        }
    }
    block_arg_best(best, bk, false, sval, sidx);
    if (threadIdx.x == 0) {
        int l = -1;
        if (bk >= 0) {
            const int a = l1[bk];
            l = (a >= 0 && rlab[a] != c) ? a : l2[bk];
        }
        cv[c] = best;
        ck[c] = bk;
        cl[c] = l;
    }
}

extern "C" __global__ void quad_hard_class_f32(const int* lab, int n, int classes, const float* v1,
                                               const int* l1, const float* v2, const int* l2,
                                               float* cv, int* ck, int* cl) {
    quad_hard_class_body(lab, lab, n, classes, v1, l1, v2, l2, cv, ck, cl);
}

extern "C" __global__ void quad_hard_class_ref_f32(const int* lab, const int* rlab, int n,
                                                   int classes, const float* v1, const int* l1,
                                                   const float* v2, const int* l2, float* cv,
                                                   int* ck, int* cl) {
    quad_hard_class_body(lab, rlab, n, classes, v1, l1, v2, l2, cv, ck, cl);
}

// Per anchor a with a positive and a negative: t1 = relu(e_ap* - e_an* + m1),
// t2 = relu(e_ap* - cv[y_a] + m2) when its class has a pair. part[a*4 + {0,1,2,3}] = t1, [t1 > 0],
// t2, [t2 > 0]; sel[a*3 + {0,1,2}] = p*, n*, flags (1: t1 active, 2: t2 active);
// active2[y_a] counts the anchors of the class with an active t2.
// Rectangular form: p* is chosen over the positives and the self column, which drops the anchor
// when it wins (docs/REFERENCE_SETS.md 3.10, as batch-hard triplet); the square kernel skips the
// diagonal.
__device__ void quad_hard_rows_body(const float* D, const int* lab, const int* rlab, int n, int m,
                                    const unsigned* excl, float sg, double m1, double m2,
                                    const float* cv, const int* ck, int* sel, double* part,
                                    int* active2) {
    __shared__ float sval[MARGIN_THREADS];
    __shared__ int sidx[MARGIN_THREADS];
    const int a = blockIdx.x;
    if (a >= n) {
        return;
    }
    const int la = lab[a];
    float bp, bn;
    int ip, in;
    const int skip = excl == nullptr ? a : -1;
    const int self = excl == nullptr ? -1 : skip_col(excl, a);
    row_hardest(D, lab, rlab, m, sg, a, skip, bp, ip, bn, in, sval, sidx);
    if (threadIdx.x == 0) {
        double t1 = 0.0, t2 = 0.0;
        int flags = 0;
        if (ip >= 0 && in >= 0 && ip != self) {
            t1 = (double)bp - (double)bn + m1;
            if (t1 > 0.0) {
                flags |= 1;
            }
            if (ck[la] >= 0) {
                t2 = (double)bp - (double)cv[la] + m2;
                if (t2 > 0.0) {
                    flags |= 2;
                    atomicAdd(&active2[la], 1);
                }
            }
        }
        part[(size_t)a * 4 + 0] = (flags & 1) ? t1 : 0.0;
        part[(size_t)a * 4 + 1] = (flags & 1) ? 1.0 : 0.0;
        part[(size_t)a * 4 + 2] = (flags & 2) ? t2 : 0.0;
        part[(size_t)a * 4 + 3] = (flags & 2) ? 1.0 : 0.0;
        sel[(size_t)a * 3 + 0] = ip;
        sel[(size_t)a * 3 + 1] = in;
        sel[(size_t)a * 3 + 2] = flags;
    }
}

extern "C" __global__ void quad_hard_rows_f32(const float* D, const int* lab, int n, float sg,
                                              double m1, double m2, const float* cv,
                                              const int* ck, int* sel, double* part,
                                              int* active2) {
    quad_hard_rows_body(D, lab, lab, n, n, nullptr, sg, m1, m2, cv, ck, sel, part, active2);
}

extern "C" __global__ void quad_hard_rows_ref_f32(const float* D, const int* lab, const int* rlab,
                                                  int n, int m, const unsigned* excl, float sg,
                                                  double m1, double m2, const float* cv,
                                                  const int* ck, int* sel, double* part,
                                                  int* active2) {
    quad_hard_rows_body(D, lab, rlab, n, m, excl, sg, m1, m2, cv, ck, sel, part, active2);
}

// Row a: every negative entry (a count added by quad_hard_inplace_f32) becomes -sg * count * s2;
// then W[a][p*] = sg (s1 [t1 active] + s2 [t2 active]) and W[a][n*] -= sg s1 [t1 active].
// s1 = stats[s1_idx], s2 = stats[s2_idx] (the AvgNonZero factors). One block per row.
// Rectangular form: row a has m columns labelled rlab.
__device__ void quad_hard_row_weights(const int* lab, const int* rlab, int a, int m, float sg,
                                      const int* sel, double s1, double s2, float* W) {
    const size_t row = (size_t)a * m;
    const int la = lab[a];
    for (int l = threadIdx.x; l < m; l += blockDim.x) {
        const float cnt = W[row + l];
        if (rlab[l] != la && cnt != 0.0f) {
            W[row + l] = (float)(-sg * (double)cnt * s2);
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        const int ip = sel[(size_t)a * 3 + 0];
        const int in = sel[(size_t)a * 3 + 1];
        const int flags = sel[(size_t)a * 3 + 2];
        if (flags != 0) {
            const double wp = ((flags & 1) ? s1 : 0.0) + ((flags & 2) ? s2 : 0.0);
            W[row + ip] = (float)(sg * wp);
        }
        if (flags & 1) {
            W[row + in] = (float)((double)W[row + in] - sg * s1);
        }
    }
}

// Steps 4 and 5 in place over the distances DW (N x M; M = N and rlab = lab in the square case),
// after step 3 (the last to read distances elsewhere than in its own row): per row a
// (grid-stride; `keep` holds gridDim.x rows of m floats) the row's distances move to `keep` and
// the row is cleared, the counts of the classes whose best negative pair (k*, l*) lies in the row
// are added (an exact integer sum), the weights are formed by quad_hard_row_weights, and for the
// euclidean chain divided by the distance they replace (0 at distance 0, as chain_prep_f32 does).
extern "C" __global__ void quad_hard_inplace_f32(float* DW, const int* lab, const int* rlab, int n,
                                                 int m, float sg, int euclid, const int* sel,
                                                 const double* stats, int s1_idx, int s2_idx,
                                                 const int* active2, const int* ck, const int* cl,
                                                 int classes, float* keep) {
    float* K = keep + (size_t)blockIdx.x * m;
    const double s1 = stats[s1_idx];
    const double s2 = stats[s2_idx];
    for (int a = blockIdx.x; a < n; a += gridDim.x) {
        const size_t row = (size_t)a * m;
        __syncthreads();
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            K[j] = DW[row + j];
            DW[row + j] = 0.0f;
        }
        __syncthreads();
        for (int c = threadIdx.x; c < classes; c += blockDim.x) {
            if (ck[c] == a && active2[c] > 0) {
                atomicAdd(&DW[row + cl[c]], (float)active2[c]);
            }
        }
        __syncthreads();
        quad_hard_row_weights(lab, rlab, a, m, sg, sel, s1, s2, DW);
        __syncthreads();
        if (euclid) {
            for (int j = threadIdx.x; j < m; j += blockDim.x) {
                const float w = DW[row + j];
                if (w != 0.0f) {
                    DW[row + j] = K[j] > 0.0f ? (float)((double)w / (double)K[j]) : 0.0f;
                }
            }
        }
    }
}
