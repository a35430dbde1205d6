// knn.cu: fused exact k-nearest neighbours. Distances and the top-k selection run in one kernel,
// so the nq x nr matrix never exists in device memory: only nq x k indices and scores are written.
//
// A block (256 threads) takes TQ query rows and streams over tiles of KNN_TR reference rows. Each
// TQ x KNN_TR tile of dot products is accumulated like pairwise_f32 (16-deep k slices staged in
// shared memory, every output summed over k in ascending order with fmaf from 0), then turned into
// a distance by the same expanded form and the same recomputation of close pairs, so the values
// are pairwise_f32's.
//
// Selection, per query row, in shared memory: a buffer of PB (key, index) entries whose first KP
// hold the best k so far (sorted, closest first) and whose other PB - KP slots collect candidates
// (appended with a shared atomic counter). Keys are "smaller is closer": distances, or minus
// similarities. A value is a candidate when the row's list is not yet full or its key is below the
// current k-th key; references stream in ascending index order, so a key equal to the k-th one
// loses its tie (larger index) and the strict test is exact. When a row's buffer could overflow on
// the next tile (and at the end), every row's buffer is bitonic-sorted by (key, index) and the
// thresholds updated. With random data the threshold quickly rejects almost everything, so the
// sorts are rare and the kernel runs at the speed of the tiled product.

#define KNN_TR 64
#define KNN_TK 16
#define KNN_NONE 0xffffffffu

// (ka, ia) sorts before (kb, ib).
__device__ __forceinline__ bool knn_before(float ka, unsigned ia, float kb, unsigned ib) {
    return ka < kb || (ka == kb && ia < ib);
}

// The value pairwise_f32 writes for (gi, gj) from its dot product, as a key (smaller is closer).
__device__ __forceinline__ float knn_key(const float* Q, const float* R, const float* qn,
                                         const float* rn, int gi, int gj, int d, int kind,
                                         float dot) {
    if (kind == 2) {
        return -dot;
    }
    float sq = fmaxf(qn[gi] + rn[gj] - 2.0f * dot, 0.0f);
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
    return (kind == 0) ? sqrtf(sq) : sq;
}

// Sorts every row's buffer by (key, index) after padding its unused candidate slots, then resets
// the counters and reads the k-th entries as the new thresholds. Every thread of the block calls it.
template <int TQ, int KP, int PB>
__device__ void knn_merge(float* keys, unsigned* ids, int* cnt, float* thr, unsigned* kth,
                          int* flag, int k, float inf) {
    const int cap = PB - KP;
    __syncthreads();
    if (threadIdx.x == 0) {
        *flag = 0;
    }
    for (int e = threadIdx.x; e < TQ * cap; e += blockDim.x) {
        const int row = e / cap;
        const int s = e % cap;
        if (s >= cnt[row]) {
            keys[row * PB + KP + s] = inf;
            ids[row * PB + KP + s] = KNN_NONE;
        }
    }
    __syncthreads();
    for (int size = 2; size <= PB; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int p = threadIdx.x; p < TQ * (PB / 2); p += blockDim.x) {
                const int row = p / (PB / 2);
                const int h = p % (PB / 2);
                const int i = 2 * stride * (h / stride) + h % stride;
                const int x = row * PB + i;
                const int y = x + stride;
                const float kx = keys[x];
                const float ky = keys[y];
                const unsigned ix = ids[x];
                const unsigned iy = ids[y];
                const bool swap = ((i & size) == 0) ? knn_before(ky, iy, kx, ix)
                                                    : knn_before(kx, ix, ky, iy);
                if (swap) {
                    keys[x] = ky;
                    keys[y] = kx;
                    ids[x] = iy;
                    ids[y] = ix;
                }
            }
            __syncthreads();
        }
    }
    if ((int)threadIdx.x < TQ) {
        cnt[threadIdx.x] = 0;
        thr[threadIdx.x] = keys[threadIdx.x * PB + k - 1];
        kth[threadIdx.x] = ids[threadIdx.x * PB + k - 1];
    }
    __syncthreads();
}

