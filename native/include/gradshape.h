/*
 * gradshape.h: the plain-C ABI of the gradshape native library.
 *
 * Rules every entry point follows (see STYLE.md in the project's shared notes):
 *   - returns a gs_status; results go through out-parameters;
 *   - never throws, prints or exits: on failure the text of the error is kept per thread and read
 *     back with gs_last_error_message() on the same thread, right after the failing call;
 *   - CUDA entry points take the stream last (a cudaStream_t passed as void*, NULL = legacy default
 *     stream) and are asynchronous on it unless their comment says otherwise;
 *   - arguments are trusted: the Java layer validates shapes, ranges and buffer sizes first. A
 *     native check that still fails returns GS_INVALID_ARGUMENT rather than touching memory.
 *
 * One header per kernel family under gradshape/, included below.
 */
#ifndef GRADSHAPE_H
#define GRADSHAPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gs_status {
    GS_OK = 0,
    GS_INVALID_ARGUMENT = 1,    /* a precondition the caller should have checked */
    GS_OUT_OF_MEMORY = 2,       /* a host allocation failed */
    GS_CUDA_ERROR = 3,          /* a CUDA runtime call or kernel launch failed */
    GS_CUDA_UNAVAILABLE = 4,    /* built without CUDA, no driver, or no device */
    GS_NONFINITE_INPUT = 5,     /* an input held NaN or infinity where that is an error */
    GS_INTERNAL = 6             /* a bug in gradshape: please report it */
} gs_status;

/* A CUDA stream (cudaStream_t) seen through the C ABI. */
typedef void* gs_stream;

/* Text of the last failure on the calling thread ("" when none). Never NULL. */
const char* gs_last_error_message(void);

/* Library version, e.g. "0.1.0". */
const char* gs_version(void);

/* How the library was built: "CPU + CUDA 13.0 (sm_90 + compute_90 PTX)" or "CPU only (...)". */
const char* gs_build_info(void);

/* Worker threads used by the CPU kernels (the calling thread counts as one). */
int gs_cpu_thread_count(int32_t* threads);
/* threads <= 0 restores the default: one per hardware thread. */
int gs_cpu_set_thread_count(int32_t threads);

/* Host memory aligned to 64 bytes (cache line; 16-byte vector loads everywhere). */
int gs_host_alloc(int64_t bytes, int64_t* address);
int gs_host_free(void* address);

/* ---- CUDA runtime services (all return GS_CUDA_UNAVAILABLE when built without CUDA) ---- */

/* 1 when the library holds CUDA kernels, else 0. Never fails. */
int gs_cuda_compiled(int32_t* compiled);
/* Number of usable devices. On failure (no driver, driver too old, no device) returns
 * GS_CUDA_UNAVAILABLE and a message that says which. */
int gs_cuda_device_count(int32_t* count);
/* name: UTF-8, NUL-terminated, at most name_capacity bytes. */
int gs_cuda_device_properties(int32_t device, char* name, int32_t name_capacity, int32_t* major,
                              int32_t* minor, int64_t* total_bytes, int32_t* multiprocessors);
/* Driver and runtime versions as 1000*major + 10*minor. */
int gs_cuda_versions(int32_t* driver, int32_t* runtime);
/* Makes device current on the calling thread. */
int gs_cuda_set_device(int32_t device);
/* Makes device current on the calling thread and returns the device that was current before, so
 * that the caller can restore it (a host framework's own CUDA calls on this thread expect theirs).
 * On failure the current device is unchanged. */
int gs_cuda_exchange_device(int32_t device, int32_t* previous);
int gs_cuda_malloc(int64_t bytes, int64_t* address);
int gs_cuda_free(void* address);
/* Stream-ordered allocation (cudaMallocAsync / cudaFreeAsync): usable by work queued on stream after
 * the call, freed after the work queued before the free; neither synchronizes the device. bytes == 0
 * still gives a unique address. */
int gs_cuda_malloc_async(int64_t bytes, int64_t* address, gs_stream stream);
int gs_cuda_free_async(void* address, gs_stream stream);
int gs_cuda_mem_get_info(int64_t* free_bytes, int64_t* total_bytes);
/* cudaMemcpyAsync with cudaMemcpyDefault: host or device on either side (unified addressing). */
int gs_cuda_memcpy(void* dst, const void* src, int64_t bytes, gs_stream stream);
int gs_cuda_memset(void* dst, int32_t value, int64_t bytes, gs_stream stream);
/* Blocks until the stream's work is done; reports errors of earlier asynchronous launches. */
int gs_cuda_stream_synchronize(gs_stream stream);

#ifdef __cplusplus
}
#endif

#include "gradshape/spatial_dependence.h"
#include "gradshape/scaled_sgd.h"
#include "gradshape/power_grad.h"

#endif /* GRADSHAPE_H */
