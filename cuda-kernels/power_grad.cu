// PowerGrad transform fused with softmax cross entropy (gradshape/power_grad.h, SPEC.md section 3).
//
// Memory-bound: the floor is reading the logits once and writing the gradient once (8 bytes per
// element). Each row is read from device memory once and kept on chip while its statistics are
// reduced: the maximum first (exact, so every thread agrees on it), then the sums of e^(z-m) and
// e^(alpha (z-m)) computed against the final maximum, so no exponential is spent on rescaling
// partial sums. The kernel is picked by the number of classes C:
//
//   C <= 32        pg_small_kernel:  a block stages 128 whole rows through shared memory with
//                                    coalesced (16-byte) copies; one thread per row.
//   C <= 1024      pg_rows_kernel<32, V>:   a warp per row, 4V elements per lane in registers.
//   C <= 32768     pg_rows_kernel<G, 8>:    a block of G = 128..1024 threads per row, 32 elements
//                                           per thread in registers.
//   larger         pg_stream_kernel: a block per row; the row is read twice (the second read mostly
//                                    from L2) because it no longer fits on chip.
//
// 16-byte loads and stores when C % 4 == 0 and the pointers are 16-byte aligned (the small kernel
// needs only the alignment: it copies whole tiles). The grid is persistent (as many blocks as fit
// on the device); each block leaves its partial loss and counts in the workspace and the last block
// to finish adds them up in block order, which makes the loss deterministic without a second
// launch. With reduction MEAN over class indices, a small kernel counts the rows first (the
// gradient scale 1/B must be known before the first gradient element is written).
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>

#include "cuda_check.cuh"
#include "device_cache.cuh"

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kCountBlocks = 256;       // at most this many label-count blocks
constexpr int kSmallRows = 128;         // rows per tile (and threads per block) of pg_small_kernel
constexpr int kSmallMaxClasses = 32;
constexpr int kRegisterMaxClasses = 32768;

// Workspace layout: the last-block counter, the error counters, the label counts, one partial per
// block. Everything but the label counts (rewritten by every call that uses them) is zero between
// calls: the last block puts back the zeros it found.
constexpr int64_t kErrorsOffset = 64;
constexpr int64_t kCountOffset = 256;
constexpr int64_t kPartialsOffset = kCountOffset + 4 * kCountBlocks;

struct BlockPartial {
    double loss;
    unsigned long long counted;
};

// Bad labels and non-finite rows are rare, so they go straight to device memory with integer
// atomics instead of occupying registers in every thread. The first such row is kept as ~row under
// atomicMax, so that zero means none.
struct Errors {
    unsigned long long nonfinite, bad, first_nonfinite_key, first_bad_key;
};

enum AlphaMode { kAlphaGeneral = 0, kAlphaOne = 1, kAlphaZero = 2 };

struct Params {
    const float* logits;
    const int32_t* labels;
    const float* targets;
    float* grad;
    float* loss;
    gs_pg_report* report;
    unsigned* done;
    const unsigned* counts;  // label counts per count block; null: B = rows
    BlockPartial* partials;
    Errors* errors;
    long long rows;
    int classes;
    int count_blocks;
    int use_ignore;
    int ignore_index;
    int reduction;
    int stride;  // pg_small_kernel: floats per row in shared memory
    int alpha_mode;
    float alpha_log2e;
    float keep;    // 1 - smoothing
    float spread;  // smoothing / C
    float smoothing;
    float inv_c;  // 1 / C: see index_loss
};

// e^(alpha d) for d = z - m <= 0 given e = e^d, without a second exponential when alpha is 1 or 0.
__device__ __forceinline__ float exp_alpha(const Params& p, float d, float e) {
    if (p.alpha_mode == kAlphaOne) return e;
    if (p.alpha_mode == kAlphaZero) return 1.0f;
    return exp2f(d * p.alpha_log2e);
}

// e^(alpha d) alone.
__device__ __forceinline__ float exp_alpha(const Params& p, float d) {
    if (p.alpha_mode == kAlphaZero) return 1.0f;
    return exp2f(d * (p.alpha_mode == kAlphaOne ? kLog2e : p.alpha_log2e));
}

// 1/B for MEAN (0 when no row counts), else 1. Every warp computes it by itself, no barrier needed.
__device__ float gradient_scale(const Params& p) {
    if (p.reduction != GS_PG_REDUCTION_MEAN) return 1.0f;
    unsigned long long b = (unsigned long long)p.rows;
    if (p.counts != nullptr) {
        unsigned long long sum = 0;
        for (int i = threadIdx.x % 32; i < p.count_blocks; i += 32) sum += p.counts[i];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        b = sum;
    }
    return b > 0 ? 1.0f / float(b) : 0.0f;
}

__device__ __forceinline__ float quiet_nan() { return __int_as_float(0x7fffffff); }

// What every thread carries from row to row: the loss (added by the row's leader, or by every
// thread for probability targets) and the rows counted (leader only).
struct Tally {
    double loss = 0;
    unsigned long long counted = 0;
};

__device__ __forceinline__ void note_bad(const Params& p, Tally& t, long long row) {
    t.loss += quiet_nan();
    atomicAdd(&p.errors->bad, 1ull);
    atomicMax(&p.errors->first_bad_key, ~(unsigned long long)row);
}

__device__ __forceinline__ void note_nonfinite(const Params& p, Tally& t, long long row) {
    t.loss += quiet_nan();
    t.counted += 1;
    atomicAdd(&p.errors->nonfinite, 1ull);
    atomicMax(&p.errors->first_nonfinite_key, ~(unsigned long long)row);
}

__device__ __forceinline__ int64_t first_row(unsigned long long key) { return key == 0 ? -1 : (int64_t)~key; }

