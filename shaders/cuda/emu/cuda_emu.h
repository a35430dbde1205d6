// Minimal CPU emulation of the CUDA features the margin kernels use: one OS thread per CUDA
// thread of a block, a std::barrier for __syncthreads, blocks run one after another, shared
// memory filled with 0xff bytes (NaN floats, -1 ints) before each block.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>
using std::min; using std::max;
struct dim3u { unsigned x = 1, y = 1, z = 1; };
inline thread_local dim3u threadIdx, blockIdx;
inline dim3u blockDim, gridDim;
inline std::barrier<>* g_bar;
#define __global__
#define __device__
#define __forceinline__
// Shared memory lives in one linker section so that launch() can poison it before every block:
// on a device it starts with garbage, so a kernel that reads shared memory it did not write
// first sees NaN / -1 here instead of a stale value from the previous block. (GCC ignores the
// section of a static local in a template, so gemm_tile's and knn_rows' tiles are not poisoned.)
#define __shared__ static __attribute__((section("emu_shared")))
static char emu_shared_anchor[1] __attribute__((section("emu_shared"), used));
extern "C" char __start_emu_shared[], __stop_emu_shared[];
inline void __syncthreads() { g_bar->arrive_and_wait(); }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
inline double __longlong_as_double(long long u) { double f; memcpy(&f, &u, 8); return f; }
template <class T> T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
// One OS thread per CUDA thread of a block, kept for the whole grid: the blocks run one after
// another, separated by a barrier whose completion step poisons shared memory for the next one.
template <class F> void launch(dim3u g, dim3u b, F f) {
    gridDim = g; blockDim = b;
    unsigned nt = b.x * b.y;
    auto poison = []() noexcept {
        std::memset(__start_emu_shared, 0xff, (size_t)(__stop_emu_shared - __start_emu_shared));
    };
    poison();
    std::barrier<> bar(nt); g_bar = &bar;
    std::barrier<decltype(poison)> next_block(nt, poison);
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < nt; ++t) ts.emplace_back([&, t] {
        for (unsigned by = 0; by < g.y; ++by) for (unsigned bx = 0; bx < g.x; ++bx) {
            threadIdx = {t % b.x, t / b.x, 0}; blockIdx = {bx, by, 0}; f();
            next_block.arrive_and_wait();
        }
    });
    for (auto& t : ts) t.join();
}
