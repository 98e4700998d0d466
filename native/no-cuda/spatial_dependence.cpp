// Built when gradshape is built without nvcc: the CUDA entry points of the spatial-dependence family
// exist and say why they cannot run.
#include "../core/status.hpp"

#define GS_NO_CUDA(fn) gs::fail(GS_CUDA_UNAVAILABLE, "%s: gradshape was built without CUDA (nvcc not found at build time)", fn)

extern "C" {

int gs_sd_stats_cuda(const float*, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t,
                     int32_t, int32_t, int32_t, int64_t*, float*, int64_t*, gs_stream) {
    return GS_NO_CUDA("gs_sd_stats_cuda");
}

int gs_sd_histogram_workspace_cuda(int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, int64_t* workspace_bytes) {
    *workspace_bytes = 0;
    return GS_NO_CUDA("gs_sd_histogram_workspace_cuda");
}

int gs_sd_histogram_cuda(const float*, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t,
                         int32_t, int32_t, int32_t, float, float, int32_t, const int64_t*, const float*, int32_t,
                         int64_t*, void*, int64_t, gs_stream) {
    return GS_NO_CUDA("gs_sd_histogram_cuda");
}

int gs_sd_finalize_cuda(int32_t, int32_t, int32_t, int32_t, const int64_t*, const int64_t*, int32_t, float, int32_t,
                        const float*, float*, float*, float*, int32_t*, gs_stream) {
    return GS_NO_CUDA("gs_sd_finalize_cuda");
}

}  // extern "C"
