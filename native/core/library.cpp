// Entry points that belong to no kernel family: version, build, threads, host memory.
#include <cstdlib>

#include "gradshape.h"
#include "parallel.hpp"
#include "status.hpp"

#ifndef GS_VERSION
#error "GS_VERSION must be defined by the build"
#endif
#ifndef GS_BUILD_INFO
#error "GS_BUILD_INFO must be defined by the build"
#endif

extern "C" {

const char* gs_version(void) { return GS_VERSION; }

const char* gs_build_info(void) { return GS_BUILD_INFO; }

int gs_cpu_thread_count(int32_t* threads) {
    return gs::guarded("gs_cpu_thread_count", [&] {
        *threads = gs::thread_count();
        return GS_OK;
    });
}

int gs_cpu_set_thread_count(int32_t threads) {
    return gs::guarded("gs_cpu_set_thread_count", [&] {
        gs::set_thread_count(threads);
        return GS_OK;
    });
}

int gs_host_alloc(int64_t bytes, int64_t* address) {
    if (bytes < 0) return gs::fail(GS_INVALID_ARGUMENT, "gs_host_alloc: bytes = %lld < 0", (long long)bytes);
    // aligned_alloc wants a multiple of the alignment; 0 bytes still yields a unique pointer.
    size_t rounded = (size_t(bytes) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (p == nullptr) return gs::fail(GS_OUT_OF_MEMORY, "gs_host_alloc: %lld bytes: out of host memory", (long long)bytes);
    *address = int64_t(reinterpret_cast<intptr_t>(p));
    return GS_OK;
}

int gs_host_free(void* address) {
    std::free(address);
    return GS_OK;
}

}  // extern "C"
