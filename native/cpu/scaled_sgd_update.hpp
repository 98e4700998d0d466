// The per-element update of the scaled SGD step (SPEC.md section 2), shared by the CPU loops and the
// CUDA kernel so that both backends evaluate the same expression in the same order. Written with plain
// multiply-adds: nvcc contracts them into FMAs, GCC at x86-64-v2 (no FMA unit) keeps them separate.
#pragma once

#include "gradshape.h"

#if defined(__CUDACC__)
#define GS_SSGD_INLINE __host__ __device__ __forceinline__
#else
#define GS_SSGD_INLINE inline __attribute__((always_inline))
#endif

namespace gs {
namespace ssgd {

// What happens to the momentum buffer this step; chosen once per step, never per element.
enum Momentum { NO_MOMENTUM = 0, FIRST_STEP = 1, RUNNING = 2 };

// Kernel-position mapping of a tensor; chosen once per tensor.
enum Scale { UNSCALED = 0, SCALE_OIHW = 1, SCALE_HWIO = 2 };

// Per-step hyperparameters, passed by value to every loop and kernel.
struct Hyper {
    float signed_lr;            // -lr: w += signed_lr * d
    float momentum;
    float one_minus_dampening;
    float weight_decay;
    float unscale;              // mixed-precision gradient unscale factor (1 without), negated when maximizing
};

// maximize negates the gradient before weight decay and momentum, as torch.optim.SGD does: decay still
// shrinks the weights and the momentum buffer keeps PyTorch's sign. Folding the sign into the unscale
// factor negates every scaled gradient exactly (a float sign flip is exact), with no per-element branch.
inline Hyper make_hyper(float lr, float momentum, float dampening, float weight_decay, int32_t maximize,
                        float unscale) {
    return Hyper{-lr, momentum, 1.0f - dampening, weight_decay, maximize ? -unscale : unscale};
}

// One element. `scale` is G[position] * unscale (or unscale for tensors without a kernel); `buf` is read
// only when MODE == RUNNING and written unless MODE == NO_MOMENTUM.
template <bool DECAY, int MODE, bool NESTEROV>
GS_SSGD_INLINE float update(float w, float g, float scale, float& buf, const Hyper& h) {
    float d = g * scale;
    if (DECAY) d = d + h.weight_decay * w;
    if (MODE == FIRST_STEP) {
        buf = d;
        d = NESTEROV ? d + h.momentum * buf : buf;
    } else if (MODE == RUNNING) {
        buf = h.momentum * buf + h.one_minus_dampening * d;
        d = NESTEROV ? d + h.momentum * buf : buf;
    }
    return w + h.signed_lr * d;
}

}  // namespace ssgd
}  // namespace gs
