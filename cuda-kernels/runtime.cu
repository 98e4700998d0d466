// CUDA runtime services behind the C ABI: device discovery, memory, copies, synchronisation.
// The CUDA runtime is linked statically, so this library loads on machines with no driver; the
// driver (libcuda.so.1) is opened by the runtime at the first call, and its absence becomes the
// reason string that the Java backend factory reports.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_check.cuh"

namespace {

// Why CUDA cannot be used, in words a user can act on; GS_OK when it can.
int cuda_unavailable_reason() {
    // Asked first so that the most common case names the missing file rather than an error code.
    void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (driver == nullptr) {
        return gs::fail(GS_CUDA_UNAVAILABLE, "no CUDA driver (libcuda.so.1 not found)");
    }
    dlclose(driver);
    int driver_version = 0;
    cudaDriverGetVersion(&driver_version);
    if (driver_version < CUDART_VERSION) {
        return gs::fail(GS_CUDA_UNAVAILABLE,
                        "CUDA driver too old: it supports CUDA %d.%d, gradshape was built with %d.%d",
                        driver_version / 1000, driver_version % 1000 / 10, CUDART_VERSION / 1000,
                        CUDART_VERSION % 1000 / 10);
    }
    return GS_OK;
}

}  // namespace

extern "C" {

int gs_cuda_compiled(int32_t* compiled) {
    *compiled = 1;
    return GS_OK;
}

int gs_cuda_device_count(int32_t* count) {
    *count = 0;
    if (int s = cuda_unavailable_reason()) return s;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
        const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
        return gs::fail(GS_CUDA_UNAVAILABLE, "no CUDA device visible%s%s%s",
                        visible ? " (CUDA_VISIBLE_DEVICES=" : "", visible ? visible : "",
                        visible ? ")" : "");
    }
    if (e != cudaSuccess) {
        return gs::fail(GS_CUDA_UNAVAILABLE, "CUDA cannot be initialised: %s (%s)",
                        cudaGetErrorString(e), cudaGetErrorName(e));
    }
    *count = n;
    return GS_OK;
}

int gs_cuda_device_properties(int32_t device, char* name, int32_t name_capacity, int32_t* major,
                              int32_t* minor, int64_t* total_bytes, int32_t* multiprocessors) {
    cudaDeviceProp prop;
    GS_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    if (name_capacity > 0) {
        std::snprintf(name, size_t(name_capacity), "%s", prop.name);
    }
    *major = prop.major;
    *minor = prop.minor;
    *total_bytes = int64_t(prop.totalGlobalMem);
    *multiprocessors = prop.multiProcessorCount;
    return GS_OK;
}

int gs_cuda_versions(int32_t* driver, int32_t* runtime) {
    int d = 0, r = 0;
    GS_CUDA_CHECK(cudaDriverGetVersion(&d));
    GS_CUDA_CHECK(cudaRuntimeGetVersion(&r));
    *driver = d;
    *runtime = r;
    return GS_OK;
}

int gs_cuda_set_device(int32_t device) {
    GS_CUDA_CHECK(cudaSetDevice(device));
    return GS_OK;
}

int gs_cuda_exchange_device(int32_t device, int32_t* previous) {
    int current = 0;
    GS_CUDA_CHECK(cudaGetDevice(&current));
    // Switching is not free (and may create a context): only when the device differs.
    if (current != device) GS_CUDA_CHECK(cudaSetDevice(device));
    *previous = current;
    return GS_OK;
}

int gs_cuda_malloc(int64_t bytes, int64_t* address) {
    void* p = nullptr;
    // cudaMalloc(0) returns NULL; a unique non-null address keeps "owned" and "closed" distinct.
    GS_CUDA_CHECK(cudaMalloc(&p, bytes == 0 ? 256 : size_t(bytes)));
    *address = int64_t(reinterpret_cast<intptr_t>(p));
    return GS_OK;
}

int gs_cuda_malloc_async(int64_t bytes, int64_t* address, gs_stream stream) {
    void* p = nullptr;
    GS_CUDA_CHECK(cudaMallocAsync(&p, bytes == 0 ? 256 : size_t(bytes), gs::as_stream(stream)));
    *address = int64_t(reinterpret_cast<intptr_t>(p));
    return GS_OK;
}

int gs_cuda_free_async(void* address, gs_stream stream) {
    GS_CUDA_CHECK(cudaFreeAsync(address, gs::as_stream(stream)));
    return GS_OK;
}

int gs_cuda_free(void* address) {
    GS_CUDA_CHECK(cudaFree(address));
    return GS_OK;
}

int gs_cuda_mem_get_info(int64_t* free_bytes, int64_t* total_bytes) {
    size_t f = 0, t = 0;
    GS_CUDA_CHECK(cudaMemGetInfo(&f, &t));
    *free_bytes = int64_t(f);
    *total_bytes = int64_t(t);
    return GS_OK;
}

int gs_cuda_memcpy(void* dst, const void* src, int64_t bytes, gs_stream stream) {
    if (bytes == 0) return GS_OK;
    GS_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(bytes), cudaMemcpyDefault, gs::as_stream(stream)));
    return GS_OK;
}

int gs_cuda_memset(void* dst, int32_t value, int64_t bytes, gs_stream stream) {
    if (bytes == 0) return GS_OK;
    GS_CUDA_CHECK(cudaMemsetAsync(dst, value, size_t(bytes), gs::as_stream(stream)));
    return GS_OK;
}

int gs_cuda_stream_synchronize(gs_stream stream) {
    GS_CUDA_CHECK(cudaStreamSynchronize(gs::as_stream(stream)));
    return GS_OK;
}

}  // extern "C"
