// Test controls of the CUDA host emulation (cuda_runtime.h): device limits, injected failures and
// counters of the runtime calls, so that tests can force every launch layout and see what the host
// code asked of the runtime. Plain C: the JNI build of the emulation exposes the same functions.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { GS_EMU_DEVICES = 8 };

typedef struct gs_emu_limits {
    int32_t multiprocessors;
    int32_t smem_optin;         /* cudaDevAttrMaxSharedMemoryPerBlockOptin */
    int32_t smem_per_sm;        /* cudaDevAttrMaxSharedMemoryPerMultiprocessor */
    int32_t max_blocks_per_sm;
    int32_t static_smem;        /* what cudaFuncGetAttributes reports as sharedSizeBytes, every kernel */
} gs_emu_limits;

typedef struct gs_emu_counters {
    int64_t device_attribute_queries;
    int64_t func_attribute_queries;   /* cudaFuncGetAttributes + cudaFuncSetAttribute */
    int64_t occupancy_queries;
    int64_t mallocs, frees;           /* cudaMalloc, cudaFree (which synchronizes the device) */
    int64_t stream_mallocs, stream_frees; /* cudaMallocAsync, cudaFreeAsync (which do not) */
    int64_t frees_on_other_device;    /* cudaFree while another device than the buffer's was current */
    int64_t launches, failed_launches;
    int64_t synchronizations;
    int64_t set_device_calls;
    int64_t legacy_stream_operations; /* copies, sets, launches on the NULL stream */
    int64_t stream_operations;        /* the same on any other stream */
} gs_emu_counters;

/* Limits of an emulated device (0..GS_EMU_DEVICES-1); the defaults are an H100's with 4 SMs. */
void gs_emu_set_limits(int32_t device, gs_emu_limits limits);
gs_emu_limits gs_emu_get_limits(int32_t device);
/* The next n cudaMalloc calls fail with cudaErrorMemoryAllocation (and leave it pending). */
void gs_emu_fail_next_mallocs(int32_t n);
gs_emu_counters gs_emu_get_counters(void);
void gs_emu_reset_counters(void);
/* Bytes cudaMalloc'ed and not freed. */
int64_t gs_emu_live_bytes(void);
/* "fibers" (default) or "threads"; also read from the environment variable GS_EMU_MODE. */
void gs_emu_set_mode(const char* mode);
const char* gs_emu_mode(void);

#ifdef __cplusplus
}
#endif
