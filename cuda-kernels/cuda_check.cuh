// The CUDA side of the error funnel: GS_CUDA_CHECK records the CUDA error text with the failing
// call and returns GS_CUDA_ERROR from the enclosing entry point. Never exit(): we live in a JVM.
#pragma once

#include <cuda_runtime.h>

#include "../native/core/status.hpp"

// A failed runtime call also leaves its error pending for cudaGetLastError(); it is consumed here,
// where it is reported, so that it cannot surface again at our next launch check (F1).
#define GS_CUDA_CHECK(call)                                                                   \
    do {                                                                                      \
        cudaError_t gs_err_ = (call);                                                         \
        if (gs_err_ != cudaSuccess) {                                                         \
            (void) cudaGetLastError();                                                        \
            return gs::fail(GS_CUDA_ERROR, "%s: %s (%s) at %s:%d", #call,                     \
                            cudaGetErrorString(gs_err_), cudaGetErrorName(gs_err_), __FILE__, \
                            __LINE__);                                                        \
        }                                                                                     \
    } while (0)

// After a kernel launch: reports a bad launch configuration at once (asynchronous faults surface
// at the next synchronizing call on the stream). Every launch is preceded by clear_pending_error(),
// so the error read here is the launch's own: a queued kernel never reports failure (F1: a retried
// ScaledSgd.step would update twice, a retried in-place PowerGrad transform its own gradient).
#define GS_CUDA_CHECK_LAUNCH() GS_CUDA_CHECK(cudaGetLastError())

namespace gs {

// Drops an error that an earlier runtime call on this thread left pending (the host framework's own,
// e.g. an out-of-memory its allocator recovered from; ours are consumed where they are reported).
// A sticky error (a device fault) is not cleared by this and makes the launch itself fail.
inline void clear_pending_error() { (void) cudaGetLastError(); }

inline cudaStream_t as_stream(gs_stream s) { return static_cast<cudaStream_t>(s); }

inline unsigned blocks_for(int64_t items, int threads_per_block, int64_t max_blocks) {
    int64_t b = (items + threads_per_block - 1) / threads_per_block;
    if (b < 1) b = 1;
    return unsigned(b < max_blocks ? b : max_blocks);
}

}  // namespace gs
