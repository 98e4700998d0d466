// Host emulation of the CUDA features that cuda-kernels/*.cu use, so that the unmodified kernel
// sources compile with g++ and run on the CPU (cuda-kernels/emulation/README.md says how and what
// this cannot show). It shadows the toolkit's <cuda_runtime.h>: the emulation build puts this folder
// first on the include path and never the toolkit's.
//
// Execution model: one launch runs its blocks one after another; the threads of a block are either
// OS threads (GS_EMU_MODE=threads: real concurrency, what ThreadSanitizer needs) or fibers on one
// OS thread (GS_EMU_MODE=fibers, the default: the same barriers, far faster).
// __syncthreads is a barrier of the block's threads, every warp operation a barrier of the warp's 32
// lanes with an exchange of their values, so a kernel that relies on lock-step warps or on a missing
// barrier misbehaves here as it may on a GPU. __shared__ variables are static (blocks do not
// overlap); dynamic shared memory is a fresh heap block per block filled with a poison pattern.
#pragma once

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- Qualifiers ---------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) alignas(n)
#define __launch_bounds__(...)
#define CUDART_VERSION 13000

// ---- Vector types -------------------------------------------------------------------------------
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// ---- Thread and block indices ---------------------------------------------------------------------
namespace gs_emu {
struct ThreadState;
extern thread_local ThreadState* current;  // the emulated CUDA thread running on this OS thread
struct ThreadState {
    uint3 thread_idx;
    int linear;  // threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)
};
extern uint3 block_idx;
extern dim3 block_dim, grid_dim;
}  // namespace gs_emu

#define threadIdx (gs_emu::current->thread_idx)
#define blockIdx (gs_emu::block_idx)
#define blockDim (gs_emu::block_dim)
#define gridDim (gs_emu::grid_dim)

// ---- Barriers and warp operations ----------------------------------------------------------------
namespace gs_emu {
void sync_block();
int sync_block_and(int predicate);
// Every lane of the calling warp contributes value; returns the 32 values (index = lane). mask must
// be the full warp (the kernels use no other); a partial mask is reported as an emulation failure.
const uint64_t* warp_exchange(unsigned mask, uint64_t value);
void fail(const char* what);  // prints and aborts: a kernel did something the emulation rejects

inline int lane() { return current->linear & 31; }

template <class T>
inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8, "warp values are at most 64 bits");
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <class T>
inline T from_bits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}
}  // namespace gs_emu