// Block-wide sums of the tallies; then the last block to get here adds up all blocks' partials in
// block order (the same order whichever block is last) and writes the report and the reduced loss.
// Called by every thread of the block.
template <int BLOCK>
__device__ void finish(const Params& p, Tally t) {
    constexpr int W = BLOCK / 32;
    __shared__ BlockPartial warp_part[W];
    __shared__ bool last;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    auto block_reduce = [&](Tally& v) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            v.loss += __shfl_xor_sync(0xffffffffu, v.loss, o);
            v.counted += __shfl_xor_sync(0xffffffffu, v.counted, o);
        }
        __syncthreads();  // warp_part may still be read by an earlier call
        if (lane == 0) warp_part[warp] = {v.loss, v.counted};
        __syncthreads();
        Tally w;
        if (lane < W) {
            w.loss = warp_part[lane].loss;
            w.counted = warp_part[lane].counted;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            w.loss += __shfl_xor_sync(0xffffffffu, w.loss, o);
            w.counted += __shfl_xor_sync(0xffffffffu, w.counted, o);
        }
        v = w;
    };

    __threadfence();  // this thread's error atomics are device-wide before the block reports done
    block_reduce(t);
    if (threadIdx.x == 0) {
        p.partials[blockIdx.x] = {t.loss, t.counted};
        __threadfence();  // the partial is visible device-wide before the counter says so
        last = atomicAdd(p.done, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();

    Tally sum;
    for (unsigned b = threadIdx.x; b < gridDim.x; b += BLOCK) {
        // L2 reads (__ldcg): the partials were written by other multiprocessors.
        sum.loss += __ldcg(&p.partials[b].loss);
        sum.counted += __ldcg(&p.partials[b].counted);
    }
    block_reduce(sum);
    if (threadIdx.x == 0) {
        double value = sum.loss;
        if (p.reduction == GS_PG_REDUCTION_MEAN) value = sum.counted > 0 ? sum.loss / double(sum.counted) : 0.0;
        gs_pg_report r;
        r.loss = value;
        r.counted_rows = (int64_t)sum.counted;
        r.nonfinite_rows = (int64_t)__ldcg(&p.errors->nonfinite);
        r.bad_labels = (int64_t)__ldcg(&p.errors->bad);
        r.first_nonfinite_row = first_row(__ldcg(&p.errors->first_nonfinite_key));
        r.first_bad_label_row = first_row(__ldcg(&p.errors->first_bad_key));
        r.reserved[0] = 0;
        r.reserved[1] = 0;
        *p.report = r;
        if (p.loss != nullptr && p.reduction != GS_PG_REDUCTION_NONE) p.loss[0] = float(value);
        // Every other block has counted itself in: leave the zeros for the next call.
        *p.errors = {0, 0, 0, 0};
        *p.done = 0;
    }
}

// ---- label count (MEAN with class indices) ---------------------------------------------------

__global__ void __launch_bounds__(256) pg_count_kernel(const int32_t* labels, long long rows, int classes,
                                                       int use_ignore, int ignore_index, unsigned* counts) {
    unsigned n = 0;
    for (long long r = (long long)blockIdx.x * 256 + threadIdx.x; r < rows; r += (long long)gridDim.x * 256) {
        const int y = labels[r];
        n += !(use_ignore && y == ignore_index) && y >= 0 && y < classes;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) n += __shfl_xor_sync(0xffffffffu, n, o);
    __shared__ unsigned warp_n[8];
    if (threadIdx.x % 32 == 0) warp_n[threadIdx.x / 32] = n;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned total = 0;
        for (int w = 0; w < 8; ++w) total += warp_n[w];
        counts[blockIdx.x] = total;
    }
}

// ---- reductions over the threads of one row ---------------------------------------------------
// G <= 32: a warp (xor shuffles leave the same value in every lane: each step adds the same two
// numbers in both lanes). G > 32: warps, then every warp reduces the warps' values itself, so one
// barrier per reduction suffices; each kind of reduction has its own shared array, and the barriers
// of the other kinds in between keep a row's writes from racing the previous row's reads.

template <int G>
__device__ __forceinline__ float row_max(float v, float* shared) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if constexpr (G > 32) {
        const int lane = threadIdx.x % 32;
        if (lane == 0) shared[threadIdx.x / 32] = v;
        __syncthreads();
        v = lane < G / 32 ? shared[lane] : -INFINITY;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    }
    return v;
}

template <int G>
__device__ __forceinline__ float4 row_sum(float4 v, float4* shared) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v.x += __shfl_xor_sync(0xffffffffu, v.x, o);
        v.y += __shfl_xor_sync(0xffffffffu, v.y, o);
        v.z += __shfl_xor_sync(0xffffffffu, v.z, o);
        v.w += __shfl_xor_sync(0xffffffffu, v.w, o);
    }
    if constexpr (G > 32) {
        const int lane = threadIdx.x % 32;
        if (lane == 0) shared[threadIdx.x / 32] = v;
        __syncthreads();
        v = lane < G / 32 ? shared[lane] : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            v.x += __shfl_xor_sync(0xffffffffu, v.x, o);
            v.y += __shfl_xor_sync(0xffffffffu, v.y, o);
            v.z += __shfl_xor_sync(0xffffffffu, v.z, o);
            v.w += __shfl_xor_sync(0xffffffffu, v.w, o);
        }
    }
    return v;
}

