// distance.cu: normalization, the tiled distance matrix and normalization backward.
//
// The matrix product is plain FP32 FMA tiling in shared memory (64x64 output tiles, 16-deep k
// slices, 4x4 outputs per thread). TF32 tensor cores are deliberately not used: their 10-bit
// mantissa would break the SPEC's 1e-4 relative precision on losses. Every thread accumulates its
// outputs over k in the same ascending order with fmaf, so D[i][j] and D[j][i] of a self-distance
// matrix are bitwise equal, which the loss kernels rely on for symmetric tie handling.

#define GEMM_TM 64
#define GEMM_TN 64
#define GEMM_TK 16

// Accumulates acc[4][4] += A(i, k) * B(k, j) over k in [0, inner) for this block's 64x64 tile.
// AMODE 0: A(i, k) = A[i * lda + k]; AMODE 1: A(i, k) = A[k * lda + i] (A stored transposed).
// BMODE 0: B(k, j) = B[j * ldb + k] (rows of B are the output columns); BMODE 1: B(k, j) = B[k * ldb + j].
// Out-of-range elements load as 0. Needs 256 threads.
template <int AMODE, int BMODE>
__device__ void gemm_tile(const float* A, const float* B, int rows, int cols, int inner, size_t lda,
                          size_t ldb, float acc[4][4]) {
    __shared__ float As[GEMM_TK][GEMM_TM + 4];
    __shared__ float Bs[GEMM_TK][GEMM_TN + 4];
    const int tid = threadIdx.x;
    const int tx = tid % 16;
    const int ty = tid / 16;
    const int row0 = blockIdx.y * GEMM_TM;
    const int col0 = blockIdx.x * GEMM_TN;
    for (int k0 = 0; k0 < inner; k0 += GEMM_TK) {
        for (int r = 0; r < 4; ++r) {
            const int e = tid + r * 256;  // 0..1023 covers the 64 x 16 slice
            int ii, kk;
            if (AMODE == 0) {
                ii = e / GEMM_TK;
                kk = e % GEMM_TK;
            } else {
                kk = e / GEMM_TM;
                ii = e % GEMM_TM;
            }
            const int gi = row0 + ii;
            const int gk = k0 + kk;
            float v = 0.0f;
            if (gi < rows && gk < inner) {
                v = (AMODE == 0) ? A[(size_t)gi * lda + gk] : A[(size_t)gk * lda + gi];
            }
            As[kk][ii] = v;
        }
        for (int r = 0; r < 4; ++r) {
            const int e = tid + r * 256;
            int jj, kk;
            if (BMODE == 0) {
                jj = e / GEMM_TK;
                kk = e % GEMM_TK;
            } else {
                kk = e / GEMM_TN;
                jj = e % GEMM_TN;
            }
            const int gj = col0 + jj;
            const int gk = k0 + kk;
            float v = 0.0f;
            if (gj < cols && gk < inner) {
                v = (BMODE == 0) ? B[(size_t)gj * ldb + gk] : B[(size_t)gk * ldb + gj];
            }
            Bs[kk][jj] = v;
        }
        __syncthreads();
        for (int kk = 0; kk < GEMM_TK; ++kk) {
            float a[4];
            float b[4];
            for (int i = 0; i < 4; ++i) {
                a[i] = As[kk][ty * 4 + i];
                b[i] = Bs[kk][tx * 4 + i];
            }
            for (int i = 0; i < 4; ++i) {
                for (int j = 0; j < 4; ++j) {
                    acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
                }
            }
        }
        __syncthreads();
    }
}

// out[i][j] (nq x nr) = distance between Q row i and R row j. qn / rn: squared row norms.
// kind 0: euclidean, 1: squared euclidean, 2: dot. Grid (ceil(nr/64), ceil(nq/64)), 256 threads.
extern "C" __global__ void pairwise_f32(const float* Q, const float* R, const float* qn,
                                        const float* rn, float* out, int nq, int nr, int d,
                                        int kind) {
    float acc[4][4];
    for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j) {
            acc[i][j] = 0.0f;
        }
    }
    gemm_tile<0, 0>(Q, R, nq, nr, d, (size_t)d, (size_t)d, acc);
    const int tx = threadIdx.x % 16;
    const int ty = threadIdx.x / 16;
    for (int i = 0; i < 4; ++i) {
        const int gi = blockIdx.y * GEMM_TM + ty * 4 + i;
        if (gi >= nq) {
            continue;
        }
        for (int j = 0; j < 4; ++j) {
            const int gj = blockIdx.x * GEMM_TN + tx * 4 + j;
            if (gj >= nr) {
                continue;
            }
            const float dot = acc[i][j];
            float v;
            if (kind == 2) {
                v = dot;
            } else {
                float sq = fmaxf(qn[gi] + rn[gj] - 2.0f * dot, 0.0f);
                // Cancellation: the expanded form's error is ~1e-7 (|q|^2 + |r|^2), which the
                // euclidean gradient's 1/d amplifies for close pairs. Recompute those directly.
                if (sq < 1e-2f * (qn[gi] + rn[gj])) {
                    const float* q = Q + (size_t)gi * d;
                    const float* r = R + (size_t)gj * d;
                    float s = 0.0f;
                    for (int t = 0; t < d; ++t) {
                        const float diff = q[t] - r[t];
                        s = fmaf(diff, diff, s);
                    }
                    sq = s;
                }
                v = (kind == 0) ? sqrtf(sq) : sq;
            }
            out[(size_t)gi * nr + gj] = v;
        }
    }
}

