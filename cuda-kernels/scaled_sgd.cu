// Scaled SGD step on the GPU (SPEC.md section 2): every parameter tensor of a model in one launch.
//
// The table (gs_ssgd_tensor per tensor, then one gs_ssgd_block per GS_SSGD_CUDA_CHUNK elements of each
// tensor) is built once on the host and copied to the device when the optimizer is built; thread block
// b updates the chunk that block-table entry b names. The spatial scales G live in a separate small
// device array, so replacing one is a copy of kh*kw floats. Everything that changes per step
// (learning rate, momentum mode, unscale factor) is a kernel argument.
//
// Memory traffic is the whole cost: 20 bytes per parameter with momentum (read w, g, buf; write w, buf),
// 12 on the first step and without momentum. Each thread moves 16-byte vectors, two of each array in
// flight before the first use; a tensor whose arrays are not mutually 16-byte aligned (a slice at an odd
// offset) takes the scalar path, as do the at most 3 + 3 head and tail elements of each chunk.
#include <cstdint>

#include "../native/cpu/scaled_sgd_update.hpp"
#include "cuda_check.cuh"

namespace gs {
namespace ssgd {
namespace {

constexpr int THREADS = 256;
constexpr int CHUNK = GS_SSGD_CUDA_CHUNK;
static_assert(CHUNK % 4 == 0, "chunks must keep the alignment of their tensor modulo 16 bytes");

// Kernel position of the chunk's local elements j, in 32-bit arithmetic from the chunk's first position
// (precomputed on the host): base + j stays below 2^32 (base < channels <= 2^31 - 1, j < CHUNK).
template <int SCALE>
struct Position;

template <>
struct Position<UNSCALED> {
    __device__ Position(const gs_ssgd_tensor&, const gs_ssgd_block&) {}
};

template <>
struct Position<SCALE_OIHW> {
    uint32_t base, area;
    __device__ Position(const gs_ssgd_tensor& t, const gs_ssgd_block& b)
        : base(b.position_base), area(uint32_t(t.kernel_area)) {}
    __device__ uint32_t at(int j) const { return (base + uint32_t(j)) % area; }
    __device__ uint32_t next(uint32_t p) const { return p + 1 == area ? 0 : p + 1; }
};

template <>
struct Position<SCALE_HWIO> {
    uint32_t first, base, channels;
    __device__ Position(const gs_ssgd_tensor& t, const gs_ssgd_block& b)
        : first(b.position_first), base(b.position_base), channels(uint32_t(t.channels)) {}
};

// The scale of local element j (and, for vectors, of j+1..j+3).
template <int SCALE>
struct Scales;

template <>
struct Scales<UNSCALED> {
    __device__ static float one(const Position<UNSCALED>&, const float*, int, float unscale) { return unscale; }
    __device__ static void four(const Position<UNSCALED>&, const float*, int, float unscale, float s[4]) {
        s[0] = s[1] = s[2] = s[3] = unscale;
    }
};

template <>
struct Scales<SCALE_OIHW> {
    __device__ static float one(const Position<SCALE_OIHW>& p, const float* G, int j, float unscale) {
        return __ldg(G + p.at(j)) * unscale;
    }
    __device__ static void four(const Position<SCALE_OIHW>& p, const float* G, int j, float unscale, float s[4]) {
        uint32_t q = p.at(j);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            s[k] = __ldg(G + q) * unscale;
            q = p.next(q);
        }
    }
};

template <>
struct Scales<SCALE_HWIO> {
    __device__ static float one(const Position<SCALE_HWIO>& p, const float* G, int j, float unscale) {
        return __ldg(G + p.first + (p.base + uint32_t(j)) / p.channels) * unscale;
    }
    __device__ static void four(const Position<SCALE_HWIO>& p, const float* G, int j, float unscale, float s[4]) {
        uint32_t r = p.base + uint32_t(j);
        uint32_t q = p.first + r / p.channels;
        r %= p.channels;
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            s[k] = __ldg(G + q) * unscale;
            if (++r == p.channels) {
                r = 0;
                ++q;
            }
        }
    }
};

template <bool DECAY, int MODE, bool NESTEROV>
__device__ __forceinline__ void update4(float4& w, const float4& g, float4& m, const float s[4], const Hyper& h) {
    w.x = update<DECAY, MODE, NESTEROV>(w.x, g.x, s[0], m.x, h);
    w.y = update<DECAY, MODE, NESTEROV>(w.y, g.y, s[1], m.y, h);
    w.z = update<DECAY, MODE, NESTEROV>(w.z, g.z, s[2], m.z, h);
    w.w = update<DECAY, MODE, NESTEROV>(w.w, g.w, s[3], m.w, h);
}

// The n elements of tensor t from `begin` (one chunk), by the whole thread block.
template <int SCALE, bool DECAY, int MODE, bool NESTEROV>
__device__ __forceinline__ void update_chunk(const gs_ssgd_tensor& t, const gs_ssgd_block& block, int64_t begin, int n,
                                             const float* __restrict__ G, const Hyper& h) {
    float* __restrict__ w = t.weights + begin;
    const float* __restrict__ g = t.grads + begin;
    float* __restrict__ m = MODE == NO_MOMENTUM ? nullptr : t.momentum + begin;
    const Position<SCALE> pos(t, block);

    // The arrays come from the table, so the compiler cannot tell they are global memory: the
    // intrinsics make the accesses global (not generic) and say how each array is cached. The
    // gradient is read once (evict first); weights and momentum pass through L2 only.
    auto scalar = [&](int j) {
        float buf = MODE == RUNNING ? __ldcg(m + j) : 0.0f;
        float s = Scales<SCALE>::one(pos, G, j, h.unscale);
        __stcg(w + j, update<DECAY, MODE, NESTEROV>(__ldcg(w + j), __ldcs(g + j), s, buf, h));
        if (MODE != NO_MOMENTUM) __stcg(m + j, buf);
    };

    const int head = t.head < 0 ? n : min(t.head, n);
    const int vectors = (n - head) / 4;
    for (int j = threadIdx.x; j < head; j += THREADS) scalar(j);

    // w + head, g + head and m + head are 16-byte aligned here (the table builder checked).
    float4* w4 = reinterpret_cast<float4*>(w + head);
    const float4* g4 = reinterpret_cast<const float4*>(g + head);
    float4* m4 = reinterpret_cast<float4*>(m + (MODE == NO_MOMENTUM ? 0 : head));
    int v = threadIdx.x;
    // Two vectors of each array per thread before the first use: more bytes in flight per SM.
    for (; v + THREADS < vectors; v += 2 * THREADS) {
        float4 wa = __ldcg(w4 + v), wb = __ldcg(w4 + v + THREADS);
        float4 ga = __ldcs(g4 + v), gb = __ldcs(g4 + v + THREADS);
        float4 ma = make_float4(0.f, 0.f, 0.f, 0.f), mb = ma;
        if (MODE == RUNNING) {
            ma = __ldcg(m4 + v);
            mb = __ldcg(m4 + v + THREADS);
        }
        float sa[4], sb[4];
        Scales<SCALE>::four(pos, G, head + 4 * v, h.unscale, sa);
        Scales<SCALE>::four(pos, G, head + 4 * (v + THREADS), h.unscale, sb);
        update4<DECAY, MODE, NESTEROV>(wa, ga, ma, sa, h);
        update4<DECAY, MODE, NESTEROV>(wb, gb, mb, sb, h);
        __stcg(w4 + v, wa);
        __stcg(w4 + v + THREADS, wb);
        if (MODE != NO_MOMENTUM) {
            __stcg(m4 + v, ma);
            __stcg(m4 + v + THREADS, mb);
        }
    }
    for (; v < vectors; v += THREADS) {
        float4 wa = __ldcg(w4 + v);
        float4 ga = __ldcs(g4 + v);
        float4 ma = MODE == RUNNING ? __ldcg(m4 + v) : make_float4(0.f, 0.f, 0.f, 0.f);
        float sa[4];
        Scales<SCALE>::four(pos, G, head + 4 * v, h.unscale, sa);
        update4<DECAY, MODE, NESTEROV>(wa, ga, ma, sa, h);
        __stcg(w4 + v, wa);
        if (MODE != NO_MOMENTUM) __stcg(m4 + v, ma);
    }

    for (int j = head + 4 * vectors + threadIdx.x; j < n; j += THREADS) scalar(j);
}

template <int SCALE, int MODE, bool NESTEROV>
__device__ __forceinline__ void update_chunk_decay(const gs_ssgd_tensor& t, const gs_ssgd_block& block, int64_t begin,
                                                   int n, const float* G, const Hyper& h) {
    if (t.decay) {
        update_chunk<SCALE, true, MODE, NESTEROV>(t, block, begin, n, G, h);
    } else {
        update_chunk<SCALE, false, MODE, NESTEROV>(t, block, begin, n, G, h);
    }
}

// One thread block per block-table entry (the loop only matters past the grid-size cap). The tensor's
// scale mapping and decay flag are uniform over the block, so the branches below never diverge.
template <int MODE, bool NESTEROV>
__global__ void __launch_bounds__(THREADS) scaled_sgd_kernel(const gs_ssgd_tensor* __restrict__ tensors,
                                                             const gs_ssgd_block* __restrict__ blocks,
                                                             int64_t block_count, const float* __restrict__ scales,
                                                             Hyper h) {
    for (int64_t b = blockIdx.x; b < block_count; b += gridDim.x) {
        const gs_ssgd_block block = blocks[b];
        const gs_ssgd_tensor t = tensors[block.tensor];
        const int64_t begin = int64_t(block.chunk) * CHUNK;
        const int n = int(min(int64_t(CHUNK), t.length - begin));
        const float* G = scales + t.scale_offset;
        if (t.kernel_area == 0) {
            update_chunk_decay<UNSCALED, MODE, NESTEROV>(t, block, begin, n, G, h);
        } else if (t.layout == GS_SSGD_LAYOUT_HWIO) {
            update_chunk_decay<SCALE_HWIO, MODE, NESTEROV>(t, block, begin, n, G, h);
        } else {
            update_chunk_decay<SCALE_OIHW, MODE, NESTEROV>(t, block, begin, n, G, h);
        }
    }
}

template <int MODE, bool NESTEROV>
int launch(const gs_ssgd_tensor* tensors, const gs_ssgd_block* blocks, int64_t block_count, const float* scales,
           const Hyper& h, cudaStream_t stream) {
    // Far above any model's chunk count (2^24 chunks = 5.5e11 parameters); the kernel loops past it.
    unsigned grid = unsigned(block_count < (int64_t(1) << 24) ? block_count : (int64_t(1) << 24));
    gs::clear_pending_error();
    scaled_sgd_kernel<MODE, NESTEROV><<<grid, THREADS, 0, stream>>>(tensors, blocks, block_count, scales, h);
    GS_CUDA_CHECK_LAUNCH();
    return GS_OK;
}

}  // namespace
}  // namespace ssgd
}  // namespace gs