template <int G>
__device__ __forceinline__ float row_sum1(float v, float* shared) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if constexpr (G > 32) {
        const int lane = threadIdx.x % 32;
        if (lane == 0) shared[threadIdx.x / 32] = v;
        __syncthreads();
        v = lane < G / 32 ? shared[lane] : 0.0f;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

template <int G>
__device__ __forceinline__ double row_sum_d(double v, double* shared) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if constexpr (G > 32) {
        const int lane = threadIdx.x % 32;
        if (lane == 0) shared[threadIdx.x / 32] = v;
        __syncthreads();
        v = lane < G / 32 ? shared[lane] : 0.0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

// Writes value over a whole row (ignored rows: 0; bad or non-finite rows: NaN).
template <int G, bool VEC>
__device__ __forceinline__ void fill_row(float* g, long long classes, int lane, float value) {
    if (VEC) {
        const float4 v = make_float4(value, value, value, value);
        for (long long i = lane; i < classes / 4; i += G) reinterpret_cast<float4*>(g)[i] = v;
    } else {
        for (long long i = lane; i < classes; i += G) g[i] = value;
    }
}

// The one non-finite rule (as the CPU's): a row is non-finite iff one of its logits (or of its
// probability targets) is NaN or +-inf. Finite rows of any magnitude stay finite, without float64
// registers in the hot loops (they spilled): where z - m overflows float (logits like {3e38, -3e38})
// its halves do not, so the row statistic is the half gap h = sum (m/2 - z/2) / C: terms in
// [0, FLT_MAX / C], no cancellation (an all-1e38 row gives exactly 0), finite iff every logit is.
// The probability targets' sum q (z - m) is kept as sum q (z/2 - m/2), finite for probability rows.
// The row loss is then formed in float64.

// Per row, after the reductions: the loss of one row for class-index targets.
__device__ __forceinline__ double index_loss(const Params& p, float lse, float m, float zy, float half_gap) {
    // -sum q log p = lse + keep (m - z_y) + smoothing mean(m - z)
    return double(lse) + double(p.keep) * (double(m) - double(zy)) + double(p.smoothing) * 2.0 * double(half_gap);
}

// A term of the half gap (see above).
__device__ __forceinline__ float half_gap_term(const Params& p, float m, float z) { return (0.5f * m - 0.5f * z) * p.inv_c; }

// Per row, once its gradient is written: the row's loss into the tally (and into p.loss for NONE).
// Probability targets: every thread holds its share lse * qsum - 2 qh of -sum q log p (qh = sum
// q (z/2 - m/2)); class indices:
// the leader has what index_loss needs. Called by all G threads of the row (row_sum1 synchronises).
template <int G, bool PROBS>
__device__ __forceinline__ void account_row(const Params& p, Tally& tally, long long row, bool leader, float lse,
                                            float qsum, float qh, float m, float zy, float sz, double* red_loss) {
    if (leader) tally.counted += 1;
    if (PROBS) {
        const double part = double(lse) * double(qsum) - 2.0 * double(qh);
        if (p.reduction == GS_PG_REDUCTION_NONE) {
            const double row_loss = row_sum_d<G>(part, red_loss);
            if (leader) {
                tally.loss += row_loss;
                if (p.loss) p.loss[row] = float(row_loss);
            }
        } else {
            tally.loss += part;
        }
    } else if (leader) {
        const double row_loss = index_loss(p, lse, m, zy, sz);
        tally.loss += row_loss;
        if (p.reduction == GS_PG_REDUCTION_NONE && p.loss) p.loss[row] = float(row_loss);
    }
}

// Probability targets: whether any target of the row is NaN or +-inf (qsum, this thread's sum of q,
// is finite for probability rows). Called by all G threads of the row.
template <int G>
__device__ __forceinline__ bool targets_nonfinite(float qsum, float* red_flag) {
    return row_sum1<G>(isfinite(qsum) ? 0.0f : 1.0f, red_flag) != 0.0f;
}

// ---- C <= 1024 (warp per row) and C <= 32768 (block per row): the row in registers ------------
// Thread `lane` of the row's G threads owns the 4V slots k = 4v + j. VEC: float4 number lane + v G,
// i.e. element 4 (lane + v G) + j; otherwise element k G + lane. Both are coalesced, and in both the
// valid slots are a prefix k < valid, so that a slot's test is one compare against a constant.

template <int G, bool VEC>
__device__ __forceinline__ int valid_slots(int C, int lane) {
    if (VEC) {
        const int n4 = C / 4 - lane;  // float4 of the row at lane, lane + G, ...
        return n4 > 0 ? 4 * ((n4 + G - 1) / G) : 0;
    }
    const int n = C - lane;
    return n > 0 ? (n + G - 1) / G : 0;
}

// The slot of element y in this thread, or -1.
template <int G, bool VEC>
__device__ __forceinline__ int slot_of(int y, int lane) {
    if (VEC) {
        const int y4 = y / 4;
        return y4 % G == lane ? 4 * (y4 / G) + y % 4 : -1;
    }
    return y % G == lane ? y / G : -1;
}

// At most 64 registers (1024 threads per multiprocessor): 8 float4 of row per thread stay in flight.
template <int G, int V, bool VEC, bool PROBS>
__global__ void __launch_bounds__(G == 32 ? 256 : G, 1024 / (G == 32 ? 256 : G)) pg_rows_kernel(Params p) {
    constexpr int BLOCK = G == 32 ? 256 : G;
    constexpr int ROWS = BLOCK / G;  // rows a block works on at once
    constexpr int W = G / 32;
    __shared__ float red_max[W];
    __shared__ float4 red_sum[W];
    __shared__ double red_loss[W];
    __shared__ float red_flag[W];

    const int C = p.classes;
    const int lane = threadIdx.x % G;
    const bool leader = lane == 0;
    const int valid = valid_slots<G, VEC>(C, lane);
    const float scale = gradient_scale(p);
    const float nan = quiet_nan();
    Tally tally;

    for (long long row = (long long)blockIdx.x * ROWS + threadIdx.x / G; row < p.rows;
         row += (long long)gridDim.x * ROWS) {
        const long long base = row * C;
        float* g = p.grad + base;
        int ky = -1;  // the slot holding z[y] in this thread
        if (!PROBS) {
            const int y = p.labels[row];
            if (p.use_ignore && y == p.ignore_index) {
                fill_row<G, VEC>(g, C, lane, 0.0f);
                if (leader && p.reduction == GS_PG_REDUCTION_NONE && p.loss) p.loss[row] = 0.0f;
                continue;
            }
            if (y < 0 || y >= C) {
                fill_row<G, VEC>(g, C, lane, nan);
                if (leader) {
                    note_bad(p, tally, row);
                    if (p.reduction == GS_PG_REDUCTION_NONE && p.loss) p.loss[row] = nan;
                }
                continue;
            }
            ky = slot_of<G, VEC>(y, lane);
        }

        // All loads are issued before the first use (and before any store: in place, g is src).
        float z[4 * V];
        const float* src = p.logits + base;
#pragma unroll
        for (int v = 0; v < V; ++v) {
            if (VEC) {
                float4 t = make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
                if (4 * v < valid) t = reinterpret_cast<const float4*>(src)[lane + v * G];
                z[4 * v] = t.x;
                z[4 * v + 1] = t.y;
                z[4 * v + 2] = t.z;
                z[4 * v + 3] = t.w;
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j) z[4 * v + j] = 4 * v + j < valid ? src[(4 * v + j) * G + lane] : -INFINITY;
            }
        }

        float m = -INFINITY;
        float zy = 0.0f;  // z[y] in the thread that holds it, 0 elsewhere: the row sum is z[y]
#pragma unroll
        for (int k = 0; k < 4 * V; ++k) {
            m = fmaxf(m, z[k]);  // padding is -inf; NaN is skipped here and caught by the sums
            if (!PROBS && k == ky) zy = z[k];
        }
        m = row_max<G>(m, red_max);

        float s = 0.0f, sa = 0.0f, sz = 0.0f;  // sz: the half gap, see index_loss
#pragma unroll
        for (int k = 0; k < 4 * V; ++k) {
            if (k < valid) {
                const float d = z[k] - m;
                const float e = exp2f(d * kLog2e);
                const float ea = exp_alpha(p, d, e);
                s += e;
                sa += ea;
                sz += half_gap_term(p, m, z[k]);
                if (!PROBS) z[k] = ea;  // class indices need only e^(alpha d) from here on
            }
        }
        const float4 sums = row_sum<G>(make_float4(s, sa, sz, zy), red_sum);
        s = sums.x;
        sa = sums.y;
        sz = sums.z;
        zy = sums.w;

        if (!(isfinite(s) && isfinite(sz))) {  // NaN or +-inf among the logits (uniform over the row)
            fill_row<G, VEC>(g, C, lane, nan);
            if (leader) {
                note_nonfinite(p, tally, row);
                if (p.reduction == GS_PG_REDUCTION_NONE && p.loss) p.loss[row] = nan;
            }
            continue;
        }
        const float lse = logf(s);
        const float inv = scale / sa;
        const float base_q = scale * p.spread;
        float qsum = 0.0f, qd = 0.0f;  // probability targets: sum q, sum q (z/2 - m/2) over this thread
#pragma unroll
        for (int v = 0; v < V; ++v) {
            float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            if (PROBS) {
                const float* tsrc = p.targets + base;
                if (VEC) {
                    if (4 * v < valid) {
                        const float4 t4 = __ldg(reinterpret_cast<const float4*>(tsrc) + lane + v * G);
                        t[0] = t4.x;
                        t[1] = t4.y;
                        t[2] = t4.z;
                        t[3] = t4.w;
                    }
                } else {
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        if (4 * v + j < valid) t[j] = __ldg(tsrc + (4 * v + j) * G + lane);
                    }
                }
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int k = 4 * v + j;
                if (PROBS) {
                    const float q = p.keep * t[j] + p.spread;
                    const float d = z[k] - m;
                    if (k < valid) {
                        qsum += q;
                        qd += q * (0.5f * z[k] - 0.5f * m);
                    }
                    z[k] = exp_alpha(p, d) * inv - scale * q;
                } else {
                    z[k] = z[k] * inv - base_q - (k == ky ? scale * p.keep : 0.0f);
                }
            }
            if (VEC) {
                if (4 * v < valid) reinterpret_cast<float4*>(g)[lane + v * G] = make_float4(z[4 * v], z[4 * v + 1], z[4 * v + 2], z[4 * v + 3]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    if (4 * v + j < valid) g[(4 * v + j) * G + lane] = z[4 * v + j];
                }
            }
        }

        if (PROBS && targets_nonfinite<G>(qsum, red_flag)) {
            fill_row<G, VEC>(g, C, lane, nan);
            if (leader) {
                note_nonfinite(p, tally, row);
                if (p.reduction == GS_PG_REDUCTION_NONE && p.loss) p.loss[row] = nan;
            }
            continue;
        }
        account_row<G, PROBS>(p, tally, row, leader, lse, qsum, qd, m, zy, sz, red_loss);
    }
    finish<BLOCK>(p, tally);
}