inline void __syncthreads() { gs_emu::sync_block(); }
inline int __syncthreads_and(int p) { return gs_emu::sync_block_and(p); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { gs_emu::warp_exchange(mask, 0); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    if (width != 32) gs_emu::fail("__shfl_xor_sync: width other than 32");
    const uint64_t* all = gs_emu::warp_exchange(mask, gs_emu::to_bits(v));
    return gs_emu::from_bits<T>(all[(gs_emu::lane() ^ lane_mask) & 31]);
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    if (width != 32) gs_emu::fail("__shfl_sync: width other than 32");
    const uint64_t* all = gs_emu::warp_exchange(mask, gs_emu::to_bits(v));
    return gs_emu::from_bits<T>(all[src & 31]);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
    const uint64_t* all = gs_emu::warp_exchange(mask, predicate ? 1 : 0);
    unsigned b = 0;
    for (int l = 0; l < 32; ++l) b |= unsigned(all[l] != 0) << l;
    return b;
}
inline int __all_sync(unsigned mask, int p) { return __ballot_sync(mask, p) == 0xffffffffu; }
inline int __any_sync(unsigned mask, int p) { return __ballot_sync(mask, p) != 0; }
inline unsigned __match_any_sync(unsigned mask, int v) {
    const uint64_t* all = gs_emu::warp_exchange(mask, uint32_t(v));
    const uint64_t mine = all[gs_emu::lane()];
    unsigned b = 0;
    for (int l = 0; l < 32; ++l) b |= unsigned(all[l] == mine) << l;
    return b;
}
inline unsigned __match_any_sync(unsigned mask, unsigned v) { return __match_any_sync(mask, int(v)); }
inline unsigned __reduce_add_sync(unsigned mask, unsigned v) {
    const uint64_t* all = gs_emu::warp_exchange(mask, v);
    unsigned s = 0;
    for (int l = 0; l < 32; ++l) s += unsigned(all[l]);
    return s;
}
template <class T, bool kMax>
inline T warp_extreme(unsigned mask, T v) {
    const uint64_t* all = gs_emu::warp_exchange(mask, gs_emu::to_bits(v));
    T r = gs_emu::from_bits<T>(all[0]);
    for (int l = 1; l < 32; ++l) {
        const T x = gs_emu::from_bits<T>(all[l]);
        r = kMax ? (x > r ? x : r) : (x < r ? x : r);
    }
    return r;
}
inline int __reduce_min_sync(unsigned mask, int v) { return warp_extreme<int, false>(mask, v); }
inline int __reduce_max_sync(unsigned mask, int v) { return warp_extreme<int, true>(mask, v); }
inline unsigned __reduce_min_sync(unsigned mask, unsigned v) { return warp_extreme<unsigned, false>(mask, v); }
inline unsigned __reduce_max_sync(unsigned mask, unsigned v) { return warp_extreme<unsigned, true>(mask, v); }

// ---- Integer and bit intrinsics -----------------------------------------------------------------
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline int __ffs(unsigned v) { return __builtin_ffs(int(v)); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(unsigned(v)); }
inline int __clzll(long long v) { return v == 0 ? 64 : __builtin_clzll((unsigned long long) v); }
inline int __float_as_int(float v) { return gs_emu::from_bits<int>(gs_emu::to_bits(v)); }
inline unsigned __float_as_uint(float v) { return gs_emu::from_bits<unsigned>(gs_emu::to_bits(v)); }
inline float __int_as_float(int v) { return gs_emu::from_bits<float>(gs_emu::to_bits(v)); }
inline float __uint_as_float(unsigned v) { return gs_emu::from_bits<float>(gs_emu::to_bits(v)); }
inline double __longlong_as_double(long long v) { return gs_emu::from_bits<double>(gs_emu::to_bits(v)); }
inline long long __double_as_longlong(double v) { return gs_emu::from_bits<long long>(gs_emu::to_bits(v)); }

// ---- Floating point as the device rounds it -------------------------------------------------------
// The _rn forms are single IEEE operations; the emulation build compiles with -ffp-contract=off so
// that no other expression is contracted to an FMA either (the CPU twins are built the same way).
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
// cvt.rzi.s32.f64: truncation, NaN -> 0, saturated at the int range (C++'s cast is undefined there).
inline int __double2int_rz(double v) {
    if (v != v) return 0;
    if (v >= 2147483647.0) return 2147483647;
    if (v <= -2147483648.0) return -2147483647 - 1;
    return int(v);
}
using std::isfinite;
using std::isinf;
using std::isnan;

// Device min / max: integer overloads as CUDA's headers provide them (the usual conversions).
template <class A, class B>
inline typename std::common_type<A, B>::type min(A a, B b) {
    using T = typename std::common_type<A, B>::type;
    return T(a) < T(b) ? T(a) : T(b);
}
template <class A, class B>
inline typename std::common_type<A, B>::type max(A a, B b) {
    using T = typename std::common_type<A, B>::type;
    return T(a) < T(b) ? T(b) : T(a);
}

// ---- Loads and stores with cache hints: plain accesses here -----------------------------------
template <class T>
inline T __ldg(const T* p) {
    return *p;
}
template <class T>
inline T __ldcg(const T* p) {
    return *p;
}
template <class T>
inline T __ldcs(const T* p) {
    return *p;
}
template <class T>
inline void __stcg(T* p, T v) {
    *p = v;
}
template <class T>
inline void __stcs(T* p, T v) {
    *p = v;
}

// ---- Atomics: real atomics (the threads of a block run concurrently in threads mode) ------------
template <class T>
inline T atomicAdd(T* a, T v) {
    static_assert(std::is_integral<T>::value, "the emulation has integer atomicAdd only");
    return __atomic_fetch_add(a, v, __ATOMIC_RELAXED);
}
template <class T, class U>
inline T atomicAdd(T* a, U v) {
    return atomicAdd(a, T(v));
}
template <class T, bool kMax>
inline T atomic_extreme(T* a, T v) {
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);
    while ((kMax ? v > old : v < old) &&
           !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
inline int atomicMin(int* a, int v) { return atomic_extreme<int, false>(a, v); }
inline int atomicMax(int* a, int v) { return atomic_extreme<int, true>(a, v); }
inline unsigned atomicMin(unsigned* a, unsigned v) { return atomic_extreme<unsigned, false>(a, v); }
inline unsigned atomicMax(unsigned* a, unsigned v) { return atomic_extreme<unsigned, true>(a, v); }
inline unsigned long long atomicMin(unsigned long long* a, unsigned long long v) {
    return atomic_extreme<unsigned long long, false>(a, v);
}
inline unsigned long long atomicMax(unsigned long long* a, unsigned long long v) {
    return atomic_extreme<unsigned long long, true>(a, v);
}
inline long long atomicMin(long long* a, long long v) { return atomic_extreme<long long, false>(a, v); }
inline long long atomicMax(long long* a, long long v) { return atomic_extreme<long long, true>(a, v); }

// ---- Runtime API: the calls the launchers and runtime.cu make ------------------------------------
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;
struct CUstream_st;
using cudaStream_t = CUstream_st*;

enum cudaDeviceAttr {
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81,
    cudaDevAttrMaxBlocksPerMultiprocessor = 106,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};

struct cudaFuncAttributes {
    size_t sharedSizeBytes;
    size_t maxDynamicSharedSizeBytes;
    int maxThreadsPerBlock;
};
struct cudaDeviceProp {
    char name[256];
    int major, minor;
    size_t totalGlobalMem;
    int multiProcessorCount;
};

const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t s);
cudaError_t cudaFreeAsync(void* p, cudaStream_t s);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);