// out[i][c] (rows x d) = alpha * (diag ? rs[i] * self_rows[i][c] - acc : acc) with
// acc = sum_k M(i, k) * Y[k][c]; M(i, k) = trans_m ? M[k * rows + i] : M[i * inner + k].
// This is stage 4 of docs/ALGORITHMS.md. Grid (ceil(d/64), ceil(rows/64)), 256 threads.
extern "C" __global__ void grad_gemm_f32(const float* M, const float* Y, const float* self_rows,
                                         const float* rs, float* out, int rows, int inner, int d,
                                         int trans_m, int diag, float alpha) {
    float acc[4][4];
    for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j) {
            acc[i][j] = 0.0f;
        }
    }
    if (trans_m) {
        gemm_tile<1, 1>(M, Y, rows, d, inner, (size_t)rows, (size_t)d, acc);
    } else {
        gemm_tile<0, 1>(M, Y, rows, d, inner, (size_t)inner, (size_t)d, acc);
    }
    const int tx = threadIdx.x % 16;
    const int ty = threadIdx.x / 16;
    for (int i = 0; i < 4; ++i) {
        const int gi = blockIdx.y * GEMM_TM + ty * 4 + i;
        if (gi >= rows) {
            continue;
        }
        for (int j = 0; j < 4; ++j) {
            const int gc = blockIdx.x * GEMM_TN + tx * 4 + j;
            if (gc >= d) {
                continue;
            }
            const size_t at = (size_t)gi * d + gc;
            float v = acc[i][j];
            if (diag) {
                v = rs[gi] * self_rows[at] - v;
            }
            out[at] = alpha * v;
        }
    }
}

// xhat = x / max(||x||, 1e-12) per row; norms[i] = ||x_i||. One block per row.
extern "C" __global__ void normalize_rows_f32(const float* x, float* xhat, float* norms, int n,
                                              int d) {
    __shared__ double red[MARGIN_THREADS];
    const int row = blockIdx.x;
    if (row >= n) {
        return;
    }
    const float* xr = x + (size_t)row * d;
    double ss = 0.0;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        const double v = xr[c];
        ss += v * v;
    }
    ss = block_sum_f64(ss, red);
    const double norm = sqrt(ss);
    const double inv = 1.0 / fmax(norm, 1e-12);
    float* out = xhat + (size_t)row * d;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        out[c] = (float)((double)xr[c] * inv);
    }
    if (threadIdx.x == 0) {
        norms[row] = (float)norm;
    }
}

// out[i] = ||x_i||^2 (accumulated in f64). One block per row.
extern "C" __global__ void row_sqnorms_f32(const float* x, float* out, int n, int d) {
    __shared__ double red[MARGIN_THREADS];
    const int row = blockIdx.x;
    if (row >= n) {
        return;
    }
    const float* xr = x + (size_t)row * d;
    double ss = 0.0;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        const double v = xr[c];
        ss += v * v;
    }
    ss = block_sum_f64(ss, red);
    if (threadIdx.x == 0) {
        out[row] = (float)ss;
    }
}

// Stage 5: out = (g - xhat (xhat . g)) / max(norm, 1e-12) per row. One block per row.
extern "C" __global__ void normalize_backward_f32(const float* g, const float* xhat,
                                                  const float* norms, float* out, int n, int d) {
    __shared__ double red[MARGIN_THREADS];
    const int row = blockIdx.x;
    if (row >= n) {
        return;
    }
    const size_t base = (size_t)row * d;
    double dot = 0.0;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        dot += (double)xhat[base + c] * (double)g[base + c];
    }
    dot = block_sum_f64(dot, red);
    const double inv = 1.0 / fmax((double)norms[row], 1e-12);
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        out[base + c] = (float)(((double)g[base + c] - (double)xhat[base + c] * dot) * inv);
    }
}