// ---- C > 32768 (8192 for probability targets): block per row, the row streamed twice --------
// Steps of U float4 (VEC) or scalar quads per thread: element (in the row) of slot (u, j) in the
// step starting at `start`: VEC 4 (start / 4 + lane + u G) + j, else start + (4u + j) G + lane.
// Unsigned: C < 2^31, so start + a step stays below 2^32.

constexpr int kStreamThreads = 1024;

template <bool VEC>
__device__ __forceinline__ unsigned stream_index(unsigned start, int lane, int u, int j) {
    return VEC ? 4 * (start / 4 + lane + u * kStreamThreads) + j : start + (4 * u + j) * kStreamThreads + lane;
}

// Loads one step of the row; -inf past its end.
template <bool VEC, int U>
__device__ __forceinline__ void stream_load(float (&x)[4 * U], const float* src, unsigned start, unsigned C, int lane) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
        if (VEC) {
            const unsigned i4 = start / 4 + lane + u * kStreamThreads;
            float4 t = make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
            if (i4 < C / 4) t = reinterpret_cast<const float4*>(src)[i4];
            x[4 * u] = t.x;
            x[4 * u + 1] = t.y;
            x[4 * u + 2] = t.z;
            x[4 * u + 3] = t.w;
        } else {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const unsigned i = stream_index<false>(start, lane, u, j);
                x[4 * u + j] = i < C ? src[i] : -INFINITY;
            }
        }
    }
}