using namespace gs::ssgd;

extern "C" int gs_ssgd_step_cuda(const void* table, int32_t tensors, int64_t blocks, const float* scales, float lr,
                                 float momentum, float dampening, float weight_decay, int32_t nesterov,
                                 int32_t maximize, float unscale, int32_t first_step, gs_stream stream) {
    return gs::guarded("gs_ssgd_step_cuda", [&]() -> int {
        if (tensors <= 0 || blocks <= 0) return GS_OK;
        const auto* list = static_cast<const gs_ssgd_tensor*>(table);
        const auto* block = reinterpret_cast<const gs_ssgd_block*>(static_cast<const char*>(table) +
                                                                    gs_ssgd_block_table_offset(tensors));
        const Hyper h = make_hyper(lr, momentum, dampening, weight_decay, maximize, unscale);
        const cudaStream_t s = gs::as_stream(stream);
        if (momentum == 0.0f) return launch<NO_MOMENTUM, false>(list, block, blocks, scales, h, s);
        if (first_step) {
            return nesterov ? launch<FIRST_STEP, true>(list, block, blocks, scales, h, s)
                            : launch<FIRST_STEP, false>(list, block, blocks, scales, h, s);
        }
        return nesterov ? launch<RUNNING, true>(list, block, blocks, scales, h, s)
                        : launch<RUNNING, false>(list, block, blocks, scales, h, s);
    });
}
