// Built instead of cuda-kernels/runtime.cu when nvcc was not found (or -Dgradshape.cuda=off):
// every CUDA entry point exists and says why it cannot run.
#include "../core/status.hpp"

#define GS_NO_CUDA(fn) gs::fail(GS_CUDA_UNAVAILABLE, "%s: gradshape was built without CUDA (nvcc not found at build time)", fn)

extern "C" {

int gs_cuda_compiled(int32_t* compiled) {
    *compiled = 0;
    return GS_OK;
}
int gs_cuda_device_count(int32_t* count) {
    *count = 0;
    return GS_NO_CUDA("gs_cuda_device_count");
}
int gs_cuda_device_properties(int32_t, char*, int32_t, int32_t*, int32_t*, int64_t*, int32_t*) {
    return GS_NO_CUDA("gs_cuda_device_properties");
}
int gs_cuda_versions(int32_t*, int32_t*) { return GS_NO_CUDA("gs_cuda_versions"); }
int gs_cuda_set_device(int32_t) { return GS_NO_CUDA("gs_cuda_set_device"); }
int gs_cuda_exchange_device(int32_t, int32_t*) { return GS_NO_CUDA("gs_cuda_exchange_device"); }
int gs_cuda_malloc(int64_t, int64_t*) { return GS_NO_CUDA("gs_cuda_malloc"); }
int gs_cuda_free(void*) { return GS_NO_CUDA("gs_cuda_free"); }
int gs_cuda_malloc_async(int64_t, int64_t*, gs_stream) { return GS_NO_CUDA("gs_cuda_malloc_async"); }
int gs_cuda_free_async(void*, gs_stream) { return GS_NO_CUDA("gs_cuda_free_async"); }
int gs_cuda_mem_get_info(int64_t*, int64_t*) { return GS_NO_CUDA("gs_cuda_mem_get_info"); }
int gs_cuda_memcpy(void*, const void*, int64_t, gs_stream) { return GS_NO_CUDA("gs_cuda_memcpy"); }
int gs_cuda_memset(void*, int32_t, int64_t, gs_stream) { return GS_NO_CUDA("gs_cuda_memset"); }
int gs_cuda_stream_synchronize(gs_stream) { return GS_NO_CUDA("gs_cuda_stream_synchronize"); }

}  // extern "C"