template <bool VEC, bool PROBS>
__global__ void __launch_bounds__(kStreamThreads, 1) pg_stream_kernel(Params p) {
    constexpr int G = kStreamThreads;
    constexpr int U = VEC && !PROBS ? 4 : 2;  // float4 / quads in flight per thread: what 64 registers hold
    constexpr unsigned kStep = 4 * U * G;
    __shared__ float red_max[G / 32];
    __shared__ float4 red_sum[G / 32];
    __shared__ double red_loss[G / 32];
    __shared__ float red_flag[G / 32];
    __shared__ float red_gap[G / 32];
    const unsigned C = (unsigned)p.classes;
    const int lane = threadIdx.x;
    const bool leader = lane == 0;
    const float scale = gradient_scale(p);
    const float nan = quiet_nan();
    Tally tally;

    for (long long row = blockIdx.x; row < p.rows; row += gridDim.x) {
        const long long base = row * (long long)C;
        const float* src = p.logits + base;
        float* g = p.grad + base;
        unsigned y = 0xffffffffu;  // no element has this index (C < 2^31)
        if (!PROBS) {
            const int label = p.labels[row];
            if (p.use_ignore && label == p.ignore_index) {
                fill_row<G, VEC>(g, C, lane, 0.0f);
                if (leader && p.reduction == GS_PG_REDUCTION_NONE && p.loss) p.loss[row] = 0.0f;
                continue;
            }
            if (label < 0 || label >= (int)C) {
                fill_row<G, VEC>(g, C, lane, nan);
                if (leader) {
                    note_bad(p, tally, row);
                    if (p.reduction == GS_PG_REDUCTION_NONE && p.loss) p.loss[row] = nan;
                }
                continue;
            }
            y = (unsigned)label;
        }

        // Pass 1: this thread's maximum, sum e^(z - m) and sum e^(alpha (z - m)) (rescaled when its
        // maximum grows), sum z, z[y].
        // sz: sum z * 0 in pass 1 (NaN iff a logit is NaN or +-inf), the half gap in pass 2.
        float m = -INFINITY, s = 0.0f, sa = 0.0f, sz = 0.0f, zy = 0.0f;
        for (unsigned start = 0; start < C; start += kStep) {
            float x[4 * U];
            stream_load<VEC, U>(x, src, start, C, lane);
            float cm = m;
#pragma unroll
            for (int k = 0; k < 4 * U; ++k) cm = fmaxf(cm, x[k]);
            if (cm > m) {  // m = -inf at first: the factor is 0 and s, sa are 0 anyway
                const float d = m - cm;
                const float f = exp2f(d * kLog2e);
                sa *= exp_alpha(p, d, f);
                s *= f;
                m = cm;
            }
#pragma unroll
            for (int k = 0; k < 4 * U; ++k) {
                const unsigned i = stream_index<VEC>(start, lane, k / 4, k % 4);
                if (i < C) {
                    const float d = x[k] - m;
                    const float e = exp2f(d * kLog2e);
                    s += e;
                    sa += exp_alpha(p, d, e);
                    sz += x[k] * 0.0f;
                    if (!PROBS && i == y) zy = x[k];
                }
            }
        }
        const float mt = m;
        m = row_max<G>(m, red_max);
        // This thread's sums against the row maximum (a thread that saw only -inf has 0 or NaN).
        {
            const float d = mt - m;
            const float f = mt == -INFINITY ? 0.0f : exp2f(d * kLog2e);
            s *= f;
            sa *= mt == -INFINITY ? 0.0f : exp_alpha(p, d, f);
        }
        const float4 sums = row_sum<G>(make_float4(s, sa, sz, zy), red_sum);
        s = sums.x;
        sa = sums.y;
        sz = sums.z;
        zy = sums.w;
        if (!(isfinite(s) && isfinite(sz))) {
            fill_row<G, VEC>(g, C, lane, nan);
            if (leader) {
                note_nonfinite(p, tally, row);
                if (p.reduction == GS_PG_REDUCTION_NONE && p.loss) p.loss[row] = nan;
            }
            continue;
        }
        const float lse = logf(s);
        const float inv = scale / sa;
        float qsum = 0.0f, qd = 0.0f;
        sz = 0.0f;

        // Pass 2: read again (each element by the thread that writes it: safe in place), write.
        for (unsigned start = 0; start < C; start += kStep) {
            float x[4 * U];
            stream_load<VEC, U>(x, src, start, C, lane);
            float t[4 * U];
            if (PROBS) stream_load<VEC, U>(t, p.targets + base, start, C, lane);
#pragma unroll
            for (int k = 0; k < 4 * U; ++k) {
                const unsigned i = stream_index<VEC>(start, lane, k / 4, k % 4);
                const float d = x[k] - m;
                const float q = PROBS ? p.keep * t[k] + p.spread : p.spread + (i == y ? p.keep : 0.0f);
                if (PROBS && i < C) {
                    qsum += q;
                    qd += q * (0.5f * x[k] - 0.5f * m);
                }
                if (!PROBS && i < C) sz += half_gap_term(p, m, x[k]);
                x[k] = exp_alpha(p, d) * inv - scale * q;
            }
#pragma unroll
            for (int u = 0; u < U; ++u) {
                if (VEC) {
                    const unsigned i4 = start / 4 + lane + u * G;
                    if (i4 < C / 4) reinterpret_cast<float4*>(g)[i4] = make_float4(x[4 * u], x[4 * u + 1], x[4 * u + 2], x[4 * u + 3]);
                } else {
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        const unsigned i = stream_index<false>(start, lane, u, j);
                        if (i < C) g[i] = x[4 * u + j];
                    }
                }
            }
        }

        if (PROBS && targets_nonfinite<G>(qsum, red_flag)) {
            fill_row<G, VEC>(g, C, lane, nan);
            if (leader) {
                note_nonfinite(p, tally, row);
                if (p.reduction == GS_PG_REDUCTION_NONE && p.loss) p.loss[row] = nan;
            }
            continue;
        }
        if (!PROBS) sz = row_sum1<G>(sz, red_gap);
        account_row<G, PROBS>(p, tally, row, leader, lse, qsum, qd, m, zy, sz, red_loss);
    }
    finish<G>(p, tally);
}

