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

// e^x for x <= 0, branch-free and call-free so that the loops around it vectorise (the library
// calls expf once per element otherwise). Cephes' expf polynomial, about 1 ulp. NaN or x < -87.3
// give 0: NaN rows are caught by their sum of (z - m), and e^-87.3 is below FLT_MIN anyway.
inline float exp_nonpositive(float x) {
    const bool tiny = !(x >= -87.3f);
    const float xc = tiny ? -87.3f : x;
    // Round to nearest with the 1.5 * 2^23 trick: vectorises on any SSE level, unlike nearbyintf.
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = (int32_t(n) + 127) << 23;  // n in [-126, 0]: a normal power of two
    float two_n;
    std::memcpy(&two_n, &bits, sizeof two_n);
    return tiny ? 0.0f : p * two_n;
}

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

void fill(float* row, int64_t n, float value) { std::fill(row, row + n, value); }

// Sums of e^d, e^(alpha d) and d over a row, d = z - m; e^(alpha d) lands in g (may alias z).
// Four independent float64 accumulators per sum keep the loop vectorisable without reassociation.
void exp_pass(const float* z, float* g, int64_t n, float m, float alpha, double& s, double& sa, double& sd) {
    double as[4] = {0, 0, 0, 0}, aa[4] = {0, 0, 0, 0}, ad[4] = {0, 0, 0, 0};
    const bool one = alpha == 1.0f;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        for (int j = 0; j < 4; ++j) {
            const float d = z[i + j] - m;
            const float e = exp_nonpositive(d);
            const float ea = one ? e : exp_nonpositive(alpha * d);
            as[j] += e;
            aa[j] += ea;
            ad[j] += d;
            g[i + j] = ea;
        }
    }
    for (; i < n; ++i) {
        const float d = z[i] - m;
        const float e = exp_nonpositive(d);
        const float ea = one ? e : exp_nonpositive(alpha * d);
        as[0] += e;
        aa[0] += ea;
        ad[0] += d;
        g[i] = ea;
    }
    s = (as[0] + as[1]) + (as[2] + as[3]);
    sa = (aa[0] + aa[1]) + (aa[2] + aa[3]);
    sd = (ad[0] + ad[1]) + (ad[2] + ad[3]);
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
            fill(g, n, 0.0f);
            if (p.none) p.loss[r] = 0.0f;
            return;
        }
        if (y < 0 || y >= n) {
            fill(g, n, nan);
            if (p.none) p.loss[r] = nan;
            part.loss += nan;
            part.bad += 1;
            part.first_bad = std::min(part.first_bad, r);
            return;
        }
    }
    part.counted += 1;

    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) m = z[i] > m ? z[i] : m;  // NaN skipped here, caught by sd below

    // Read before the exp pass: in place, z and g are the same row.
    const double dy = p.labels != nullptr ? double(z[y]) - m : 0.0;
    double sq = 0, sqd = 0;  // probability targets: sum t, sum t (z - m)
    if (p.targets != nullptr) {
        const float* t = p.targets + r * n;
        for (int64_t i = 0; i < n; ++i) {
            sq += t[i];
            sqd += double(t[i]) * (double(z[i]) - m);
        }
    }
    double s, sa, sd;
    exp_pass(z, g, n, m, p.alpha, s, sa, sd);
    if (!std::isfinite(s) || !std::isfinite(sd)) {
        fill(g, n, nan);
        if (p.none) p.loss[r] = nan;
        part.loss += nan;
        part.nonfinite += 1;
        part.first_nonfinite = std::min(part.first_nonfinite, r);
        return;
    }
    const double lse = std::log(s);
    const double inv = p.scale / sa;
    const double base = p.scale * p.spread;
    double loss;
    if (p.targets != nullptr) {
        const float* t = p.targets + r * n;
        const double keep = p.scale * p.keep;
        for (int64_t i = 0; i < n; ++i) g[i] = float(g[i] * inv - base - keep * t[i]);
        // -sum q log p = lse sum q - sum q (z - m), q = keep t + spread
        loss = lse * (p.keep * sq + p.smoothing) - (p.keep * sqd + p.spread * sd);
    } else {
        const float ey = g[y];
        for (int64_t i = 0; i < n; ++i) g[i] = float(g[i] * inv - base);
        g[y] = float(ey * inv - base - p.scale * p.keep);
        loss = lse - p.keep * dy - p.spread * sd;
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
