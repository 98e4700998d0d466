// PowerGrad transform fused with softmax cross entropy on the CPU (gradshape/power_grad.h, SPEC.md
// section 3).
//
// Per row, two passes over memory and one over the row while it is still in cache:
//   1. statistics: max, min and whether any logit is NaN or +-inf (the one non-finite rule, shared
//      with the CUDA kernels: a row is non-finite iff one of its logits is);
//   2. exponentials: e^d and e^(alpha d), d = z - m, with their sums; e^(alpha d) is parked in the
//      gradient row (which may be the logits row itself: each element is read before it is written);
//   3. the write: gradient = e^(alpha d) / S_a * scale - q * scale, in place over what pass 2 left.
// Everything is 16 floats wide through GCC vector extensions, and the hot functions are compiled
// three times (x86-64-v4: AVX-512, v3: AVX2 + FMA, and the build's baseline), the copy chosen once
// at load time by the ifunc resolver of target_clones. Sums run in float32 lanes over blocks of
// kBlock elements and each block's sum is added to a float64 total: at most 64 + 4 float roundings
// per block (relative error < 5e-6, far inside the float64 oracle's tolerances), against one
// float -> double conversion per element for float64 lanes, which was the cost that held the
// kernel at a few GB/s.
//
// Rows go to the pool in fixed blocks whose partial losses are added in block order; rows longer
// than kChunk are summed chunk by chunk, each chunk's float64 partial added in chunk order, whether
// the chunks ran on one thread or (when there are fewer rows than threads) on several. So the result
// does not depend on the number of threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "../core/parallel.hpp"
#include "../core/status.hpp"
#include "gradshape.h"

#define GS_INLINE inline __attribute__((always_inline))
// The 64-byte vectors only cross calls between always-inline helpers and their clones: no ABI.
#pragma GCC diagnostic ignored "-Wpsabi"
#if defined(__x86_64__)
#define GS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GS_CLONES
#endif

namespace {

constexpr int64_t kNoRow = std::numeric_limits<int64_t>::max();
constexpr float kInf = std::numeric_limits<float>::infinity();

// 16 lanes: one AVX-512 register, two AVX2 or four SSE registers; GCC splits as the clone needs.
constexpr int W = 16;
typedef float vf __attribute__((vector_size(4 * W)));
typedef int32_t vi __attribute__((vector_size(4 * W)));
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf4 __attribute__((vector_size(16)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef int32_t vi4 __attribute__((vector_size(16)));
typedef double vd8 __attribute__((vector_size(64)));

// Elements per float32 partial sum: 64 vectors, so each lane adds at most 64 values.
constexpr int64_t kBlock = 64 * W;
// Elements per chunk of a long row: the unit of the float64 partial sums and of the split of one
// row across threads (128 KiB of logits).
constexpr int64_t kChunk = 32 * kBlock;
// Rows whose max - min exceeds this go to the float64 path: beyond it z - m, or a block sum of 64
// such values, could overflow float32 (only rows holding logits beyond about +-6e29 qualify).
constexpr double kWideRange = 0x1p100;

GS_INLINE vf splat(float x) { return vf{} + x; }
GS_INLINE vf load(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
GS_INLINE void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
// The last n < W elements, the other lanes set to pad; never reads past p + n.
GS_INLINE vf load_part(const float* p, int64_t n, float pad) {
    float buf[W];
    store(buf, splat(pad));
    std::memcpy(buf, p, size_t(n) * sizeof(float));
    return load(buf);
}
// Lane by lane: a short scalar loop, where a store to a buffer and a memcpy out of it would make the
// next loads of these elements wait on a failed store-to-load forwarding.
GS_INLINE void store_part(float* p, vf v, int64_t n) {
    for (int64_t k = 0; k < n; ++k) p[k] = v[k];
}
GS_INLINE vi lanes_below(int64_t n) {
    const vi iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    return iota < int32_t(n);
}
// The last n < W elements, other lanes pad. readable: elements that may be read from p, which
// covers the following rows of the calling thread's block (never rows another thread may be
// writing): a full load then, lanes past n replaced, instead of a copy through a buffer.
GS_INLINE vf load_tail(const float* p, int64_t n, int64_t readable, float pad) {
    return readable >= W ? (lanes_below(n) ? load(p) : splat(pad)) : load_part(p, n, pad);
}
// Lane sum in float: a tree of 4 additions (error bound included in the header comment).
GS_INLINE float lane_sum(vf v) {
    const vf8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    const vf4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}
GS_INLINE float lane_max(vf v) {
    const vf8 a0 = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), a1 = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    const vf8 a = a0 > a1 ? a0 : a1;
    const vf4 b0 = __builtin_shufflevector(a, a, 0, 1, 2, 3), b1 = __builtin_shufflevector(a, a, 4, 5, 6, 7);
    const vf4 b = b0 > b1 ? b0 : b1;
    return std::max(std::max(b[0], b[1]), std::max(b[2], b[3]));
}
GS_INLINE int32_t lane_max(vi v) {
    const vi8 a0 = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), a1 = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    const vi8 a = a0 > a1 ? a0 : a1;
    const vi4 b0 = __builtin_shufflevector(a, a, 0, 1, 2, 3), b1 = __builtin_shufflevector(a, a, 4, 5, 6, 7);
    const vi4 b = b0 > b1 ? b0 : b1;
    return std::max(std::max(b[0], b[1]), std::max(b[2], b[3]));
}
GS_INLINE double lane_sum(vd8 v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); }
GS_INLINE vd8 low_half(vf v) { return __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), vd8); }
GS_INLINE vd8 high_half(vf v) {
    return __builtin_convertvector(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), vd8);
}

