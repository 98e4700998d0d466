// PowerGrad transform fused with softmax cross entropy on the CPU (gradshape/power_grad.h, SPEC.md
// section 3). Rows go to the pool in fixed blocks whose partial sums are added in block order, so
// the result does not depend on the number of threads. Per row: one pass for the maximum, one that
// computes e^(z-m) and e^(alpha (z-m)) (sums in float64, e^(alpha (z-m)) parked in the gradient row,
// which is what makes the in-place case free), one that scales the gradient.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "../core/parallel.hpp"
#include "../core/status.hpp"
#include "gradshape.h"

namespace {

constexpr int64_t kNoRow = std::numeric_limits<int64_t>::max();

// Four lanes through GCC/Clang vector extensions: SSE on x86-64, NEON on arm64, no intrinsics.
typedef float f4 __attribute__((vector_size(16)));
typedef int32_t i4 __attribute__((vector_size(16)));
typedef double d2 __attribute__((vector_size(16)));

inline f4 splat(float x) { return f4{x, x, x, x}; }
inline f4 load4(const float* p) {
    f4 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store4(float* p, f4 v) { std::memcpy(p, &v, sizeof v); }

// e^x for x <= 0 (the arguments are alpha (z - m)): Cephes' expf polynomial, about 1 ulp, in the
// same arithmetic for one lane or four. NaN or x < -87.3 give 0: NaN rows are caught by their sum
// of z - m, and e^-87.3 is below FLT_MIN anyway.
template <class F, class I>
inline F exp_nonpositive(F x, F zero, F floor) {
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

inline float exp1(float x) { return exp_nonpositive<float, int32_t>(x, 0.0f, -87.3f); }
inline f4 exp4(f4 x) { return exp_nonpositive<f4, i4>(x, splat(0.0f), splat(-87.3f)); }

// Adds the four lanes of v to two float64 pairs.
inline void accumulate(d2& low, d2& high, f4 v) {
    low += __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1), d2);
    high += __builtin_convertvector(__builtin_shufflevector(v, v, 2, 3), d2);
}

inline double total(d2 low, d2 high) { return (low[0] + low[1]) + (high[0] + high[1]); }

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

float row_max(const float* z, int64_t n) {
    f4 m4 = splat(-std::numeric_limits<float>::infinity());
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const f4 v = load4(z + i);
        m4 = v > m4 ? v : m4;  // NaN is skipped here and caught by the sum of z - m
    }
    float m = std::max(std::max(m4[0], m4[1]), std::max(m4[2], m4[3]));
    for (; i < n; ++i) m = z[i] > m ? z[i] : m;
    return m;
}

struct Sums {
    double s = 0, sa = 0, sd = 0;  // sum e^d, sum e^(alpha d), sum d; d = z - m
    double st = 0, std_ = 0;       // probability targets: sum t, sum t d
};

// One pass: the sums, and e^(alpha d) parked in g (which may be z itself). The only compute-bound
// pass of the row (two exponentials per element), so it alone is compiled twice: an AVX2 + FMA
// (x86-64-v3) copy, about 30% faster here, chosen at load time on CPUs that have it, and the
// baseline copy for the rest. FMA contraction changes the last bit of some values between the two.
__attribute__((target_clones("arch=x86-64-v3", "default")))
Sums exp_pass(const float* z, const float* t, float* g, int64_t n, float m, float alpha) {
    const bool one = alpha == 1.0f;
    d2 s0 = {0, 0}, s1 = {0, 0}, a0 = {0, 0}, a1 = {0, 0}, d0 = {0, 0}, d1 = {0, 0};
    d2 t0 = {0, 0}, t1 = {0, 0}, u0 = {0, 0}, u1 = {0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const f4 d = load4(z + i) - m;
        const f4 e = exp4(d);
        const f4 ea = one ? e : exp4(d * alpha);
        accumulate(s0, s1, e);
        accumulate(a0, a1, ea);
        accumulate(d0, d1, d);
        if (t != nullptr) {
            const f4 tv = load4(t + i);
            accumulate(t0, t1, tv);
            // t d in float64: products of two floats are exact there.
            u0 += __builtin_convertvector(__builtin_shufflevector(tv, tv, 0, 1), d2) *
                  __builtin_convertvector(__builtin_shufflevector(d, d, 0, 1), d2);
            u1 += __builtin_convertvector(__builtin_shufflevector(tv, tv, 2, 3), d2) *
                  __builtin_convertvector(__builtin_shufflevector(d, d, 2, 3), d2);
        }
        store4(g + i, ea);
    }
    Sums out;
    out.s = total(s0, s1);
    out.sa = total(a0, a1);
    out.sd = total(d0, d1);
    out.st = total(t0, t1);
    out.std_ = total(u0, u1);
    for (; i < n; ++i) {
        const float d = z[i] - m;
        const float e = exp1(d);
        const float ea = one ? e : exp1(d * alpha);
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

void row(const Problem& p, int64_t r, Partial& part) {
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

    const float m = row_max(z, n);
    // Read before the exp pass: in place, z and g are the same row.
    const double dy = p.labels != nullptr ? double(z[y] - m) : 0.0;
    const float* t = p.targets != nullptr ? p.targets + r * n : nullptr;
    const Sums sums = exp_pass(z, t, g, n, m, p.alpha);
    if (!std::isfinite(sums.s) || !std::isfinite(sums.sd)) {
        std::fill(g, g + n, nan);
        if (p.none) p.loss[r] = nan;
        part.loss += nan;
        part.nonfinite += 1;
        part.first_nonfinite = std::min(part.first_nonfinite, r);
        return;
    }
    const double lse = std::log(sums.s);
    const double inv = p.scale / sums.sa;
    const double base = p.scale * p.spread;
    // The scaling pass in float: each element is one rounding of values below 1 in magnitude.
    const float inv_f = float(inv), base_f = float(base), keep_f = float(p.scale * p.keep);
    double loss;
    int64_t i = 0;
    if (t != nullptr) {
        for (; i + 4 <= n; i += 4) store4(g + i, load4(g + i) * inv_f - base_f - load4(t + i) * keep_f);
        for (; i < n; ++i) g[i] = g[i] * inv_f - base_f - t[i] * keep_f;
        // -sum q log p = lse sum q - sum q (z - m), q = keep t + spread
        loss = lse * (p.keep * sums.st + p.smoothing) - (p.keep * sums.std_ + p.spread * sums.sd);
    } else {
        const double ey = g[y];
        for (; i + 4 <= n; i += 4) store4(g + i, load4(g + i) * inv_f - base_f);
        for (; i < n; ++i) g[i] = g[i] * inv_f - base_f;
        g[y] = float(ey * inv - base - p.scale * p.keep);
        loss = lse - p.keep * dy - p.spread * sums.sd;
    }
    if (p.none) p.loss[r] = float(loss);
    part.loss += loss;
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
        gs::parallel_for(blocks, 1, [&](int64_t begin, int64_t end) {
            for (int64_t b = begin; b < end; ++b) {
                const int64_t stop = std::min<int64_t>(rows, (b + 1) * per_block);
                for (int64_t r = b * per_block; r < stop; ++r) row(p, r, partials[size_t(b)]);
            }
        });

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
