// Built when gradshape is built without nvcc: the CUDA entry point of the scaled SGD family exists and
// says why it cannot run. (The table builder is host code, in native/cpu/scaled_sgd.cpp.)
#include "../core/status.hpp"

#define GS_NO_CUDA(fn) gs::fail(GS_CUDA_UNAVAILABLE, "%s: gradshape was built without CUDA (nvcc not found at build time)", fn)

extern "C" {

int gs_ssgd_step_cuda(const void*, int32_t, int64_t, const float*, float, float, float, float, int32_t, int32_t, float,
                      int32_t, gs_stream) {
    return GS_NO_CUDA("gs_ssgd_step_cuda");
}

}  // extern "C"