// e^x for x <= 0 (the arguments are alpha (z - m)): Cephes' expf polynomial, about 1 ulp, in the
// same arithmetic for one lane or sixteen. x < -87.3 (e^x below FLT_MIN), -inf and NaN give 0.
template <class F, class I>
GS_INLINE F exp_nonpositive(F x, F zero, F floor) {
    const auto keep = x >= floor;
    const F xc = keep ? x : floor;
    // Round to nearest with the 1.5 * 2^23 trick: no library call, no rounding-mode instruction.
    const F n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    F r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    F p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    I bits;
    if constexpr (sizeof(F) == sizeof(float)) {
        bits = (I(n) + 127) << 23;  // n in [-126, 0]: a normal power of two
    } else {
        bits = (__builtin_convertvector(n, I) + 127) << 23;
    }
    F two_n;
    std::memcpy(&two_n, &bits, sizeof two_n);
    return keep ? p * two_n : zero;
}

GS_INLINE float exp1(float x) { return exp_nonpositive<float, int32_t>(x, 0.0f, -87.3f); }
GS_INLINE vf expv(vf x) { return exp_nonpositive<vf, vi>(x, splat(0.0f), splat(-87.3f)); }

struct Partial {
    double loss = 0;
    int64_t counted = 0;
    int64_t nonfinite = 0;
    int64_t bad = 0;
    int64_t first_nonfinite = kNoRow;
    int64_t first_bad = kNoRow;
};

struct Problem {
    const float* logits;
    int64_t classes;
    const int32_t* labels;
    const float* targets;
    bool use_ignore;
    int32_t ignore_index;
    float alpha;
    double keep;    // 1 - smoothing
    double spread;  // smoothing / classes
    double smoothing;
    double scale;   // 1 / B for MEAN, else 1
    bool none;
    float* grad;
    float* loss;
};

// ---- pass 1: statistics --------------------------------------------------------------------------

struct Stats {
    float max = -kInf, min = kInf;
    bool nonfinite = false;
    void add(const Stats& o) {
        max = std::max(max, o.max);
        min = std::min(min, o.min);
        nonfinite = nonfinite || o.nonfinite;
    }
};

