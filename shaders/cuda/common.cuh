// common.cuh: helpers shared by every margin CUDA kernel. The Rust side prepends this text to each
// .cu file before NVRTC compiles it (NVRTC has no include path for sources taken from
// include_str!), so nothing here may be declared twice.
//
// Conventions used by all kernels:
// * matrices are row-major; every element index is computed in size_t, because i * N + j overflows
//   int32 from N = 46341 on;
// * per-row results go to `part[row * cols + k]` as f64 partial sums, reduced by reduce_cols_f64;
// * blocks have MARGIN_THREADS threads unless a kernel says otherwise.

#define MARGIN_THREADS 256
#define MARGIN_SORT_SMEM 2048

typedef unsigned long long u64;

// -inf as a double (NVRTC has no math.h INFINITY macro).
#define MARGIN_NEG_INF __longlong_as_double((long long)0xfff0000000000000ULL)

// Sum over the block in f64. Every thread gets the total. `scratch` holds MARGIN_THREADS doubles.
__device__ __forceinline__ double block_sum_f64(double v, double* scratch) {
    __syncthreads();
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            scratch[threadIdx.x] += scratch[threadIdx.x + s];
        }
        __syncthreads();
    }
    double total = scratch[0];
    __syncthreads();
    return total;
}

// Maximum over the block (f64). Every thread gets the result.
__device__ __forceinline__ double block_max_f64(double v, double* scratch) {
    __syncthreads();
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            scratch[threadIdx.x] = fmax(scratch[threadIdx.x], scratch[threadIdx.x + s]);
        }
        __syncthreads();
    }
    double total = scratch[0];
    __syncthreads();
    return total;
}

// Arg-extreme over the block: the smallest index among the best values. `want_max` picks max.
// Threads with no candidate pass idx = -1. Every thread gets the winning (value, index).
__device__ __forceinline__ void block_arg_best(float& val, int& idx, bool want_max, float* sval,
                                               int* sidx) {
    __syncthreads();
    sval[threadIdx.x] = val;
    sidx[threadIdx.x] = idx;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            float v2 = sval[threadIdx.x + s];
            int i2 = sidx[threadIdx.x + s];
            float v1 = sval[threadIdx.x];
            int i1 = sidx[threadIdx.x];
            bool take = false;
            if (i2 >= 0) {
                if (i1 < 0) {
                    take = true;
                } else if (want_max ? (v2 > v1) : (v2 < v1)) {
                    take = true;
                } else if (v2 == v1 && i2 < i1) {
                    take = true;
                }
            }
            if (take) {
                sval[threadIdx.x] = v2;
                sidx[threadIdx.x] = i2;
            }
        }
        __syncthreads();
    }
    val = sval[0];
    idx = sidx[0];
    __syncthreads();
}

