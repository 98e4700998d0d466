// Entry points that belong to no kernel family: version, build, threads, host memory.
#include <cstdlib>

#include <sys/mman.h>

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
    void* p;
    constexpr size_t kHugePage = size_t(2) << 20;
    if (rounded >= 4 * kHugePage) {
        // Large buffers (histogram state, staged inputs) are often freshly allocated per call, and the
        // first touch of fresh 4 KiB pages costs about 5 ms per MiB on the VMs we measured (a 64 MiB
        // state: 300-500 ms); on 2 MiB transparent huge pages the same touch takes 6 ms. Advisory only:
        // where THP is off, nothing changes. The rounding wastes at most 2 MiB of a buffer >= 8 MiB.
        rounded = (rounded + kHugePage - 1) / kHugePage * kHugePage;
        p = std::aligned_alloc(kHugePage, rounded);
        if (p != nullptr) madvise(p, rounded, MADV_HUGEPAGE);
    } else {
        p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    }
    if (p == nullptr) return gs::fail(GS_OUT_OF_MEMORY, "gs_host_alloc: %lld bytes: out of host memory", (long long)bytes);
    *address = int64_t(reinterpret_cast<intptr_t>(p));
    return GS_OK;
}

int gs_host_free(void* address) {
    std::free(address);
    return GS_OK;
}

}  // extern "C"