GS_INLINE Stats stats_of(const float* z, int64_t n, int64_t readable) {
    vf mx = splat(-kInf), mn = splat(kInf);
    // Largest magnitude bit pattern: >= 0x7f800000 exactly when a lane saw +-inf or NaN (NaN itself
    // compares false and leaves max / min alone).
    vi top = vi{};
    auto step = [&](vf v) __attribute__((always_inline)) {
        mx = v > mx ? v : mx;
        mn = v < mn ? v : mn;
        const vi b = (vi) v & 0x7fffffff;
        top = b > top ? b : top;
    };
    int64_t i = 0;
    for (; i + W <= n; i += W) step(load(z + i));
    if (i < n) step(load_tail(z + i, n - i, readable - i, z[i]));  // padded with a value of the row: changes nothing
    Stats s;
    s.max = lane_max(mx);
    s.min = -lane_max(-mn);
    s.nonfinite = lane_max(top) >= 0x7f800000;
    return s;
}

// ---- pass 2: exponentials and sums ---------------------------------------------------------------

struct Sums {
    double s = 0, sa = 0, sd = 0;  // sum e^d, sum e^(alpha d), sum d; d = z - m
    double st = 0, std_ = 0;       // probability targets: sum t, sum t d (float64 lanes: t is not bounded)
    void add(const Sums& o) {
        s += o.s;
        sa += o.sa;
        sd += o.sd;
        st += o.st;
        std_ += o.std_;
    }
};

// One chunk (n <= kChunk) of a row whose max - min is below kWideRange, so d is finite and so is
// every float32 block sum.
template <bool kTargets, bool kOne>
GS_INLINE Sums exp_chunk(const float* z, const float* t, float* g, int64_t n, int64_t readable, float m, float alpha) {
    Sums out;
    vd8 t0 = vd8{}, t1 = vd8{}, u0 = vd8{}, u1 = vd8{};
    auto targets = [&](vf tv, vf d) __attribute__((always_inline)) {
        const vd8 tl = low_half(tv), th = high_half(tv);
        t0 += tl;
        t1 += th;
        // t d in float64: the product of two floats is exact there.
        u0 += tl * low_half(d);
        u1 += th * high_half(d);
    };
    int64_t i = 0;
    while (i + W <= n) {
        const int64_t stop = std::min(n, i + kBlock) - (W - 1);
        vf s = vf{}, sa = vf{}, sd = vf{};
        for (; i < stop; i += W) {
            const vf d = load(z + i) - m;
            const vf e = expv(d);
            const vf ea = kOne ? e : expv(d * alpha);
            s += e;
            if (!kOne) sa += ea;
            sd += d;
            if (kTargets) targets(load(t + i), d);
            store(g + i, ea);
        }
        out.s += lane_sum(s);
        out.sa += kOne ? 0.0 : lane_sum(sa);
        out.sd += lane_sum(sd);
    }
    if (i < n) {
        // Padded with m: d = 0 there, e and e^(alpha d) masked to 0, targets padded with 0.
        const int64_t rest = n - i;
        const vi valid = lanes_below(rest);
        const vf d = load_tail(z + i, rest, readable - i, m) - m;
        const vf e = valid ? expv(d) : vf{};
        const vf ea = kOne ? e : (valid ? expv(d * alpha) : vf{});
        out.s += lane_sum(e);
        out.sa += kOne ? 0.0 : lane_sum(ea);
        out.sd += lane_sum(d);
        if (kTargets) targets(load_tail(t + i, rest, readable - i, 0.0f), d);
        store_part(g + i, ea, rest);
    }
    if (kOne) out.sa = out.s;
    if (kTargets) {
        out.st = lane_sum(t0 + t1);
        out.std_ = lane_sum(u0 + u1);
    }
    return out;
}

GS_INLINE Sums exp_of(const float* z, const float* t, float* g, int64_t n, int64_t readable, float m, float alpha) {
    const bool one = alpha == 1.0f;
    if (t != nullptr) {
        return one ? exp_chunk<true, true>(z, t, g, n, readable, m, alpha) : exp_chunk<true, false>(z, t, g, n, readable, m, alpha);
    }
    return one ? exp_chunk<false, true>(z, t, g, n, readable, m, alpha) : exp_chunk<false, false>(z, t, g, n, readable, m, alpha);
}

