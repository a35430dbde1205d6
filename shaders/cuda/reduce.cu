// reduce.cu: reductions of per-row partials, device-wide scans and sorts.

#define SCAN_ITEMS 8
#define SCAN_CHUNK (MARGIN_THREADS * SCAN_ITEMS)

// out[c] = sum over rows of part[r * cols + c], in f64, in a fixed order. One block per column.
extern "C" __global__ void reduce_cols_f64(const double* part, int rows, int cols, double* out) {
    __shared__ double red[MARGIN_THREADS];
    const int c = blockIdx.x;
    if (c >= cols) {
        return;
    }
    double s = 0.0;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        s += part[(size_t)r * cols + c];
    }
    s = block_sum_f64(s, red);
    if (threadIdx.x == 0) {
        out[c] = s;
    }
}

// stats[to] = stats[from] > 0 ? 1 / stats[from] : 0 (the AvgNonZero factor). One thread.
extern "C" __global__ void safe_inverse_f64(double* stats, int from, int to) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        const double c = stats[from];
        stats[to] = c > 0.0 ? 1.0 / c : 0.0;
    }
}

// Exclusive scan of each SCAN_CHUNK-element chunk of data in place; sums[b] = chunk total.
// Grid ceil(len / SCAN_CHUNK), MARGIN_THREADS threads.
extern "C" __global__ void scan_blocks_u64(u64* data, size_t len, u64* sums) {
    __shared__ u64 tot[MARGIN_THREADS];
    const size_t base = (size_t)blockIdx.x * SCAN_CHUNK + (size_t)threadIdx.x * SCAN_ITEMS;
    u64 local[SCAN_ITEMS];
    u64 run = 0;
    for (int t = 0; t < SCAN_ITEMS; ++t) {
        const size_t i = base + t;
        const u64 v = i < len ? data[i] : 0ULL;
        local[t] = run;
        run += v;
    }
    tot[threadIdx.x] = run;
    __syncthreads();
    // Hillis-Steele inclusive scan of the thread totals.
    for (unsigned off = 1; off < blockDim.x; off <<= 1) {
        u64 add = threadIdx.x >= off ? tot[threadIdx.x - off] : 0ULL;
        __syncthreads();
        tot[threadIdx.x] += add;
        __syncthreads();
    }
    const u64 offset = tot[threadIdx.x] - run;
    for (int t = 0; t < SCAN_ITEMS; ++t) {
        const size_t i = base + t;
        if (i < len) {
            data[i] = local[t] + offset;
        }
    }
    if (threadIdx.x == blockDim.x - 1) {
        sums[blockIdx.x] = tot[threadIdx.x];
    }
}

// data[i] += offsets[i / SCAN_CHUNK]: adds the scanned chunk totals back.
extern "C" __global__ void add_offsets_u64(u64* data, size_t len, const u64* offsets) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) {
        data[i] += offsets[i / SCAN_CHUNK];
    }
}

// a[i] = value for i in [from, to).
extern "C" __global__ void fill_u64(u64* a, size_t from, size_t to, u64 value) {
    const size_t i = from + (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < to) {
        a[i] = value;
    }
}

// One compare-exchange step (k, j) of a device-wide ascending bitonic sort of a[0..len), len a
// power of two. The host loops k = 2, 4, ..., len and j = k/2, ..., 1.
extern "C" __global__ void bitonic_step_u64(u64* a, size_t len, size_t j, size_t k) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) {
        return;
    }
    const size_t ixj = i ^ j;
    if (ixj > i) {
        const u64 x = a[i];
        const u64 y = a[ixj];
        const bool ascending = (i & k) == 0;
        if (ascending ? (x > y) : (x < y)) {
            a[i] = y;
            a[ixj] = x;
        }
    }
}

// out[i] = the float encoded in the low 32 bits of keys[i] (see ordered_bits).
extern "C" __global__ void decode_keys_f32(const u64* keys, float* out, size_t len) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) {
        out[i] = from_ordered_bits((unsigned)(keys[i] & 0xffffffffULL));
    }
}
