// The CUDA side of the error funnel: GS_CUDA_CHECK records the CUDA error text with the failing
// call and returns GS_CUDA_ERROR from the enclosing entry point. Never exit(): we live in a JVM.
#pragma once

#include <cuda_runtime.h>

#include "../native/core/status.hpp"

#define GS_CUDA_CHECK(call)                                                                   \
    do {                                                                                      \
        cudaError_t gs_err_ = (call);                                                         \
        if (gs_err_ != cudaSuccess) {                                                         \
            return gs::fail(GS_CUDA_ERROR, "%s: %s (%s) at %s:%d", #call,                     \
                            cudaGetErrorString(gs_err_), cudaGetErrorName(gs_err_), __FILE__, \
                            __LINE__);                                                        \
        }                                                                                     \
    } while (0)

// After a kernel launch: reports a bad launch configuration at once (asynchronous faults surface
// at the next synchronizing call on the stream).
#define GS_CUDA_CHECK_LAUNCH() GS_CUDA_CHECK(cudaGetLastError())

namespace gs {

inline cudaStream_t as_stream(gs_stream s) { return static_cast<cudaStream_t>(s); }

inline unsigned blocks_for(int64_t items, int threads_per_block, int64_t max_blocks) {
    int64_t b = (items + threads_per_block - 1) / threads_per_block;
    if (b < 1) b = 1;
    return unsigned(b < max_blocks ? b : max_blocks);
}

}  // namespace gs