namespace gs_emu {
cudaError_t func_get_attributes(cudaFuncAttributes* attr, const void* kernel);
cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value);
cudaError_t occupancy(int* blocks, const void* kernel, int threads, size_t smem);
}  // namespace gs_emu

template <class... A>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, void (*kernel)(A...)) {
    return gs_emu::func_get_attributes(attr, reinterpret_cast<const void*>(kernel));
}
template <class... A>
cudaError_t cudaFuncSetAttribute(void (*kernel)(A...), cudaFuncAttribute attr, int value) {
    return gs_emu::func_set_attribute(reinterpret_cast<const void*>(kernel), attr, value);
}
template <class... A>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, void (*kernel)(A...), int threads, size_t smem) {
    return gs_emu::occupancy(blocks, reinterpret_cast<const void*>(kernel), threads, smem);
}

// runtime.cu asks dlopen("libcuda.so.1") whether a driver exists; the emulated one always does.
#define dlopen(file, flags) gs_emu::open_driver(file)
#define dlclose(handle) ((void) (handle))
namespace gs_emu {
void* open_driver(const char* file);
}

// ---- Launch: kernel<<<grid, block, smem, stream>>>(args) ----------------------------------------
// preprocess.cmake rewrites it to  kernel >> gs_emu::Config(grid, block, smem, stream) << gs_emu::pack(args),
// and `extern __shared__ T name[];` to  T* name = static_cast<T*>(gs_emu::dynamic_shared());
namespace gs_emu {
struct Config {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    Config(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) : grid(g), block(b), smem(s), stream(st) {}
};
void* dynamic_shared();

template <class... A>
struct Pending {
    void (*kernel)(A...);
    Config config;
};
template <class... A>
Pending<A...> operator>>(void (*kernel)(A...), Config c) {
    return Pending<A...>{kernel, c};
}
template <class... V>
struct Args {
    std::tuple<V...> values;
};
template <class... V>
Args<typename std::decay<V>::type...> pack(V&&... v) {
    return Args<typename std::decay<V>::type...>{std::tuple<typename std::decay<V>::type...>(std::forward<V>(v)...)};
}

// Runs body(b) ... for every block; returns the launch's error (also recorded for cudaGetLastError).
cudaError_t run_grid(const void* kernel, const Config& c, void (*body)(void*), void* closure);

template <class K, class T>
struct Closure {
    K kernel;
    T args;
    static void run(void* self) {
        auto* c = static_cast<Closure*>(self);
        std::apply(c->kernel, c->args);
    }
};

template <class... A, class... V>
void operator<<(Pending<A...> p, Args<V...> a) {
    // Arguments are converted to the parameter types once, as the launch copies them.
    using Params = std::tuple<typename std::decay<A>::type...>;
    Closure<void (*)(A...), Params> c{p.kernel, std::apply([](auto&... v) { return Params(v...); }, a.values)};
    run_grid(reinterpret_cast<const void*>(p.kernel), p.config, &Closure<void (*)(A...), Params>::run, &c);
}
}  // namespace gs_emu
