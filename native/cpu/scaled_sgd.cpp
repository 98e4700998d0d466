// Scaled SGD step on the CPU (SPEC.md section 2), and the table builder both backends use.
//
// The step splits the concatenation of all tensors into one contiguous range per thread, so a thread
// streams through its share of every array once. Inside a range, each tensor is handled by a loop
// specialised for its scale mapping, decay flag and the step's momentum mode: no per-element branch
// on any flag, so GCC vectorizes the loops (unaligned 16-byte SSE at x86-64-v2).
#include <algorithm>
#include <cstring>

#include "cpu/scaled_sgd_update.hpp"
#include "core/parallel.hpp"
#include "core/status.hpp"

namespace gs {
namespace ssgd {
namespace {

// Elements per thread range below which splitting does not pay.
constexpr int64_t GRAIN = 16384;
// OIHW scales are expanded into a repeating pattern of about this many elements so that the inner
// loop reads its scale from a contiguous array (vectorizable) instead of computing i mod (kh*kw).
constexpr int PATTERN = 1024;

// Elements [0, n) from w, g, m: scale s[j] (an OIHW pattern) ...
template <bool DECAY, int MODE, bool NESTEROV>
inline void run_pattern(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m, int64_t n,
                        const float* __restrict__ s, const Hyper& h) {
    for (int64_t j = 0; j < n; ++j) {
        float buf = MODE == RUNNING ? m[j] : 0.0f;
        w[j] = update<DECAY, MODE, NESTEROV>(w[j], g[j], s[j], buf, h);
        if (MODE != NO_MOMENTUM) m[j] = buf;
    }
}

// ... or one scale c for all of them.
template <bool DECAY, int MODE, bool NESTEROV>
inline void run_constant(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m, int64_t n,
                         float c, const Hyper& h) {
    for (int64_t j = 0; j < n; ++j) {
        float buf = MODE == RUNNING ? m[j] : 0.0f;
        w[j] = update<DECAY, MODE, NESTEROV>(w[j], g[j], c, buf, h);
        if (MODE != NO_MOMENTUM) m[j] = buf;
    }
}

// The momentum pointer at element i (null without momentum: never dereferenced then).
inline float* momentum_at(const gs_ssgd_tensor& t, int64_t i) { return t.momentum ? t.momentum + i : nullptr; }

// Elements [begin, end) of tensor t.
template <int SCALE, bool DECAY, int MODE, bool NESTEROV>
void run_tensor(const gs_ssgd_tensor& t, int64_t begin, int64_t end, const float* scales, const Hyper& h) {
    if (SCALE == UNSCALED) {
        run_constant<DECAY, MODE, NESTEROV>(t.weights + begin, t.grads + begin, momentum_at(t, begin), end - begin,
                                            h.unscale, h);
    } else if (SCALE == SCALE_HWIO) {
        // Position i / (Cin*Cout): runs of `channels` consecutive elements share one scale.
        const float* G = scales + t.scale_offset;
        const int64_t c = t.channels;
        for (int64_t i = begin; i < end;) {
            int64_t p = i / c;
            int64_t run_end = std::min(end, (p + 1) * c);
            run_constant<DECAY, MODE, NESTEROV>(t.weights + i, t.grads + i, momentum_at(t, i), run_end - i,
                                                G[p] * h.unscale, h);
            i = run_end;
        }
    } else {
        const float* G = scales + t.scale_offset;
        const int64_t area = t.kernel_area;
        int64_t phase = begin % area;
        if (area <= PATTERN) {
            // pattern[j] = G[j mod area] * unscale for j < period + area; period is a multiple of area,
            // so every block of `period` elements starts at the same phase.
            const int64_t period = area * (PATTERN / area);
            float pattern[2 * PATTERN];
            for (int64_t j = 0; j < period + area; j += area) {
                for (int64_t k = 0; k < area; ++k) pattern[j + k] = G[k] * h.unscale;
            }
            for (int64_t i = begin; i < end; i += period) {
                run_pattern<DECAY, MODE, NESTEROV>(t.weights + i, t.grads + i, momentum_at(t, i), std::min(period, end - i),
                                                   pattern + phase, h);
            }
        } else {
            // Large kernels: walk one kernel's positions at a time, each a long contiguous run.
            for (int64_t i = begin; i < end;) {
                int64_t n = std::min(area - phase, end - i);
                float* __restrict__ w = t.weights + i;
                const float* __restrict__ g = t.grads + i;
                float* __restrict__ m = momentum_at(t, i);
                const float* s = G + phase;
                for (int64_t j = 0; j < n; ++j) {
                    float buf = MODE == RUNNING ? m[j] : 0.0f;
                    w[j] = update<DECAY, MODE, NESTEROV>(w[j], g[j], s[j] * h.unscale, buf, h);
                    if (MODE != NO_MOMENTUM) m[j] = buf;
                }
                i += n;
                phase = 0;
            }
        }
    }
}

using TensorLoop = void (*)(const gs_ssgd_tensor&, int64_t, int64_t, const float*, const Hyper&);

template <int SCALE, bool DECAY>
TensorLoop pick_momentum(int mode, bool nesterov) {
    switch (mode) {
        case FIRST_STEP:
            return nesterov ? run_tensor<SCALE, DECAY, FIRST_STEP, true> : run_tensor<SCALE, DECAY, FIRST_STEP, false>;
        case RUNNING:
            return nesterov ? run_tensor<SCALE, DECAY, RUNNING, true> : run_tensor<SCALE, DECAY, RUNNING, false>;
        default:
            return run_tensor<SCALE, DECAY, NO_MOMENTUM, false>;
    }
}

template <int SCALE>
TensorLoop pick_decay(bool decay, int mode, bool nesterov) {
    return decay ? pick_momentum<SCALE, true>(mode, nesterov) : pick_momentum<SCALE, false>(mode, nesterov);
}

TensorLoop pick(const gs_ssgd_tensor& t, int mode, bool nesterov) {
    bool decay = t.decay != 0;
    if (t.kernel_area == 0) return pick_decay<UNSCALED>(decay, mode, nesterov);
    if (t.layout == GS_SSGD_LAYOUT_HWIO) return pick_decay<SCALE_HWIO>(decay, mode, nesterov);
    return pick_decay<SCALE_OIHW>(decay, mode, nesterov);
}

}  // namespace
}  // namespace ssgd
}  // namespace gs