// First index in [0, len) where pred is false, for a pred that is true on a prefix.
template <class Pred>
__device__ __forceinline__ int partition_point(const float* a, int len, Pred pred) {
    int lo = 0;
    int hi = len;
    while (lo < hi) {
        int mid = lo + ((hi - lo) >> 1);
        if (pred(a[mid])) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// Same over a size_t range of a global array.
template <class Pred>
__device__ __forceinline__ size_t partition_point_big(const float* a, size_t len, Pred pred) {
    size_t lo = 0;
    size_t hi = len;
    while (lo < hi) {
        size_t mid = lo + ((hi - lo) >> 1);
        if (pred(a[mid])) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// Ascending bitonic sort of a[0..len) by the whole block; len must be a power of two (pad with
// +inf). Works on shared or global memory (generic pointer); __syncthreads makes global writes
// visible within the block.
__device__ __forceinline__ void block_bitonic_sort(float* a, int len) {
    for (int k = 2; k <= len; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = threadIdx.x; i < len; i += blockDim.x) {
                int ixj = i ^ j;
                if (ixj > i) {
                    float x = a[i];
                    float y = a[ixj];
                    bool ascending = (i & k) == 0;
                    if (ascending ? (x > y) : (x < y)) {
                        a[i] = y;
                        a[ixj] = x;
                    }
                }
            }
            __syncthreads();
        }
    }
}

// Sorts v[0..m) ascending in place; v has room for the next power of two >= m. Rows that fit use
// shared memory, larger ones sort in global memory. Ends with a __syncthreads.
__device__ void block_sort_values(float* v, int m, float* smem) {
    int len = 1;
    while (len < m) {
        len <<= 1;
    }
    for (int i = m + threadIdx.x; i < len; i += blockDim.x) {
        v[i] = __int_as_float(0x7f800000);  // +inf padding
    }
    __syncthreads();
    if (len <= MARGIN_SORT_SMEM) {
        for (int i = threadIdx.x; i < len; i += blockDim.x) {
            smem[i] = v[i];
        }
        __syncthreads();
        block_bitonic_sort(smem, len);
        for (int i = threadIdx.x; i < len; i += blockDim.x) {
            v[i] = smem[i];
        }
    } else {
        block_bitonic_sort(v, len);
    }
    __syncthreads();
}

// In-place inclusive prefix sum of a[0..len) by the whole block: each thread scans a contiguous
// chunk, thread totals are scanned in shared memory, then added back. `tot` holds blockDim.x ints.
__device__ void block_inclusive_scan_int(int* a, int len, int* tot) {
    int chunk = (len + blockDim.x - 1) / blockDim.x;
    int begin = threadIdx.x * chunk;
    int end = min(begin + chunk, len);
    int run = 0;
    for (int i = begin; i < end; ++i) {
        run += a[i];
        a[i] = run;
    }
    tot[threadIdx.x] = run;
    __syncthreads();
    if (threadIdx.x == 0) {
        int acc = 0;
        for (unsigned t = 0; t < blockDim.x; ++t) {
            int here = tot[t];
            tot[t] = acc;
            acc += here;
        }
    }
    __syncthreads();
    int offset = tot[threadIdx.x];
    for (int i = begin; i < end; ++i) {
        a[i] += offset;
    }
    __syncthreads();
}

// Monotone map of a float to u64 sort keys (and back): negative floats reversed, sign flipped.
__device__ __forceinline__ unsigned ordered_bits(float x) {
    unsigned u = __float_as_uint(x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float from_ordered_bits(unsigned u) {
    return __uint_as_float((u & 0x80000000u) ? (u ^ 0x80000000u) : ~u);
}

// log(exp(a) + exp(b)), symmetric in its arguments; -inf when both are -inf.
__device__ __forceinline__ double log_add_exp(double a, double b) {
    double hi = fmax(a, b);
    double lo = fmin(a, b);
    if (hi == MARGIN_NEG_INF) {
        return MARGIN_NEG_INF;
    }
    return hi + log1p(exp(lo - hi));
}

// softplus(v) = log(1 + e^v) and its derivative, stable for large |v|.
__device__ __forceinline__ double softplus_f64(double v) {
    return v > 0.0 ? v + log1p(exp(-v)) : log1p(exp(v));
}

__device__ __forceinline__ double sigmoid_f64(double v) {
    if (v >= 0.0) {
        return 1.0 / (1.0 + exp(-v));
    }
    double e = exp(v);
    return e / (1.0 + e);
}

// log-sum-exp over the j in [0, n) (j != skip) where value(j, x) returns true and sets x; -inf
// when no j qualifies. Two block reductions (max, then sum); every thread gets the result.
template <class F>
__device__ __forceinline__ double row_lse(int skip, int n, F value, double* red) {
    double mx = MARGIN_NEG_INF;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        double x = 0.0;
        if (j != skip && value(j, x)) {
            mx = fmax(mx, x);
        }
    }
    mx = block_max_f64(mx, red);
    if (mx == MARGIN_NEG_INF) {
        return MARGIN_NEG_INF;
    }
    double s = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        double x = 0.0;
        if (j != skip && value(j, x)) {
            s += exp(x - mx);
        }
    }
    s = block_sum_f64(s, red);
    return mx + log(s);
}

// The column that row i never pairs with. Square case (excl == nullptr): the diagonal, i.
// Reference sets: excl[i] is row i's own copy in the reference set (docs/REFERENCE_SETS.md,
// self_index), 0xFFFFFFFF for none, returned as -1 (no column is skipped).
__device__ __forceinline__ int skip_col(const unsigned* excl, int i) {
    if (excl == nullptr) {
        return i;
    }
    const unsigned s = excl[i];
    return s == 0xFFFFFFFFu ? -1 : (int)s;
}

// The batch-hard picks of anchor row a of E = sg * D (row a has m columns with labels rlab;
// column `skip` is ignored): its farthest positive (bp at ip) and its nearest negative (bn at in),
// smallest index on ties; ip / in = -1 when there is none. Every thread of the block gets the
// result (batch-hard triplet and batch-hard quadruplet share it). Square: rlab = lab, m = n,
// skip = a.
__device__ __forceinline__ void row_hardest(const float* D, const int* lab, const int* rlab, int m,
                                            float sg, int a, int skip, float& bp, int& ip,
                                            float& bn, int& in, float* sval, int* sidx) {
    const size_t row = (size_t)a * m;
    const int la = lab[a];
    bp = 0.0f;
    bn = 0.0f;
    ip = -1;
    in = -1;
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        if (j == skip) {
            continue;
        }
        const float e = sg * D[row + j];
        if (rlab[j] == la) {
            if (ip < 0 || e > bp) {
                bp = e;
                ip = j;
            }
        } else if (in < 0 || e < bn) {
            bn = e;
            in = j;
        }
    }
    block_arg_best(bp, ip, true, sval, sidx);
    block_arg_best(bn, in, false, sval, sidx);
}

// Scale stored in stats[idx], or 1 when idx < 0.
__device__ __forceinline__ double stat_scale(const double* stats, int idx) {
    return idx >= 0 ? stats[idx] : 1.0;
}

// Stage 3 in place (docs/ALGORITHMS.md, SPEC "Cost": at most one N x N matrix): the weight
// kernels read row a of the distance matrix (N x N, or N x M with a reference set) and overwrite
// that same row with dL/dD, so a loss holds the distance matrix and nothing else of its size.
// Every entry of the row is written (0 where no pair is active) after the block's last read of
// another entry of the row, and for the euclidean chain the weight is divided by the distance it
// replaces (0 at distance 0: the SPEC's gradient there), which chain_prep_f32 would otherwise do
// from a second matrix. The quadruplet's first term runs over a copy with euclid = 0 (raw
// weights: term 2 adds to them and chain_prep divides).
struct RowOut {
    float* W;
    int euclid;
    // Weights to add to every entry of the row before the division, from a chunk buffer of rows
    // (entry `at` at add[at - add_base]); nullptr: none. The quadruplet's last pass adds its
    // term-2 weights this way while the triplet kernel rewrites term 1's rows.
    const float* add;
    long long add_base;
};

// Stores weight w of entry `at` whose distance was `dist` (see RowOut).
__device__ __forceinline__ void put_weight(const RowOut& o, size_t at, double w, float dist) {
    if (o.add != nullptr) {
        w += (double)o.add[(long long)at - o.add_base];
    }
    if (o.euclid) {
        w = dist > 0.0f ? w / (double)dist : 0.0;
    }
    o.W[at] = (float)w;
}

// A row entry that holds no pair (the skipped column): 0.
__device__ __forceinline__ void put_none(const RowOut& o, size_t at) { o.W[at] = 0.0f; }