// A row of logits beyond about +-6e29: every difference and sum in float64, one element at a time
// (rare, so not vectorised). z - m is clamped to -FLT_MAX before the float exponentials so that
// alpha = 0 still gives e^0 = 1 where z - m would have overflowed to -inf.
Sums wide_row_sums(const float* z, const float* t, float* g, int64_t n, float m, float alpha) {
    Sums out;
    for (int64_t i = 0; i < n; ++i) {
        const double d = double(z[i]) - double(m);
        const float df = float(std::max(d, -double(std::numeric_limits<float>::max())));
        const float e = exp1(df);
        const float ea = alpha == 1.0f ? e : exp1(df * alpha);
        out.s += e;
        out.sa += ea;
        out.sd += d;
        if (t != nullptr) {
            out.st += t[i];
            out.std_ += double(t[i]) * d;
        }
        g[i] = ea;
    }
    return out;
}

// ---- pass 3: the gradient ------------------------------------------------------------------------

GS_INLINE void scale_of(float* g, const float* t, int64_t n, float inv, float base, float keep) {
    int64_t i = 0;
    if (t != nullptr) {
        for (; i + W <= n; i += W) store(g + i, load(g + i) * inv - base - load(t + i) * keep);
        for (; i < n; ++i) g[i] = g[i] * inv - base - t[i] * keep;
    } else {
        for (; i + W <= n; i += W) store(g + i, load(g + i) * inv - base);
        for (; i < n; ++i) g[i] = g[i] * inv - base;
    }
}

// ---- rows ----------------------------------------------------------------------------------------

// The passes over a row longer than one chunk: one chunk per call of these clones, whether the
// chunks of a row run on one thread or across the pool. Always the same compiled code for them: the
// copy inlined into rows_clone may contract other products into FMAs than these do, and the
// gradient would then differ in its last bit with the thread count.
GS_CLONES Stats stats_clone(const float* z, int64_t n) { return stats_of(z, n, n); }
GS_CLONES Sums exp_clone(const float* z, const float* t, float* g, int64_t n, float m, float alpha) {
    return exp_of(z, t, g, n, n, m, alpha);
}
GS_CLONES void scale_clone(float* g, const float* t, int64_t n, float inv, float base, float keep) {
    scale_of(g, t, n, inv, base, keep);
}

// Where the chunks of one long row run: in order on this thread (inside rows_clone, many rows per
// call), or across the pool (one row at a time, when there are too few rows to share out).
struct InOrder {
    template <class Body>
    GS_INLINE static void each(int64_t chunks, Body&& body) {
        for (int64_t c = 0; c < chunks; ++c) body(c);
    }
};

struct AcrossPool {
    template <class Body>
    static void each(int64_t chunks, Body&& body) {
        gs::parallel_for(chunks, 1, [&](int64_t begin, int64_t end) {
            for (int64_t c = begin; c < end; ++c) body(c);
        });
    }
};

// The scalar end of a row, one function for every row: inlined into the clones, its float64
// expressions could be contracted into FMAs there and not in the split path's baseline code, and the
// result would depend on the thread count.
struct RowEnd {
    float inv, base, keep, gy;  // the write's factors in float, and the label's gradient
    double loss;
};

__attribute__((noinline)) RowEnd row_end(const Problem& p, const Sums& sums, double dy, double ey, bool targets) {
    // sums.s >= 1 (the maximum contributes e^0) and sums.sa >= 1 likewise: the log and the quotient
    // are finite.
    const double lse = std::log(sums.s);
    const double inv = p.scale / sums.sa;
    const double base = p.scale * p.spread;
    RowEnd f;
    // The write in float: each element is one rounding of values below 1 in magnitude.
    f.inv = float(inv);
    f.base = float(base);
    f.keep = float(p.scale * p.keep);
    if (targets) {
        // -sum q log p = lse sum q - sum q (z - m), q = keep t + spread
        f.gy = 0.0f;
        f.loss = lse * (p.keep * sums.st + p.smoothing) - (p.keep * sums.std_ + p.spread * sums.sd);
    } else {
        f.gy = float(ey * inv - base - p.scale * p.keep);
        f.loss = lse - p.keep * dy - p.spread * sums.sd;
    }
    return f;
}