// Query rows q_off + blockIdx.x * TQ .. (below q_end) against all nr rows of R (or of Q itself
// with self_ex = 1, each row's own column skipped). qn / rn: squared row norms (unused for
// kind 2). kind 0 euclidean, 1 squared euclidean, 2 dot. Writes out_idx / out_val[row * k + i].
// Needs 256 threads, k <= KP, TQ a multiple of 16.
template <int TQ, int KP, int PB>
__device__ void knn_rows(const float* Q, const float* R, const float* qn, const float* rn,
                         unsigned* out_idx, float* out_val, int q_end, int nr, int d, int k,
                         int kind, int self_ex, int q_off) {
    const int rpt = TQ / 16;
    const int cap = PB - KP;
    __shared__ float Qs[KNN_TK][TQ + 4];
    __shared__ float Rs[KNN_TK][KNN_TR + 4];
    __shared__ float keys[TQ * PB];
    __shared__ unsigned ids[TQ * PB];
    __shared__ int cnt[TQ];
    __shared__ float thr[TQ];
    __shared__ unsigned kth[TQ];
    __shared__ int flag;
    const float inf = __int_as_float(0x7f800000);
    const int tid = threadIdx.x;
    const int tx = tid % 16;
    const int ty = tid / 16;
    const int q0 = q_off + (int)blockIdx.x * TQ;
    if (q0 >= q_end) {
        return;
    }
    for (int e = tid; e < TQ * PB; e += blockDim.x) {
        keys[e] = inf;
        ids[e] = KNN_NONE;
    }
    if (tid < TQ) {
        cnt[tid] = 0;
        thr[tid] = inf;
        kth[tid] = KNN_NONE;
    }
    if (tid == 0) {
        flag = 0;
    }
    __syncthreads();
    for (int j0 = 0; j0 < nr; j0 += KNN_TR) {
        float acc[TQ / 16][4];
        for (int i = 0; i < rpt; ++i) {
            for (int j = 0; j < 4; ++j) {
                acc[i][j] = 0.0f;
            }
        }
        for (int k0 = 0; k0 < d; k0 += KNN_TK) {
            for (int e = tid; e < TQ * KNN_TK; e += blockDim.x) {
                const int ii = e / KNN_TK;
                const int kk = e % KNN_TK;
                const int gi = q0 + ii;
                const int gk = k0 + kk;
                Qs[kk][ii] = (gi < q_end && gk < d) ? Q[(size_t)gi * d + gk] : 0.0f;
            }
            for (int e = tid; e < KNN_TR * KNN_TK; e += blockDim.x) {
                const int jj = e / KNN_TK;
                const int kk = e % KNN_TK;
                const int gj = j0 + jj;
                const int gk = k0 + kk;
                Rs[kk][jj] = (gj < nr && gk < d) ? R[(size_t)gj * d + gk] : 0.0f;
            }
            __syncthreads();
            for (int kk = 0; kk < KNN_TK; ++kk) {
                float a[TQ / 16];
                float b[4];
                for (int i = 0; i < rpt; ++i) {
                    a[i] = Qs[kk][ty * rpt + i];
                }
                for (int j = 0; j < 4; ++j) {
                    b[j] = Rs[kk][tx * 4 + j];
                }
                for (int i = 0; i < rpt; ++i) {
                    for (int j = 0; j < 4; ++j) {
                        acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
                    }
                }
            }
            __syncthreads();
        }
        // Unrolled so that acc stays in registers (no local-memory indexing).
#pragma unroll
        for (int i = 0; i < rpt; ++i) {
            const int lrow = ty * rpt + i;
            const int gi = q0 + lrow;
            if (gi >= q_end) {
                continue;
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int gj = j0 + tx * 4 + j;
                if (gj >= nr || (self_ex && gj == gi)) {
                    continue;
                }
                const float key = knn_key(Q, R, qn, rn, gi, gj, d, kind, acc[i][j]);
                if (kth[lrow] == KNN_NONE || key < thr[lrow]) {
                    const int s = atomicAdd(&cnt[lrow], 1);
                    keys[lrow * PB + KP + s] = key;
                    ids[lrow * PB + KP + s] = (unsigned)gj;
                }
            }
        }
        __syncthreads();
        if (tid < TQ && cnt[tid] > cap - KNN_TR) {
            flag = 1;
        }
        __syncthreads();
        if (flag) {
            knn_merge<TQ, KP, PB>(keys, ids, cnt, thr, kth, &flag, k, inf);
        }
    }
    knn_merge<TQ, KP, PB>(keys, ids, cnt, thr, kth, &flag, k, inf);
    for (int e = tid; e < TQ * k; e += blockDim.x) {
        const int r = e / k;
        const int i = e % k;
        const int gi = q0 + r;
        if (gi < q_end) {
            const float key = keys[r * PB + i];
            out_idx[(size_t)gi * k + i] = ids[r * PB + i];
            out_val[(size_t)gi * k + i] = (kind == 2) ? -key : key;
        }
    }
}

// k <= 32: 32 query rows per block, 128-entry buffers (about 40 KiB of shared memory).
extern "C" __global__ void knn_small_f32(const float* Q, const float* R, const float* qn,
                                         const float* rn, unsigned* out_idx, float* out_val,
                                         int q_end, int nr, int d, int k, int kind, int self_ex,
                                         int q_off) {
    knn_rows<32, 32, 128>(Q, R, qn, rn, out_idx, out_val, q_end, nr, d, k, kind, self_ex, q_off);
}

// k <= 128: 16 query rows per block, 256-entry buffers (about 39 KiB of shared memory).
extern "C" __global__ void knn_large_f32(const float* Q, const float* R, const float* qn,
                                         const float* rn, unsigned* out_idx, float* out_val,
                                         int q_end, int nr, int d, int k, int kind, int self_ex,
                                         int q_off) {
    knn_rows<16, 128, 256>(Q, R, qn, rn, out_idx, out_val, q_end, nr, d, k, kind, self_ex, q_off);
}
