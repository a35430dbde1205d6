// A stand-in libcuda.so for machines without a GPU: it implements the part of the CUDA driver
// API that cudarc and margin-cuda call, with host memory for device memory and the CPU
// emulation of cuda_emu.h for kernel launches (the same kernel sources, compiled by g++), so that
// margin-cuda's Rust host code (buffers, launches, streams, reductions, the whole pipeline) runs
// end to end here. Real NVRTC still compiles every module; the CUBIN is ignored and each kernel
// is looked up by name among the emulated ones. Built and used by host_check.sh.
#include "cuda_emu.h"
#include "all.cu"
#include "kernel_table.inc"  // KERNELS(X): X(name) for every extern "C" __global__ kernel

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
enum : CUresult { OK = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_FOUND = 500 };

using Launcher = std::function<void(dim3u, dim3u, void**)>;

// Copies each parameter out of `kernelParams` (one pointer per argument, as cuLaunchKernel
// receives them) and calls the emulated kernel on every thread of the grid.
template <class... A, size_t... I>
Launcher make_launcher(void (*f)(A...), std::index_sequence<I...>) {
    return [f](dim3u g, dim3u b, void** p) {
        std::tuple<std::decay_t<A>...> args{*static_cast<std::decay_t<A>*>(p[I])...};
        launch(g, b, [&] { std::apply(f, args); });
    };
}
template <class... A> Launcher make_launcher(void (*f)(A...)) {
    return make_launcher(f, std::index_sequence_for<A...>{});
}

static std::map<std::string, Launcher>& table() {
    static std::map<std::string, Launcher> t = [] {
        std::map<std::string, Launcher> m;
#define X(name) m[#name] = make_launcher(&name);
        KERNELS(X)
#undef X
        return m;
    }();
    return t;
}

// Launches run one at a time (the emulator's grid state is global).
static std::mutex g_launch;
static int g_dummy;

extern "C" {
CUresult cuInit(unsigned) { return OK; }
CUresult cuDriverGetVersion(int* v) { *v = 13000; return OK; }
CUresult cuDeviceGetCount(int* n) { *n = 1; return OK; }
CUresult cuDeviceGet(CUdevice* d, int ordinal) { if (ordinal != 0) return INVALID_VALUE; *d = 0; return OK; }
CUresult cuDeviceGetName(char* name, int len, CUdevice) {
    snprintf(name, (size_t)len, "margin CPU emulation of sm_90");
    return OK;
}
CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice) { *bytes = (size_t)16 << 30; return OK; }
CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice) {
    switch (attr) {
        case 1: *v = 1024; break;                 // max threads per block
        case 2: case 3: *v = 1024; break;         // max block dim x, y
        case 4: *v = 64; break;                   // max block dim z
        case 5: *v = 2147483647; break;           // max grid dim x
        case 6: case 7: *v = 65535; break;        // max grid dim y, z
        case 8: *v = 49152; break;                // shared memory per block
        case 10: *v = 32; break;                  // warp size
        case 16: *v = 132; break;                 // multiprocessors (an H100 / H200)
        case 75: *v = 9; break;                   // compute capability major
        case 76: *v = 0; break;                   // minor
        case 115: *v = 0; break;                  // memory pools: no (plain cuMemAlloc)
        default: *v = 0;
    }
    return OK;
}
CUresult cuDevicePrimaryCtxRetain(void** ctx, CUdevice) { *ctx = &g_dummy; return OK; }
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return OK; }
CUresult cuCtxSetCurrent(void*) { return OK; }
CUresult cuCtxGetCurrent(void** ctx) { *ctx = &g_dummy; return OK; }
CUresult cuCtxPushCurrent_v2(void*) { return OK; }
CUresult cuCtxPopCurrent_v2(void** ctx) { if (ctx) *ctx = &g_dummy; return OK; }
CUresult cuCtxSynchronize() { return OK; }
CUresult cuCtxGetDevice(CUdevice* d) { *d = 0; return OK; }
CUresult cuStreamCreate(void** s, unsigned) { *s = new int(0); return OK; }
CUresult cuStreamCreateWithPriority(void** s, unsigned, int) { *s = new int(0); return OK; }
CUresult cuStreamDestroy_v2(void* s) { delete static_cast<int*>(s); return OK; }
CUresult cuStreamSynchronize(void*) { return OK; }
CUresult cuStreamQuery(void*) { return OK; }
CUresult cuStreamWaitEvent(void*, void*, unsigned) { return OK; }
CUresult cuEventCreate(void** e, unsigned) { *e = new int(0); return OK; }
CUresult cuEventDestroy_v2(void* e) { delete static_cast<int*>(e); return OK; }
CUresult cuEventRecord(void*, void*) { return OK; }
CUresult cuEventRecordWithFlags(void*, void*, unsigned) { return OK; }
CUresult cuEventSynchronize(void*) { return OK; }
CUresult cuEventQuery(void*) { return OK; }
CUresult cuEventElapsedTime(float* ms, void*, void*) { *ms = 0.0f; return OK; }
CUresult cuEventElapsedTime_v2(float* ms, void*, void*) { *ms = 0.0f; return OK; }
CUresult cuMemGetInfo_v2(size_t* free_b, size_t* total) {
    *free_b = (size_t)8 << 30; *total = (size_t)16 << 30; return OK;
}
// Live and peak bytes of device memory, for margin_emu_peak_bytes.
static std::mutex g_mem;
static std::map<CUdeviceptr, size_t> g_sizes;
static size_t g_live = 0, g_peak = 0;
CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
    // Poisoned like fresh device memory, so that a kernel reading what nobody wrote fails.
    void* m = malloc(bytes ? bytes : 1);
    if (!m) return OUT_OF_MEMORY;
    memset(m, 0xff, bytes);
    *p = (CUdeviceptr)m;
    std::lock_guard<std::mutex> lock(g_mem);
    g_sizes[*p] = bytes;
    g_live += bytes;
    g_peak = g_live > g_peak ? g_live : g_peak;
    return OK;
}
CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, void*) { return cuMemAlloc_v2(p, bytes); }
CUresult cuMemFree_v2(CUdeviceptr p) {
    {
        std::lock_guard<std::mutex> lock(g_mem);
        auto it = g_sizes.find(p);
        if (it != g_sizes.end()) {
            g_live -= it->second;
            g_sizes.erase(it);
        }
    }
    free((void*)p);
    return OK;
}
CUresult cuMemFreeAsync(CUdeviceptr p, void*) { return cuMemFree_v2(p); }
// Not a driver call: the most device memory live at once since the last reset (reset != 0 starts
// a new measurement from what is live now). crates/margin-cuda/tests/emu_memory.rs reads it.
size_t margin_emu_peak_bytes(int reset) {
    std::lock_guard<std::mutex> lock(g_mem);
    const size_t peak = g_peak;
    if (reset) g_peak = g_live;
    return peak;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void* h, size_t n) { memcpy((void*)d, h, n); return OK; }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void* h, size_t n, void*) { return cuMemcpyHtoD_v2(d, h, n); }
