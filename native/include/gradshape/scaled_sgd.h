/*
 * gradshape/scaled_sgd.h: the scaled SGD step, SPEC.md section 2.
 *
 * torch.optim.SGD on the gradient pre-scaled by the spatial gradient scale G of each conv weight,
 * every parameter tensor of a model in one call (one kernel launch on CUDA). Per element:
 *
 *     d   = scale * (unscale * g)          scale = G[position] for a tensor with a kernel, else 1
 *     d  += weight_decay * w               only for tensors whose decay flag is set; never scaled
 *     if momentum != 0:
 *         buf = first_step ? d : momentum * buf + (1 - dampening) * d
 *         d   = nesterov ? d + momentum * buf : buf
 *     w  -= lr * d                         (maximize: w += lr * d)
 *
 * Kernel position of element i of a tensor with a kh x kw kernel (kernel_area = kh * kw):
 *     OIHW (PyTorch, DL4J):  i mod kernel_area
 *     HWIO (TensorFlow):     i / channels, channels = Cin * Cout
 *
 * ---- The table ---------------------------------------------------------------------------------
 * The tensor list is registered once: gs_ssgd_table_bytes sizes a table, gs_ssgd_table_build writes
 * it into host memory, and for CUDA the caller copies it to device memory as it is (it holds device
 * addresses and nothing host-specific). A table is an array of gs_ssgd_tensor, one per tensor, then
 * (CUDA only) at byte offset gs_ssgd_block_table_offset(tensors) an array of gs_ssgd_block, one per
 * GS_SSGD_CUDA_CHUNK elements of each tensor: the blocks of the single kernel launch.
 *
 * The scales live apart from the table, in a float array (the "scale table", host or device like the
 * table): tensor t reads its kernel_area values from scale_offset[t]. Replacing a G rewrites those
 * few floats; the table is never rebuilt. Learning rate and the other hyperparameters pass by value
 * at every step.
 *
 * Memory: weights, grads and momentum of every tensor are float32, host memory for the CPU flavour,
 * device memory of the current device for the CUDA flavour. Tensors must not overlap each other;
 * the grads of a tensor may not alias the weights or momentum of another. The CUDA flavour uses
 * 16-byte vector accesses where a tensor's three arrays share the same address modulo 16 (after a
 * scalar head), scalar accesses elsewhere.
 */
#ifndef GRADSHAPE_SCALED_SGD_H
#define GRADSHAPE_SCALED_SGD_H

#include "../gradshape.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { GS_SSGD_LAYOUT_OIHW = 0, GS_SSGD_LAYOUT_HWIO = 1 };

/* Elements of one tensor that one CUDA thread block updates (a multiple of 4: every chunk starts at
 * the same address modulo 16 as its tensor). Java checks Cin * Cout < 2^31, so positions fit 32 bits. */
enum { GS_SSGD_CUDA_CHUNK = 32768 };

/* One parameter tensor, as gs_ssgd_table_build writes it. */
typedef struct gs_ssgd_tensor {
    float* weights;
    const float* grads;
    float* momentum;        /* NULL when the optimizer keeps no momentum (momentum == 0) */
    int64_t length;         /* elements */
    int64_t start;          /* offset of element 0 in the concatenation of all tensors */
    int64_t channels;       /* HWIO: Cin * Cout (elements per kernel position); otherwise 1 */
    int32_t kernel_area;    /* kh * kw; 0: no scale (biases, norms, fully connected) */
    int32_t layout;         /* GS_SSGD_LAYOUT_* */
    int32_t scale_offset;   /* index of this tensor's first scale in the scale table */
    int32_t decay;          /* 1: weight decay applies to this tensor */
    int32_t head;           /* elements before the first 16-byte aligned one (0..3); -1: the three
                               arrays are not mutually aligned, so only scalar accesses */
    int32_t reserved;       /* 0 */
} gs_ssgd_tensor;

/* One CUDA thread block's share: elements [chunk * GS_SSGD_CUDA_CHUNK, +GS_SSGD_CUDA_CHUNK) of a tensor,
 * with the kernel position of its first element precomputed (the device then needs no 64-bit division):
 * OIHW: position_base = begin mod kernel_area; HWIO: position_first = begin / channels and
 * position_base = begin mod channels; 0 for tensors without a scale. */
typedef struct gs_ssgd_block {
    int32_t tensor;
    int32_t chunk;
    uint32_t position_first;
    uint32_t position_base;
} gs_ssgd_block;

/* Byte offset of the block array in a CUDA table (16-byte aligned). */
static inline int64_t gs_ssgd_block_table_offset(int32_t tensors) {
    return ((int64_t)tensors * (int64_t)sizeof(gs_ssgd_tensor) + 15) / 16 * 16;
}

/* Size of the table for tensors of these lengths; for_cuda adds the block array, whose length goes to
 * *blocks (0 for the CPU). */
int gs_ssgd_table_bytes(int32_t tensors, const int64_t* lengths, int32_t for_cuda, int64_t* table_bytes,
                        int64_t* blocks);

/* Writes the table into host memory (table_bytes as gs_ssgd_table_bytes gave). Per tensor t:
 * weights/grads/momentum: addresses (momentum[t] = 0 when momentum is off); lengths; kernel_area
 * (0 = no scale); layout; channels (HWIO: Cin * Cout, ignored otherwise); decay (0/1); scale_offset. */
int gs_ssgd_table_build(int32_t tensors, const int64_t* weights, const int64_t* grads, const int64_t* momentum,
                        const int64_t* lengths, const int32_t* kernel_area, const int32_t* layout,
                        const int64_t* channels, const int32_t* decay, const int32_t* scale_offset,
                        int32_t for_cuda, void* table, int64_t table_bytes);

/* One step over every tensor of the table (host memory). first_step: buf = d instead of the
 * momentum update (the first step after construction, as PyTorch creates its buffers). */
int gs_ssgd_step_cpu(const void* table, int32_t tensors, const float* scales, float lr, float momentum,
                     float dampening, float weight_decay, int32_t nesterov, int32_t maximize, float unscale,
                     int32_t first_step);

/* The same on the device: table (with its block array) and scales in device memory; one launch. */
int gs_ssgd_step_cuda(const void* table, int32_t tensors, int64_t blocks, const float* scales, float lr,
                      float momentum, float dampening, float weight_decay, int32_t nesterov, int32_t maximize,
                      float unscale, int32_t first_step, gs_stream stream);

#ifdef __cplusplus
}
#endif

#endif /* GRADSHAPE_SCALED_SGD_H */