// ---- C <= 32: one thread per row, rows staged through shared memory ---------------------------
// The tile of 128 rows is contiguous in memory, so it is copied with 16-byte accesses whatever C is.
// In shared memory a row takes `stride` = C, or C + 1 for even C >= 4 so that the threads' rows
// start in different banks. Element e of the tile sits at e + (e / C) (stride - C).

template <bool VEC>
__device__ __forceinline__ void tile_load(float* sm, const float* src, int n, int C, int pad, float inv_c) {
    const int n4 = VEC ? n / 4 : 0;
#pragma unroll 4
    for (int i = threadIdx.x; i < n4; i += kSmallRows) {
        const float4 v = reinterpret_cast<const float4*>(src)[i];
        const float vv[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int e = 4 * i + j;
            sm[e + pad * int((float(e) + 0.5f) * inv_c)] = vv[j];
        }
    }
    for (int e = 4 * n4 + threadIdx.x; e < n; e += kSmallRows) sm[e + pad * int((float(e) + 0.5f) * inv_c)] = src[e];
}

template <bool VEC>
__device__ __forceinline__ void tile_store(float* dst, const float* sm, int n, int C, int pad, float inv_c) {
    const int n4 = VEC ? n / 4 : 0;
#pragma unroll 4
    for (int i = threadIdx.x; i < n4; i += kSmallRows) {
        float vv[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int e = 4 * i + j;
            vv[j] = sm[e + pad * int((float(e) + 0.5f) * inv_c)];
        }
        reinterpret_cast<float4*>(dst)[i] = make_float4(vv[0], vv[1], vv[2], vv[3]);
    }
    for (int e = 4 * n4 + threadIdx.x; e < n; e += kSmallRows) dst[e] = sm[e + pad * int((float(e) + 0.5f) * inv_c)];
}

template <bool VEC, bool PROBS>
__global__ void __launch_bounds__(kSmallRows, 1024 / kSmallRows) pg_small_kernel(Params p) {
    const int stride = p.stride;
    extern __shared__ float tile[];  // [kSmallRows][stride] logits, then gradient; targets after
    float* ttile = tile + kSmallRows * stride;
    const int C = p.classes;
    const int pad = stride - C;
    const float inv_c = 1.0f / float(C);  // exact enough for e / C with e < 128 * 33
    const float scale = gradient_scale(p);
    const float nan = quiet_nan();
    Tally tally;

    for (long long row0 = (long long)blockIdx.x * kSmallRows; row0 < p.rows; row0 += (long long)gridDim.x * kSmallRows) {
        const int nrows = (int)min((long long)kSmallRows, p.rows - row0);
        const int n = nrows * C;
        __syncthreads();  // the previous tile has been stored
        tile_load<VEC>(tile, p.logits + row0 * C, n, C, pad, inv_c);
        if (PROBS) tile_load<VEC>(ttile, p.targets + row0 * C, n, C, pad, inv_c);
        __syncthreads();

        if ((int)threadIdx.x < nrows) {
            const long long row = row0 + threadIdx.x;
            float* z = tile + threadIdx.x * stride;
            const float* t = ttile + threadIdx.x * stride;
            const bool none = p.reduction == GS_PG_REDUCTION_NONE && p.loss;
            int y = -1;
            bool skip = false;
            if (!PROBS) {
                y = p.labels[row];
                if (p.use_ignore && y == p.ignore_index) {
                    for (int i = 0; i < C; ++i) z[i] = 0.0f;
                    if (none) p.loss[row] = 0.0f;
                    skip = true;
                } else if (y < 0 || y >= C) {
                    for (int i = 0; i < C; ++i) z[i] = nan;
                    note_bad(p, tally, row);
                    if (none) p.loss[row] = nan;
                    skip = true;
                }
            }
            if (!skip) {
                float m = -INFINITY;
                for (int i = 0; i < C; ++i) m = fmaxf(m, z[i]);
                const float zy = PROBS ? 0.0f : z[y];
                float s = 0.0f, sa = 0.0f;
                float sz = 0.0f;  // the half gap: see index_loss
                for (int i = 0; i < C; ++i) {
                    const float d = z[i] - m;
                    const float e = exp2f(d * kLog2e);
                    s += e;
                    sa += exp_alpha(p, d, e);
                    sz += half_gap_term(p, m, z[i]);
                }
                double row_loss = nan;
                if (!(isfinite(s) && isfinite(sz))) {
                    for (int i = 0; i < C; ++i) z[i] = nan;
                    note_nonfinite(p, tally, row);
                } else {
                    const float lse = logf(s);
                    const float inv = scale / sa;
                    float qsum = 0.0f, qd = 0.0f;
                    for (int i = 0; i < C; ++i) {
                        const float d = z[i] - m;
                        const float q = PROBS ? p.keep * t[i] + p.spread : p.spread + (i == y ? p.keep : 0.0f);
                        qsum += q;
                        qd += q * (0.5f * z[i] - 0.5f * m);
                        z[i] = exp_alpha(p, d) * inv - scale * q;
                    }
                    if (PROBS && !isfinite(qsum)) {  // a NaN or +-inf target: the row is non-finite
                        for (int i = 0; i < C; ++i) z[i] = nan;
                        note_nonfinite(p, tally, row);
                    } else {
                        row_loss = PROBS ? double(lse) * double(qsum) - 2.0 * double(qd) : index_loss(p, lse, m, zy, sz);
                        tally.loss += row_loss;
                        tally.counted += 1;
                    }
                }
                if (none) p.loss[row] = float(row_loss);
            }
        }
        __syncthreads();
        tile_store<VEC>(p.grad + row0 * C, tile, n, C, pad, inv_c);
    }
    finish<kSmallRows>(p, tally);
}

