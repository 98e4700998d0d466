// Built when gradshape is built without nvcc: the CUDA entry points of the PowerGrad family exist
// and say why they cannot run.
#include "../core/status.hpp"

#define GS_NO_CUDA(fn) gs::fail(GS_CUDA_UNAVAILABLE, "%s: gradshape was built without CUDA (nvcc not found at build time)", fn)

extern "C" {

int gs_pg_workspace_cuda(int64_t* workspace_bytes) {
    *workspace_bytes = 0;
    return GS_NO_CUDA("gs_pg_workspace_cuda");
}

int gs_pg_cuda(const float*, int32_t, int32_t, const int32_t*, const float*, int32_t, int32_t, float, float,
               int32_t, float*, float*, gs_pg_report*, void*, int64_t, gs_stream) {
    return GS_NO_CUDA("gs_pg_cuda");
}

}  // extern "C"