template <class Chunks>
GS_INLINE void row(const Problem& p, int64_t r, int64_t readable, Partial& part) {
    const int64_t n = p.classes;
    const float* z = p.logits + r * n;
    float* g = p.grad + r * n;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    int32_t y = 0;
    if (p.labels != nullptr) {
        y = p.labels[r];
        if (p.use_ignore && y == p.ignore_index) {
            std::fill(g, g + n, 0.0f);
            if (p.none) p.loss[r] = 0.0f;
            return;
        }
        if (y < 0 || y >= n) {
            std::fill(g, g + n, nan);
            if (p.none) p.loss[r] = nan;
            part.loss += nan;
            part.bad += 1;
            part.first_bad = std::min(part.first_bad, r);
            return;
        }
    }
    part.counted += 1;

    const int64_t chunks = (n + kChunk - 1) / kChunk;
    auto length = [n](int64_t c) { return std::min(kChunk, n - c * kChunk); };
    Stats stats;
    if (chunks == 1) {
        stats = stats_of(z, n, readable);
    } else {
        std::vector<Stats> each(static_cast<size_t>(chunks));
        Chunks::each(chunks, [&](int64_t c) { each[size_t(c)] = stats_clone(z + c * kChunk, length(c)); });
        for (const Stats& s : each) stats.add(s);
    }
    if (stats.nonfinite) {
        std::fill(g, g + n, nan);
        if (p.none) p.loss[r] = nan;
        part.loss += nan;
        part.nonfinite += 1;
        part.first_nonfinite = std::min(part.first_nonfinite, r);
        return;
    }
    const float m = stats.max;
    // Read before the exponentials: in place, z and g are the same row. In float64, as every
    // difference that reaches the loss: max - z_y of finite floats does not overflow there.
    const double dy = p.labels != nullptr ? double(z[y]) - double(m) : 0.0;
    const float* t = p.targets != nullptr ? p.targets + r * n : nullptr;
    Sums sums;
    if (double(stats.max) - double(stats.min) > kWideRange) {
        sums = wide_row_sums(z, t, g, n, m, p.alpha);
    } else if (chunks == 1) {
        sums = exp_of(z, t, g, n, readable, m, p.alpha);
    } else {
        std::vector<Sums> each(static_cast<size_t>(chunks));
        Chunks::each(chunks, [&](int64_t c) {
            each[size_t(c)] = exp_clone(z + c * kChunk, t ? t + c * kChunk : nullptr, g + c * kChunk, length(c), m, p.alpha);
        });
        for (const Sums& s : each) sums.add(s);
    }
    const double ey = t == nullptr ? double(g[y]) : 0.0;  // e^(alpha d_y), before the write
    const RowEnd f = row_end(p, sums, dy, ey, t != nullptr);
    if (chunks == 1) {
        scale_of(g, t, n, f.inv, f.base, f.keep);
    } else {
        Chunks::each(chunks, [&](int64_t c) {
            scale_clone(g + c * kChunk, t ? t + c * kChunk : nullptr, length(c), f.inv, f.base, f.keep);
        });
    }
    if (t == nullptr) g[y] = f.gy;
    if (p.none) p.loss[r] = float(f.loss);
    part.loss += f.loss;
}

GS_CLONES void rows_clone(const Problem& p, int64_t begin, int64_t end, Partial& part) {
    for (int64_t r = begin; r < end; ++r) row<InOrder>(p, r, (end - r) * p.classes, part);
}

// Row blocks depend on the row length only: the same blocks, hence the same sums, on any pool size.
int64_t rows_per_block(int64_t classes) { return std::clamp<int64_t>(65536 / classes, 1, 1024); }

}  // namespace