// ---- launch ------------------------------------------------------------------------------------

int device_blocks_per_sm_limit(int* sms, int* max_blocks_per_sm) {
    if (int s = gs::cached_device_attribute(cudaDevAttrMultiProcessorCount, sms)) return s;
    return gs::cached_device_attribute(cudaDevAttrMaxBlocksPerMultiprocessor, max_blocks_per_sm);
}

// Persistent grid: as many blocks as are resident at once, but no more than there is work for.
int launch(void (*kernel)(Params), int threads, size_t shared_bytes, long long work_blocks, const Params& p,
           int64_t workspace_bytes, cudaStream_t stream) {
    int sms = 0, limit = 0;
    if (int s = device_blocks_per_sm_limit(&sms, &limit)) return s;
    int per_sm = 0;
    const int st = gs::cached_on_device(reinterpret_cast<const void*>(kernel), threads, (long long)shared_bytes, &per_sm,
                                        [&](int, int* v) -> int {
                                            GS_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(v, kernel, threads,
                                                                                                       shared_bytes));
                                            return GS_OK;
                                        });
    if (st) return st;
    if (per_sm < 1) per_sm = 1;
    long long blocks = (long long)sms * per_sm;
    if (work_blocks < blocks) blocks = work_blocks < 1 ? 1 : work_blocks;
    if (kPartialsOffset + (int64_t)sizeof(BlockPartial) * blocks > workspace_bytes) {
        return gs::fail(GS_INVALID_ARGUMENT, "gs_pg_cuda: workspace of %lld bytes is too small for %lld blocks",
                        (long long)workspace_bytes, blocks);
    }
    gs::clear_pending_error();
    kernel<<<unsigned(blocks), threads, shared_bytes, stream>>>(p);
    GS_CUDA_CHECK_LAUNCH();
    return GS_OK;
}

// Probability targets need registers for them too: half the row per thread, twice the threads.
template <bool VEC>
int launch_probs(const Params& p, int64_t workspace_bytes, cudaStream_t stream) {
    const int C = p.classes;
    const long long rows = p.rows;
    if (C <= 128) return launch(pg_rows_kernel<32, 1, VEC, true>, 256, 0, (rows + 7) / 8, p, workspace_bytes, stream);
    if (C <= 256) return launch(pg_rows_kernel<32, 2, VEC, true>, 256, 0, (rows + 7) / 8, p, workspace_bytes, stream);
    if (C <= 512) return launch(pg_rows_kernel<32, 4, VEC, true>, 256, 0, (rows + 7) / 8, p, workspace_bytes, stream);
    if (C <= 1024) return launch(pg_rows_kernel<64, 4, VEC, true>, 64, 0, rows, p, workspace_bytes, stream);
    if (C <= 2048) return launch(pg_rows_kernel<128, 4, VEC, true>, 128, 0, rows, p, workspace_bytes, stream);
    if (C <= 4096) return launch(pg_rows_kernel<256, 4, VEC, true>, 256, 0, rows, p, workspace_bytes, stream);
    if (C <= 8192) return launch(pg_rows_kernel<512, 4, VEC, true>, 512, 0, rows, p, workspace_bytes, stream);
    return launch(pg_stream_kernel<VEC, true>, kStreamThreads, 0, rows, p, workspace_bytes, stream);
}

template <bool VEC>
int launch_labels(const Params& p, int64_t workspace_bytes, cudaStream_t stream) {
    const int C = p.classes;
    const long long rows = p.rows;
    if (C <= 128) return launch(pg_rows_kernel<32, 1, VEC, false>, 256, 0, (rows + 7) / 8, p, workspace_bytes, stream);
    if (C <= 256) return launch(pg_rows_kernel<32, 2, VEC, false>, 256, 0, (rows + 7) / 8, p, workspace_bytes, stream);
    if (C <= 512) return launch(pg_rows_kernel<32, 4, VEC, false>, 256, 0, (rows + 7) / 8, p, workspace_bytes, stream);
    if (C <= 1024) return launch(pg_rows_kernel<32, 8, VEC, false>, 256, 0, (rows + 7) / 8, p, workspace_bytes, stream);
    if (C <= 4096) return launch(pg_rows_kernel<128, 8, VEC, false>, 128, 0, rows, p, workspace_bytes, stream);
    if (C <= 8192) return launch(pg_rows_kernel<256, 8, VEC, false>, 256, 0, rows, p, workspace_bytes, stream);
    if (C <= 16384) return launch(pg_rows_kernel<512, 8, VEC, false>, 512, 0, rows, p, workspace_bytes, stream);
    if (C <= kRegisterMaxClasses) return launch(pg_rows_kernel<1024, 8, VEC, false>, 1024, 0, rows, p, workspace_bytes, stream);
    return launch(pg_stream_kernel<VEC, false>, kStreamThreads, 0, rows, p, workspace_bytes, stream);
}