CUresult cuMemcpyDtoH_v2(void* h, CUdeviceptr d, size_t n) { memcpy(h, (void*)d, n); return OK; }
CUresult cuMemcpyDtoHAsync_v2(void* h, CUdeviceptr d, size_t n, void*) { return cuMemcpyDtoH_v2(h, d, n); }
CUresult cuMemcpyDtoD_v2(CUdeviceptr a, CUdeviceptr b, size_t n) { memmove((void*)a, (void*)b, n); return OK; }
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr a, CUdeviceptr b, size_t n, void*) { return cuMemcpyDtoD_v2(a, b, n); }
CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) { memset((void*)d, v, n); return OK; }
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, void*) { return cuMemsetD8_v2(d, v, n); }
CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned v, size_t n) {
    for (size_t i = 0; i < n; ++i) ((unsigned*)d)[i] = v;
    return OK;
}
CUresult cuMemsetD32Async(CUdeviceptr d, unsigned v, size_t n, void*) { return cuMemsetD32_v2(d, v, n); }
CUresult cuModuleLoadData(void** m, const void*) { *m = new int(0); return OK; }
CUresult cuModuleUnload(void* m) { delete static_cast<int*>(m); return OK; }
CUresult cuModuleGetFunction(void** f, void*, const char* name) {
    auto it = table().find(name);
    if (it == table().end()) {
        fprintf(stderr, "fake libcuda: no emulated kernel named %s\n", name);
        return NOT_FOUND;
    }
    *f = &it->second;
    return OK;
}
CUresult cuFuncGetAttribute(int* v, int, void*) { *v = 0; return OK; }
CUresult cuFuncSetAttribute(void*, int, int) { return OK; }
CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                        unsigned bz, unsigned shmem, void*, void** params, void** extra) {
    if (gz != 1 || bz != 1 || shmem != 0 || extra != nullptr || params == nullptr) {
        fprintf(stderr, "fake libcuda: unsupported launch (grid z %u, block z %u, shmem %u)\n",
                gz, bz, shmem);
        return INVALID_VALUE;
    }
    std::lock_guard<std::mutex> lock(g_launch);
    (*static_cast<Launcher*>(f))(dim3u{gx, gy, 1}, dim3u{bx, by, 1}, params);
    return OK;
}
// NVRTC itself opens libcuda and asks for the driver's private export tables; there are none.
CUresult cuGetExportTable(const void** table, const void*) { *table = nullptr; return 801; }
CUresult cuGetErrorString(CUresult, const char** s) { *s = "fake libcuda error"; return OK; }
CUresult cuGetErrorName(CUresult, const char** s) { *s = "CUDA_ERROR_FAKE"; return OK; }
}