using namespace gs::ssgd;

extern "C" {

int gs_ssgd_table_bytes(int32_t tensors, const int64_t* lengths, int32_t for_cuda, int64_t* table_bytes,
                        int64_t* blocks) {
    return gs::guarded("gs_ssgd_table_bytes", [&]() -> int {
        if (tensors < 0) return gs::fail(GS_INVALID_ARGUMENT, "gs_ssgd_table_bytes: tensors = %d < 0", tensors);
        int64_t b = 0;
        if (for_cuda) {
            for (int32_t t = 0; t < tensors; ++t) {
                if (lengths[t] < 0) return gs::fail(GS_INVALID_ARGUMENT, "gs_ssgd_table_bytes: lengths[%d] < 0", t);
                int64_t chunks = (lengths[t] + GS_SSGD_CUDA_CHUNK - 1) / GS_SSGD_CUDA_CHUNK;
                if (chunks > INT32_MAX) {
                    return gs::fail(GS_INVALID_ARGUMENT, "gs_ssgd_table_bytes: lengths[%d] = %lld is too long", t,
                                    (long long)lengths[t]);
                }
                b += chunks;
            }
        }
        *blocks = b;
        *table_bytes = for_cuda ? gs_ssgd_block_table_offset(tensors) + b * int64_t(sizeof(gs_ssgd_block))
                                : int64_t(tensors) * int64_t(sizeof(gs_ssgd_tensor));
        return GS_OK;
    });
}

int gs_ssgd_table_build(int32_t tensors, const int64_t* weights, const int64_t* grads, const int64_t* momentum,
                        const int64_t* lengths, const int32_t* kernel_area, const int32_t* layout,
                        const int64_t* channels, const int32_t* decay, const int32_t* scale_offset,
                        int32_t for_cuda, void* table, int64_t table_bytes) {
    return gs::guarded("gs_ssgd_table_build", [&]() -> int {
        int64_t needed = 0, blocks = 0;
        int status = gs_ssgd_table_bytes(tensors, lengths, for_cuda, &needed, &blocks);
        if (status != GS_OK) return status;
        if (table_bytes < needed) {
            return gs::fail(GS_INVALID_ARGUMENT, "gs_ssgd_table_build: table of %lld bytes, %lld needed",
                            (long long)table_bytes, (long long)needed);
        }
        std::memset(table, 0, size_t(needed));
        auto* out = static_cast<gs_ssgd_tensor*>(table);
        int64_t start = 0;
        for (int32_t t = 0; t < tensors; ++t) {
            gs_ssgd_tensor& d = out[t];
            d.weights = reinterpret_cast<float*>(weights[t]);
            d.grads = reinterpret_cast<const float*>(grads[t]);
            d.momentum = reinterpret_cast<float*>(momentum[t]);
            d.length = lengths[t];
            d.start = start;
            d.kernel_area = kernel_area[t];
            d.layout = layout[t];
            d.channels = layout[t] == GS_SSGD_LAYOUT_HWIO ? channels[t] : 1;
            d.decay = decay[t] != 0;
            d.scale_offset = scale_offset[t];
            if (d.kernel_area < 0 || d.channels <= 0 || d.channels > INT32_MAX) {
                return gs::fail(GS_INVALID_ARGUMENT, "gs_ssgd_table_build: tensor %d: kernel_area %d, channels %lld", t,
                                d.kernel_area, (long long)d.channels);
            }
            // Vector accesses need the three arrays at the same address modulo 16; then every
            // GS_SSGD_CUDA_CHUNK-element chunk is, after `head` scalar elements.
            int64_t mis = weights[t] & 15;
            bool together = (grads[t] & 15) == mis && (momentum[t] == 0 || (momentum[t] & 15) == mis) && mis % 4 == 0;
            d.head = together ? int32_t((16 - mis) % 16 / 4) : -1;
            start += lengths[t];
        }
        if (for_cuda) {
            auto* block = reinterpret_cast<gs_ssgd_block*>(static_cast<char*>(table) + gs_ssgd_block_table_offset(tensors));
            for (int32_t t = 0; t < tensors; ++t) {
                int64_t chunks = (lengths[t] + GS_SSGD_CUDA_CHUNK - 1) / GS_SSGD_CUDA_CHUNK;
                const gs_ssgd_tensor& d = out[t];
                for (int64_t c = 0; c < chunks; ++c) {
                    int64_t begin = c * GS_SSGD_CUDA_CHUNK;
                    gs_ssgd_block b{t, int32_t(c), 0, 0};
                    if (d.kernel_area > 0 && d.layout == GS_SSGD_LAYOUT_HWIO) {
                        b.position_first = uint32_t(begin / d.channels);
                        b.position_base = uint32_t(begin % d.channels);
                    } else if (d.kernel_area > 0) {
                        b.position_base = uint32_t(begin % d.kernel_area);
                    }
                    *block++ = b;
                }
            }
        }
        return GS_OK;
    });
}

int gs_ssgd_step_cpu(const void* table, int32_t tensors, const float* scales, float lr, float momentum,
                     float dampening, float weight_decay, int32_t nesterov, int32_t maximize, float unscale,
                     int32_t first_step) {
    return gs::guarded("gs_ssgd_step_cpu", [&]() -> int {
        if (tensors <= 0) return GS_OK;
        const auto* list = static_cast<const gs_ssgd_tensor*>(table);
        const Hyper h = make_hyper(lr, momentum, dampening, weight_decay, maximize, unscale);
        const int mode = momentum == 0.0f ? NO_MOMENTUM : first_step ? FIRST_STEP : RUNNING;
        const bool nest = nesterov != 0 && mode != NO_MOMENTUM;
        const int64_t total = list[tensors - 1].start + list[tensors - 1].length;
        gs::parallel_for(total, GRAIN, [&](int64_t begin, int64_t end) {
            // First tensor that ends after `begin`.
            int32_t t = int32_t(std::upper_bound(list, list + tensors, begin,
                                                 [](int64_t v, const gs_ssgd_tensor& x) { return v < x.start + x.length; }) -
                                list);
            for (; t < tensors && list[t].start < end; ++t) {
                const gs_ssgd_tensor& x = list[t];
                int64_t lo = std::max(begin, x.start) - x.start;
                int64_t hi = std::min(end, x.start + x.length) - x.start;
                if (lo < hi) pick(x, mode, nest)(x, lo, hi, scales, h);
            }
        });
        return GS_OK;
    });
}

}  // extern "C"