extern "C" int gs_pg_cpu(const float* logits, int32_t rows, int32_t classes, const int32_t* labels,
                         const float* targets, int32_t use_ignore, int32_t ignore_index, float alpha,
                         float smoothing, int32_t reduction, float* grad, float* loss, gs_pg_report* report) {
    return gs::guarded("gs_pg_cpu", [&]() -> int {
        if (rows < 0 || classes < 1 || (labels == nullptr) == (targets == nullptr) || logits == nullptr ||
            grad == nullptr || report == nullptr || !(alpha >= 0.0f) || !std::isfinite(alpha) ||
            !(smoothing >= 0.0f && smoothing <= 1.0f) || reduction < GS_PG_REDUCTION_MEAN ||
            reduction > GS_PG_REDUCTION_NONE) {
            return gs::fail(GS_INVALID_ARGUMENT,
                            "gs_pg_cpu: invalid arguments (rows %d, classes %d, alpha %g, smoothing %g, reduction %d)",
                            rows, classes, double(alpha), double(smoothing), reduction);
        }
        Problem p{};
        p.logits = logits;
        p.classes = classes;
        p.labels = labels;
        p.targets = targets;
        p.use_ignore = use_ignore != 0;
        p.ignore_index = ignore_index;
        p.alpha = alpha;
        p.keep = 1.0 - double(smoothing);
        p.smoothing = smoothing;
        p.spread = double(smoothing) / classes;
        p.none = reduction == GS_PG_REDUCTION_NONE && loss != nullptr;
        p.grad = grad;
        p.loss = loss;
        p.scale = 1.0;
        if (reduction == GS_PG_REDUCTION_MEAN) {
            int64_t b = rows;
            if (labels != nullptr) {
                b = 0;
                for (int32_t r = 0; r < rows; ++r) {
                    const int32_t y = labels[r];
                    b += !(p.use_ignore && y == ignore_index) && y >= 0 && y < classes;
                }
            }
            p.scale = b > 0 ? 1.0 / double(b) : 0.0;
        }

        const int64_t per_block = rows_per_block(classes);
        const int64_t blocks = (int64_t(rows) + per_block - 1) / per_block;
        // Reused by the calling thread; the workers reach it through this reference (a thread_local
        // named inside the lambda would be each worker's own).
        static thread_local std::vector<Partial> reused;
        std::vector<Partial>& partials = reused;
        partials.assign(size_t(blocks), Partial{});
        if (classes > kChunk && rows < 2 * gs::thread_count()) {
            // Too few rows to keep the pool busy: one row at a time, its chunks across the pool.
            // per_block is 1 at this length, so partial b is row b, as in the other branch.
            for (int64_t r = 0; r < rows; ++r) row<AcrossPool>(p, r, p.classes, partials[size_t(r)]);
        } else {
            gs::parallel_for(blocks, 1, [&](int64_t begin, int64_t end) {
                for (int64_t b = begin; b < end; ++b) {
                    rows_clone(p, b * per_block, std::min<int64_t>(rows, (b + 1) * per_block), partials[size_t(b)]);
                }
            });
        }

        Partial total;
        for (const Partial& part : partials) {
            total.loss += part.loss;
            total.counted += part.counted;
            total.nonfinite += part.nonfinite;
            total.bad += part.bad;
            total.first_nonfinite = std::min(total.first_nonfinite, part.first_nonfinite);
            total.first_bad = std::min(total.first_bad, part.first_bad);
        }
        double value = total.loss;
        if (reduction == GS_PG_REDUCTION_MEAN) value = total.counted > 0 ? total.loss / double(total.counted) : 0.0;
        std::memset(report, 0, sizeof *report);
        report->loss = value;
        report->counted_rows = total.counted;
        report->nonfinite_rows = total.nonfinite;
        report->bad_labels = total.bad;
        report->first_nonfinite_row = total.first_nonfinite == kNoRow ? -1 : total.first_nonfinite;
        report->first_bad_label_row = total.first_bad == kNoRow ? -1 : total.first_bad;
        if (loss != nullptr && reduction != GS_PG_REDUCTION_NONE) loss[0] = float(value);
        return GS_OK;
    });
}