bool aligned16(const void* ptr) { return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace

extern "C" {

int gs_pg_workspace_cuda(int64_t* workspace_bytes) {
    *workspace_bytes = 0;
    int sms = 0, limit = 0;
    if (int s = device_blocks_per_sm_limit(&sms, &limit)) return s;
    *workspace_bytes = kPartialsOffset + (int64_t)sizeof(BlockPartial) * sms * limit;
    return GS_OK;
}

int gs_pg_cuda(const float* logits, int32_t rows, int32_t classes, const int32_t* labels, const float* targets,
               int32_t use_ignore, int32_t ignore_index, float alpha, float smoothing, int32_t reduction, float* grad,
               float* loss, gs_pg_report* report, void* workspace, int64_t workspace_bytes, gs_stream stream) {
    if (rows < 0 || classes < 1 || (labels == nullptr) == (targets == nullptr) || logits == nullptr || grad == nullptr ||
        report == nullptr || workspace == nullptr || !(alpha >= 0.0f) || !std::isfinite(alpha) ||
        !(smoothing >= 0.0f && smoothing <= 1.0f) || reduction < GS_PG_REDUCTION_MEAN || reduction > GS_PG_REDUCTION_NONE ||
        reinterpret_cast<uintptr_t>(workspace) % 16 != 0) {
        return gs::fail(GS_INVALID_ARGUMENT,
                        "gs_pg_cuda: invalid arguments (rows %d, classes %d, alpha %g, smoothing %g, reduction %d)", rows,
                        classes, double(alpha), double(smoothing), reduction);
    }
    cudaStream_t s = gs::as_stream(stream);
    char* ws = static_cast<char*>(workspace);
    Params p{};
    p.logits = logits;
    p.labels = labels;
    p.targets = targets;
    p.grad = grad;
    p.loss = loss;
    p.report = report;
    p.done = reinterpret_cast<unsigned*>(ws);
    p.partials = reinterpret_cast<BlockPartial*>(ws + kPartialsOffset);
    p.errors = reinterpret_cast<Errors*>(ws + kErrorsOffset);
    p.rows = rows;
    p.classes = classes;
    p.use_ignore = use_ignore != 0;
    p.ignore_index = ignore_index;
    p.reduction = reduction;
    p.alpha_mode = alpha == 1.0f ? kAlphaOne : alpha == 0.0f ? kAlphaZero : kAlphaGeneral;
    // alpha up to FLT_MAX is legal, but alpha * log2(e) overflows above 2.4e38: 0 * inf would make
    // e^(alpha * 0) NaN. Clamped, d = 0 still gives 1 and any d < 0 of note still gives 0.
    p.alpha_log2e = fminf(alpha * kLog2e, FLT_MAX);
    p.keep = 1.0f - smoothing;
    p.spread = smoothing / float(classes);
    p.smoothing = smoothing;
    p.inv_c = 1.0f / float(classes);

    // Without an ignore index B is still not rows: labels in device memory may be out of range, and
    // those rows do not count either.
    if (reduction == GS_PG_REDUCTION_MEAN && labels != nullptr) {
        unsigned* counts = reinterpret_cast<unsigned*>(ws + kCountOffset);
        const long long want = ((long long)rows + 1023) / 1024;
        p.count_blocks = int(want < 1 ? 1 : want > kCountBlocks ? kCountBlocks : want);
        p.counts = counts;
        gs::clear_pending_error();
        pg_count_kernel<<<p.count_blocks, 256, 0, s>>>(labels, rows, classes, p.use_ignore, ignore_index, counts);
        GS_CUDA_CHECK_LAUNCH();
    }

    const bool probs = targets != nullptr;
    if (classes <= kSmallMaxClasses) {
        p.stride = classes >= 4 && classes % 2 == 0 ? classes + 1 : classes;
        const size_t shared = size_t(kSmallRows) * p.stride * sizeof(float) * (probs ? 2 : 1);
        const bool vec = aligned16(logits) && aligned16(grad) && aligned16(targets);
        const long long tiles = ((long long)rows + kSmallRows - 1) / kSmallRows;
        if (vec) {
            return probs ? launch(pg_small_kernel<true, true>, kSmallRows, shared, tiles, p, workspace_bytes, s)
                         : launch(pg_small_kernel<true, false>, kSmallRows, shared, tiles, p, workspace_bytes, s);
        }
        return probs ? launch(pg_small_kernel<false, true>, kSmallRows, shared, tiles, p, workspace_bytes, s)
                     : launch(pg_small_kernel<false, false>, kSmallRows, shared, tiles, p, workspace_bytes, s);
    }
    const bool vec = classes % 4 == 0 && aligned16(logits) && aligned16(grad) && aligned16(targets);
    if (vec) return probs ? launch_probs<true>(p, workspace_bytes, s) : launch_labels<true>(p, workspace_bytes, s);
    return probs ? launch_probs<false>(p, workspace_bytes, s) : launch_labels<false>(p, workspace_bytes, s);
}

}  // extern "C"
