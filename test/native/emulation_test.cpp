// The CUDA kernels (cuda-kernels/*.cu, compiled for the host against cuda-kernels/emulation/) against
// their CPU twins (native/cpu/*.cpp) and float64 oracles, through the C ABI of gradshape.h.
//
//   gs_emulation_test [FILTER...]     runs the cases whose name contains one of the filters (all without)
//
// One line per case: "PASS <name> | <detail>" or "FAIL <name> | <message>", then "SUMMARY ...";
// exit status 0 when every case passed. EmulationTest.java turns each line into a JUnit test.
// Inputs are fresh random numbers each run; the seed is printed first and in every failure
// (GS_EMU_SEED=<seed> repeats a run). GS_EMU_MODE=threads runs CUDA threads as OS threads.
#include <cfloat>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "emulation.h"
#include "gradshape.h"

namespace {

uint64_t seed = 0;

// ---- Cases ---------------------------------------------------------------------------------------

struct Failure {
    std::string message;
};

std::string format(const char* fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

struct Context {
    std::string name, detail;
    std::mt19937_64 rng;
    [[noreturn]] void fail(const std::string& what) { throw Failure{what}; }
    void check(bool ok, const std::string& what) {
        if (!ok) fail(what);
    }
    double normal() { return std::normal_distribution<double>(0.0, 1.0)(rng); }
    double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }
    int below(int n) { return int(rng() % uint64_t(n)); }
};

struct Case {
    std::string name;
    std::function<void(Context&)> run;
};
std::vector<Case>& cases() {
    static std::vector<Case> all;
    return all;
}
void add(const std::string& name, std::function<void(Context&)> run) { cases().push_back({name, std::move(run)}); }

void ok(Context& c, int status, const char* call) {
    if (status != GS_OK) c.fail(format("%s returned %d: %s", call, status, gs_last_error_message()));
}
#define OK(c, call) ok(c, (call), #call)

// Device memory of the emulation (host memory, allocated through the library's own entry point).
template <class T>
struct Dev {
    T* p = nullptr;
    size_t n = 0;
    Dev(Context& c, size_t count) : n(count) {
        int64_t a = 0;
        OK(c, gs_cuda_malloc(int64_t(count * sizeof(T)), &a));
        p = reinterpret_cast<T*>(a);
    }
    Dev(const Dev&) = delete;
    ~Dev() { gs_cuda_free(p); }
    void put(const std::vector<T>& v) { std::memcpy(p, v.data(), v.size() * sizeof(T)); }
    std::vector<T> get(size_t count) const { return std::vector<T>(p, p + count); }
};

bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

bool close(double got, double want, double abs_tol, double rel_tol) {
    if (std::isnan(want)) return std::isnan(got);
    if (std::isinf(want)) return got == want;
    return std::fabs(got - want) <= abs_tol + rel_tol * std::fabs(want);
}

// Device limits that force the launch layouts (see docs/spatial_dependence-cuda.md, "Budget").
enum Devices {
    kH100 = 0,      // 4 SMs of an H100: whole tables replicated 8x (reference), 1 copy (64 bins), slices (256)
    kSmall = 1,     // 48 KB opt-in: 4 and 2 copies, so match.any aggregation with per-pair binning
    kTiny = 2,      // 12 KB opt-in: tables sliced, and a stage too big for two blocks per SM
    kMany = 3,      // 132 SMs: blocks of one tile each
    kOne = 4,       // 1 SM: every block strides over many tiles
    kCache = 5,     // attribute caching per device (nothing else runs there)
};

void set_devices() {
    gs_emu_set_limits(kH100, gs_emu_limits{4, 232448, 233472, 32, 16});
    gs_emu_set_limits(kSmall, gs_emu_limits{2, 48 * 1024, 100 * 1024, 32, 16});
    gs_emu_set_limits(kTiny, gs_emu_limits{3, 12 * 1024, 20 * 1024, 32, 16});
    gs_emu_set_limits(kMany, gs_emu_limits{132, 232448, 233472, 32, 16});
    gs_emu_set_limits(kOne, gs_emu_limits{1, 232448, 233472, 32, 16});
    gs_emu_set_limits(kCache, gs_emu_limits{2, 100 * 1024, 200 * 1024, 16, 16});
}

// =================================================================================================
// Spatial dependence
// =================================================================================================

enum class Data { Normal, Relu, SignedZeros, Integers, ConstantChannel, NonFinite };

struct SdCase {
    int device;
    int n, c, h, w, layout, kh, kw, ph, pw;
    int bins, range, rz;
    Data data;
    int batches;
    int extra_table_bins;  // table_bins beyond the largest B
    float lo, hi;          // FIXED range
    int order;
};

std::string describe(const SdCase& s) {
    static const char* data[] = {"normal", "relu", "signed-zeros", "integers", "constant-channel", "nonfinite"};
    return format("dev%d %dx%dx%dx%d %s k%dx%d pad%d,%d bins %d range %s%s %s batches %d order %d", s.device, s.n, s.c, s.h,
                  s.w, s.layout == GS_SD_LAYOUT_NCHW ? "NCHW" : "NHWC", s.kh, s.kw, s.ph, s.pw, s.bins,
                  s.range == GS_SD_RANGE_PAIRS ? "pairs" : s.range == GS_SD_RANGE_CHANNEL ? "channel" : "fixed",
                  s.rz ? " remove-zeros" : "", data[int(s.data)], s.batches, s.order);
}

std::vector<float> sd_input(Context& c, const SdCase& s) {
    const size_t count = size_t(s.n) * s.c * s.h * s.w;
    std::vector<float> x(count);
    for (size_t i = 0; i < count; ++i) {
        const double v = c.normal();
        switch (s.data) {
            case Data::Normal: x[i] = float(v); break;
            case Data::Relu: x[i] = float(v > 0.3 ? v : 0.0); break;
            case Data::SignedZeros: x[i] = c.below(3) == 0 ? -0.0f : c.below(2) ? 0.0f : float(v); break;
            case Data::Integers: x[i] = float(c.below(7) - 3); break;
            case Data::ConstantChannel: x[i] = float(v); break;
            case Data::NonFinite: x[i] = float(v); break;
        }
    }
    if (s.data == Data::ConstantChannel) {
        // Channel 0 constant (H(P,Q) = 0: NaN, or 0 under zero removal).
        for (int n = 0; n < s.n; ++n)
            for (int i = 0; i < s.h * s.w; ++i) {
                const size_t at = s.layout == GS_SD_LAYOUT_NCHW ? (size_t(n) * s.c) * s.h * s.w + i
                                                                : (size_t(n) * s.h * s.w + i) * s.c;
                x[at] = 2.5f;
            }
    }
    if (s.data == Data::NonFinite) {
        x[c.below(int(count))] = std::numeric_limits<float>::quiet_NaN();
        x[c.below(int(count))] = std::numeric_limits<float>::infinity();
    }
    return x;
}

int ceil_log2(int64_t n) {
    int k = 0;
    while ((int64_t(1) << k) < n) ++k;
    return k;
}

void run_sd(Context& c, const SdCase& s) {
    OK(c, gs_cuda_set_device(s.device));
    const int d = (s.kh * s.kw - 1) / 2, cd = s.c * d, window = s.kh * s.kw;
    std::vector<std::vector<float>> xs;
    for (int b = 0; b < s.batches; ++b) xs.push_back(sd_input(c, s));
    const size_t count = xs[0].size();
    const float inf = std::numeric_limits<float>::infinity();

    // Phase 1.
    std::vector<int64_t> pc_cpu(cd, 0), nf_cpu(1, 0);
    std::vector<float> ranges_cpu(size_t(cd) * 4);
    for (int i = 0; i < cd; ++i) {
        ranges_cpu[4 * i] = ranges_cpu[4 * i + 2] = inf;
        ranges_cpu[4 * i + 1] = ranges_cpu[4 * i + 3] = -inf;
    }
    Dev<float> x_dev(c, count);
    Dev<int64_t> pc_dev(c, cd), nf_dev(c, 1);
    Dev<float> ranges_dev(c, size_t(cd) * 4);
    pc_dev.put(pc_cpu);
    nf_dev.put(nf_cpu);
    ranges_dev.put(ranges_cpu);
    for (const auto& x : xs) {
        OK(c, gs_sd_stats_cpu(x.data(), s.n, s.c, s.h, s.w, s.layout, s.kh, s.kw, s.ph, s.pw, s.range, s.rz, pc_cpu.data(),
                              ranges_cpu.data(), nf_cpu.data()));
        x_dev.put(x);
        OK(c, gs_sd_stats_cuda(x_dev.p, s.n, s.c, s.h, s.w, s.layout, s.kh, s.kw, s.ph, s.pw, s.range, s.rz, pc_dev.p,
                               ranges_dev.p, nf_dev.p, nullptr));
    }
    const auto pc = pc_dev.get(cd), nf = nf_dev.get(1);
    const auto ranges = ranges_dev.get(size_t(cd) * 4);
    c.check(nf[0] == nf_cpu[0], format("nonfinite: cuda %lld, cpu %lld", (long long) nf[0], (long long) nf_cpu[0]));
    if (s.data == Data::NonFinite) {
        c.check(nf[0] == 2LL * s.batches, format("nonfinite: %lld, want %d", (long long) nf[0], 2 * s.batches));
        c.detail = format("nonfinite %lld", (long long) nf[0]);
        return;  // the callers stop at non-finite input
    }
    for (int i = 0; i < cd; ++i) {
        c.check(pc[i] == pc_cpu[i], format("pair_count[c %d][u %d]: cuda %lld, cpu %lld", i / d, i % d, (long long) pc[i],
                                           (long long) pc_cpu[i]));
    }
    if (s.range != GS_SD_RANGE_FIXED) {
        for (int i = 0; i < 4 * cd; ++i) {
            c.check(same_float(ranges[i], ranges_cpu[i]),
                    format("ranges[c %d][u %d][%d]: cuda %.9g, cpu %.9g", i / 4 / d, i / 4 % d, i % 4, double(ranges[i]),
                           double(ranges_cpu[i])));
        }
    }

    // Phase 2, with the CPU's (equal) state.
    int64_t most = 1;
    for (auto v : pc_cpu) most = std::max<int64_t>(most, v);
    const int needed = s.bins > 0 ? s.bins : 1 + ceil_log2(most);
    const int tb = std::min(256, needed + s.extra_table_bins);
    const size_t cells = size_t(cd) * tb * tb;
    std::vector<int64_t> hist_cpu(cells, 0);
    Dev<int64_t> hist_dev(c, cells);
    hist_dev.put(hist_cpu);
    int64_t ws_bytes = 0;
    OK(c, gs_sd_histogram_workspace_cuda(s.n, s.c, s.h, s.w, s.kh, s.kw, tb, &ws_bytes));
    gs_emu_reset_counters();
    for (const auto& x : xs) {
        OK(c, gs_sd_histogram_cpu(x.data(), s.n, s.c, s.h, s.w, s.layout, s.kh, s.kw, s.ph, s.pw, s.bins, s.range, s.lo,
                                  s.hi, s.rz, pc_cpu.data(), ranges_cpu.data(), tb, hist_cpu.data()));
        x_dev.put(x);
        OK(c, gs_sd_histogram_cuda(x_dev.p, s.n, s.c, s.h, s.w, s.layout, s.kh, s.kw, s.ph, s.pw, s.bins, s.range, s.lo,
                                   s.hi, s.rz, pc_dev.p, ranges_dev.p, tb, hist_dev.p, nullptr, ws_bytes, nullptr));
    }
    const auto hist = hist_dev.get(cells);
    int64_t total = 0;
    for (size_t i = 0; i < cells; ++i) {
        total += hist_cpu[i];
        if (hist[i] != hist_cpu[i]) {
            const size_t cell = i % (size_t(tb) * tb), table = i / (size_t(tb) * tb);
            c.fail(format("hist[c %zu][u %zu][%zu][%zu]: cuda %lld, cpu %lld (table_bins %d)", table / d, table % d,
                          cell / tb, cell % tb, (long long) hist[i], (long long) hist_cpu[i], tb));
        }
    }
    c.check(total > 0 || s.data == Data::ConstantChannel || s.range == GS_SD_RANGE_FIXED,
            "no pair was counted: the case tests nothing");

    // Phase 3; previous_g aliases g on the device (allowed), a separate array on the CPU.
    std::vector<float> prev(window);
    for (auto& v : prev) v = float(0.5 + c.uniform());
    std::vector<float> nmi_cpu(size_t(s.c) * window), s_cpu(window), g_cpu(window);
    int32_t kept_cpu = -1;
    OK(c, gs_sd_finalize_cpu(s.c, s.kh, s.kw, s.rz, pc_cpu.data(), hist_cpu.data(), tb, 5.0f, s.order, prev.data(),
                             nmi_cpu.data(), s_cpu.data(), g_cpu.data(), &kept_cpu));
    Dev<float> nmi_dev(c, size_t(s.c) * window), s_dev(c, window), g_dev(c, window);
    Dev<int32_t> kept_dev(c, 1);
    g_dev.put(prev);
    OK(c, gs_sd_finalize_cuda(s.c, s.kh, s.kw, s.rz, pc_dev.p, hist_dev.p, tb, 5.0f, s.order, g_dev.p, nmi_dev.p, s_dev.p,
                              g_dev.p, kept_dev.p, nullptr));
    const auto nmi = nmi_dev.get(size_t(s.c) * window), sv = s_dev.get(window), gv = g_dev.get(window);
    for (size_t i = 0; i < nmi.size(); ++i)
        c.check(close(nmi[i], nmi_cpu[i], 1e-6, 1e-5),
                format("nmi[c %zu][%zu]: cuda %.9g, cpu %.9g", i / window, i % window, double(nmi[i]), double(nmi_cpu[i])));
    for (int e = 0; e < window; ++e) {
        c.check(close(sv[e], s_cpu[e], 1e-6, 1e-5), format("s[%d]: cuda %.9g, cpu %.9g", e, double(sv[e]), double(s_cpu[e])));
        c.check(close(gv[e], g_cpu[e], 1e-6, 1e-5), format("g[%d]: cuda %.9g, cpu %.9g", e, double(gv[e]), double(g_cpu[e])));
    }
    c.check(kept_dev.get(1)[0] == kept_cpu, format("g_kept_previous: cuda %d, cpu %d", kept_dev.get(1)[0], kept_cpu));
    const auto counters = gs_emu_get_counters();
    c.detail = format("table_bins %d, %lld pairs binned, %lld launches in phases 2 and 3, g[0] %.4f kept %d", tb, (long long) total,
                      (long long) counters.launches, double(gv[0]), kept_cpu);
}

void add_sd_cases() {
    using D = Data;
    const int P = GS_SD_RANGE_PAIRS, CH = GS_SD_RANGE_CHANNEL, F = GS_SD_RANGE_FIXED;
    const int NCHW = GS_SD_LAYOUT_NCHW, NHWC = GS_SD_LAYOUT_NHWC;
    struct Named {
        const char* name;
        SdCase s;
    };
    //  device n  c  h   w   layout kh kw ph pw bins range rz data batches extra lo hi order
    const Named list[] = {
        {"reference-3x3", {kH100, 2, 3, 14, 14, NCHW, 3, 3, 1, 1, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"reference-3x3-nhwc", {kH100, 2, 3, 13, 11, NHWC, 3, 3, 1, 1, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"reference-relu-remove-zeros", {kH100, 2, 2, 16, 16, NCHW, 3, 3, 1, 1, 0, P, 1, D::Relu, 1, 0, 0, 0, 0}},
        {"reference-signed-zeros", {kH100, 1, 2, 12, 12, NCHW, 3, 3, 1, 1, 0, P, 0, D::SignedZeros, 1, 0, 0, 0, 0}},
        {"reference-integers-ties", {kH100, 2, 2, 9, 9, NCHW, 3, 3, 1, 1, 0, P, 0, D::Integers, 1, 0, 0, 0, 0}},
        {"reference-constant-channel", {kH100, 2, 2, 8, 8, NCHW, 3, 3, 1, 1, 0, P, 0, D::ConstantChannel, 1, 0, 0, 0, 0}},
        {"reference-constant-channel-rz", {kH100, 2, 2, 8, 8, NCHW, 3, 3, 1, 1, 0, P, 1, D::ConstantChannel, 1, 0, 0, 0, 1}},
        {"reference-1x1-plane", {kH100, 3, 2, 1, 1, NCHW, 3, 3, 1, 1, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"reference-no-padding", {kH100, 1, 2, 7, 9, NCHW, 3, 3, 0, 0, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"reference-3x5-pad2", {kH100, 1, 2, 10, 12, NCHW, 3, 5, 2, 1, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"reference-7x7", {kH100, 1, 2, 12, 12, NCHW, 7, 7, 3, 3, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"reference-two-batches", {kH100, 2, 2, 10, 10, NCHW, 3, 3, 1, 1, 0, P, 0, D::Normal, 2, 0, 0, 0, 0}},
        {"reference-wide-plane-tiles", {kH100, 1, 1, 3, 300, NCHW, 3, 3, 1, 1, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"reference-tall-plane-tiles", {kH100, 1, 1, 80, 40, NCHW, 3, 3, 1, 1, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"reference-larger-table", {kH100, 1, 2, 9, 9, NCHW, 3, 3, 1, 1, 0, P, 0, D::Normal, 1, 5, 0, 0, 0}},
        {"paper-order", {kH100, 2, 3, 9, 9, NCHW, 3, 3, 1, 1, 0, P, 0, D::Normal, 1, 0, 0, 0, GS_SD_ORDER_PAPER}},
        {"fixed64-channel", {kH100, 2, 2, 12, 12, NCHW, 3, 3, 1, 1, 64, CH, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"fixed64-channel-relu-rz", {kH100, 2, 2, 12, 12, NCHW, 3, 3, 1, 1, 64, CH, 1, D::Relu, 1, 0, 0, 0, 0}},
        {"fixed64-pairs", {kH100, 1, 2, 10, 10, NCHW, 3, 3, 1, 1, 64, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"fixed16-range-drops", {kH100, 2, 2, 10, 10, NCHW, 3, 3, 1, 1, 16, F, 0, D::Normal, 1, 0, -1.0f, 1.5f, 0}},
        {"fixed16-range-nhwc-rz", {kH100, 2, 3, 9, 7, NHWC, 3, 3, 1, 1, 16, F, 1, D::Relu, 2, 0, 0.0f, 2.0f, 0}},
        {"fixed256-sliced", {kH100, 1, 2, 10, 10, NCHW, 3, 3, 1, 1, 256, CH, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"fixed256-sliced-fixed-range", {kH100, 1, 1, 9, 9, NCHW, 3, 5, 1, 2, 256, F, 0, D::Normal, 1, 0, -2.0f, 2.0f, 0}},
        {"small-reference-4-copies", {kSmall, 2, 2, 12, 12, NCHW, 3, 3, 1, 1, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"small-reference-5x5-aggregate", {kSmall, 1, 2, 14, 14, NCHW, 5, 5, 2, 2, 0, P, 0, D::Relu, 1, 0, 0, 0, 0}},
        {"small-fixed32-channel", {kSmall, 2, 2, 11, 11, NCHW, 3, 3, 1, 1, 32, CH, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"tiny-reference-sliced", {kTiny, 1, 2, 12, 12, NCHW, 5, 5, 2, 2, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"tiny-big-stage-one-block-per-sm", {kTiny, 1, 1, 40, 62, NCHW, 3, 3, 1, 1, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"tiny-fixed64-sliced-staged", {kTiny, 1, 2, 9, 9, NCHW, 3, 3, 1, 1, 64, CH, 1, D::Relu, 1, 0, 0, 0, 0}},
        {"many-sms-one-tile-per-block", {kMany, 3, 2, 20, 20, NCHW, 3, 3, 1, 1, 0, P, 0, D::Normal, 1, 0, 0, 0, 0}},
        {"one-sm-many-tiles-per-block", {kOne, 4, 2, 30, 30, NCHW, 3, 3, 1, 1, 0, P, 1, D::Relu, 1, 0, 0, 0, 0}},
        {"nonfinite-input-counted", {kH100, 2, 2, 8, 8, NCHW, 3, 3, 1, 1, 0, P, 0, D::NonFinite, 1, 0, 0, 0, 0}},
        {"nonfinite-input-counted-nhwc-channel", {kH100, 2, 3, 8, 8, NHWC, 3, 3, 1, 1, 32, CH, 1, D::NonFinite, 1, 0, 0, 0, 0}},
    };
    for (const auto& e : list) {
        const SdCase s = e.s;
        add(std::string("spatial_dependence/") + e.name, [s](Context& c) {
            try {
                run_sd(c, s);
            } catch (Failure& f) {
                f.message += " [" + describe(s) + "]";
                throw;
            }
        });
    }
}

// =================================================================================================
// PowerGrad
// =================================================================================================

enum class Rows { Normal, Huge, NonFinite, BadLabels };

struct PgCase {
    int rows, classes;
    bool probs;
    int reduction;
    bool ignore;
    float alpha, smoothing;
    int misalign;  // floats by which logits / grad / targets are shifted off 16-byte alignment
    bool in_place;
    Rows kind;
    // Non-finite targets in some rows: CUDA only (device targets are seen by the kernel alone; host
    // targets are checked before the native call, so the CPU twin does not test them).
    bool nan_targets = false;
};

std::string describe(const PgCase& p) {
    static const char* kinds[] = {"normal", "huge-finite", "nonfinite", "bad-labels"};
    return format("%d x %d %s %s%s alpha %g smoothing %g misalign %d%s rows %s", p.rows, p.classes,
                  p.probs ? "targets" : "labels", p.reduction == 0 ? "mean" : p.reduction == 1 ? "sum" : "none",
                  p.ignore ? " ignore" : "", double(p.alpha), double(p.smoothing), p.misalign, p.in_place ? " in-place" : "",
                  kinds[int(p.kind)]);
}

struct PgData {
    std::vector<float> z, t;
    std::vector<int32_t> y;
};

PgData pg_input(Context& c, const PgCase& p) {
    PgData d;
    const size_t n = size_t(p.rows) * p.classes;
    d.z.resize(n);
    for (auto& v : d.z) v = float(3.0 * c.normal());
    if (p.kind == Rows::Huge) {
        // Finite rows of any magnitude (the one non-finite rule): each row gets one pattern.
        for (int r = 0; r < p.rows; ++r) {
            float* z = d.z.data() + size_t(r) * p.classes;
            switch (r % 4) {
                case 0:
                    z[0] = 3e38f;
                    if (p.classes > 1) z[1] = -3e38f;
                    break;
                case 1: std::fill(z, z + p.classes, 1e38f); break;
                case 2:
                    z[c.below(p.classes)] = FLT_MAX;
                    z[c.below(p.classes)] = -FLT_MAX;
                    break;
                case 3:
                    for (int i = 0; i < p.classes; ++i) z[i] = float((c.uniform() - 0.5) * 6e38);
                    break;
            }
        }
    }
    if (p.kind == Rows::NonFinite) {
        const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
        for (int r = 0; r < p.rows; ++r) {
            float* z = d.z.data() + size_t(r) * p.classes;
            switch (r % 5) {
                case 0: z[c.below(p.classes)] = nan; break;
                case 1: z[c.below(p.classes)] = inf; break;
                case 2: z[c.below(p.classes)] = -inf; break;
                case 3: std::fill(z, z + p.classes, -inf); break;
                default: break;  // a finite row among them
            }
        }
    }
    if (p.probs) {
        d.t.resize(n);
        for (int r = 0; r < p.rows; ++r) {
            float* t = d.t.data() + size_t(r) * p.classes;
            double sum = 0;
            for (int i = 0; i < p.classes; ++i) sum += (t[i] = float(c.uniform() < 0.3 ? 0.0 : c.uniform()));
            if (sum == 0) t[0] = 1.0f, sum = 1;
            for (int i = 0; i < p.classes; ++i) t[i] = float(t[i] / sum);
            // Targets hold NaN / inf in some rows of the non-finite case: such rows are non-finite too.
            if (p.nan_targets && r % 5 == 4 && r % 2 == 0)
                t[c.below(p.classes)] = std::numeric_limits<float>::quiet_NaN();
        }
    } else {
        d.y.resize(p.rows);
        for (auto& v : d.y) v = c.below(p.classes);
        if (p.ignore)
            for (int r = 1; r < p.rows; r += 3) d.y[r] = -100;
        if (p.kind == Rows::BadLabels)
            for (int r = 0; r < p.rows; r += 4) d.y[r] = r % 8 ? p.classes : -7;
    }
    return d;
}

struct PgOracle {
    std::vector<double> grad, row_loss;
    double loss = 0;
    int64_t counted = 0, nonfinite = 0, bad = 0, first_nonfinite = -1, first_bad = -1;
};

// Float64 oracle: the header's rule written plainly.
PgOracle pg_oracle(const PgCase& p, const PgData& d) {
    PgOracle o;
    const int C = p.classes;
    o.grad.assign(size_t(p.rows) * C, 0.0);
    o.row_loss.assign(p.rows, 0.0);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    std::vector<double> pa(C);
    int64_t b = 0;
    for (int r = 0; r < p.rows; ++r) {
        if (!p.probs) {
            const int y = d.y[r];
            if (p.ignore && y == -100) continue;
            if (y < 0 || y >= C) continue;
        }
        ++b;
    }
    const double scale = p.reduction == GS_PG_REDUCTION_MEAN ? (b > 0 ? 1.0 / double(b) : 0.0) : 1.0;
    double sum = 0;
    for (int r = 0; r < p.rows; ++r) {
        const float* z = d.z.data() + size_t(r) * C;
        double* g = o.grad.data() + size_t(r) * C;
        int y = -1;
        if (!p.probs) {
            y = d.y[r];
            if (p.ignore && y == -100) continue;
            if (y < 0 || y >= C) {
                std::fill(g, g + C, nan);
                o.row_loss[r] = nan;
                sum += nan;
                ++o.bad;
                if (o.first_bad < 0) o.first_bad = r;
                continue;
            }
        }
        ++o.counted;
        bool finite = true;
        for (int i = 0; i < C; ++i) finite = finite && std::isfinite(z[i]) && (!p.probs || std::isfinite(d.t[size_t(r) * C + i]));
        if (!finite) {
            std::fill(g, g + C, nan);
            o.row_loss[r] = nan;
            sum += nan;
            ++o.nonfinite;
            if (o.first_nonfinite < 0) o.first_nonfinite = r;
            continue;
        }
        double m = -INFINITY;
        for (int i = 0; i < C; ++i) m = std::max(m, double(z[i]));
        double s = 0, sa = 0;
        for (int i = 0; i < C; ++i) {
            s += std::exp(double(z[i]) - m);
            // alpha (z - m) in double: alpha up to FLT_MAX times a difference up to 2 FLT_MAX stays finite.
            pa[i] = p.alpha == 0.0f ? 1.0 : std::exp(double(p.alpha) * (double(z[i]) - m));
            sa += pa[i];
        }
        const double lse = std::log(s);
        double loss = 0;
        for (int i = 0; i < C; ++i) {
            const double q = (1.0 - double(p.smoothing)) * (p.probs ? double(d.t[size_t(r) * C + i]) : i == y ? 1.0 : 0.0) +
                             double(p.smoothing) / C;
            g[i] = scale * (pa[i] / sa - q);
            if (q != 0) loss += q * (m - double(z[i]) + lse);
        }
        o.row_loss[r] = loss;
        sum += loss;
    }
    o.loss = p.reduction == GS_PG_REDUCTION_MEAN ? (o.counted > 0 ? sum / double(o.counted) : 0.0) : sum;
    return o;
}

struct PgRun {
    std::vector<float> grad, loss;
    gs_pg_report report;
};

void* pg_workspace(Context& c, int64_t* bytes) {
    // One workspace for every case on the device, as the Java layer keeps one per PowerGrad: every
    // call must leave it ready for the next.
    static void* ws = nullptr;
    static int64_t ws_bytes = 0;
    if (ws == nullptr) {
        OK(c, gs_pg_workspace_cuda(&ws_bytes));
        int64_t a = 0;
        OK(c, gs_cuda_malloc(ws_bytes, &a));
        ws = reinterpret_cast<void*>(a);
        OK(c, gs_cuda_memset(ws, 0, ws_bytes, nullptr));
    }
    *bytes = ws_bytes;
    return ws;
}

PgRun pg_cuda(Context& c, const PgCase& p, const PgData& d) {
    const size_t n = size_t(p.rows) * p.classes, pad = 4;
    Dev<float> z(c, n + pad), g(c, n + pad), t(c, p.probs ? n + pad : 1), loss(c, std::max(p.rows, 1));
    Dev<int32_t> y(c, std::max(p.rows, 1));
    Dev<gs_pg_report> report(c, 1);
    float* zp = z.p + p.misalign;
    float* gp = p.in_place ? zp : g.p + p.misalign;
    float* tp = p.probs ? t.p + p.misalign : nullptr;
    std::memcpy(zp, d.z.data(), n * sizeof(float));
    if (p.probs) std::memcpy(tp, d.t.data(), n * sizeof(float));
    if (!p.probs) y.put(d.y);
    int64_t ws_bytes = 0;
    void* ws = pg_workspace(c, &ws_bytes);
    OK(c, gs_pg_cuda(zp, p.rows, p.classes, p.probs ? nullptr : y.p, tp, p.ignore, -100, p.alpha, p.smoothing, p.reduction,
                     gp, loss.p, report.p, ws, ws_bytes, nullptr));
    PgRun r;
    r.grad.assign(gp, gp + n);
    r.loss.assign(loss.p, loss.p + (p.reduction == GS_PG_REDUCTION_NONE ? p.rows : 1));
    r.report = *report.p;
    return r;
}

PgRun pg_cpu(Context& c, const PgCase& p, const PgData& d) {
    PgRun r;
    r.grad = d.z;  // in place, as the CUDA run when asked
    r.loss.assign(p.reduction == GS_PG_REDUCTION_NONE ? std::max(p.rows, 1) : 1, 0.0f);
    std::vector<float> z = d.z;
    OK(c, gs_pg_cpu(p.in_place ? r.grad.data() : z.data(), p.rows, p.classes, p.probs ? nullptr : d.y.data(),
                    p.probs ? d.t.data() : nullptr, p.ignore, -100, p.alpha, p.smoothing, p.reduction, r.grad.data(),
                    r.loss.data(), &r.report));
    return r;
}

// A float loss may read +-inf where the float64 value is within the loss tolerance of FLT_MAX.
bool overflows_float(double v) { return std::fabs(v) > double(FLT_MAX) * (1.0 - 2e-5); }

void compare_pg(Context& c, const char* who, const PgCase& p, const PgRun& r, const PgOracle& o) {
    const gs_pg_report& rep = r.report;
    c.check(rep.counted_rows == o.counted && rep.nonfinite_rows == o.nonfinite && rep.bad_labels == o.bad &&
                rep.first_nonfinite_row == o.first_nonfinite && rep.first_bad_label_row == o.first_bad,
            format("%s report: counted %lld nonfinite %lld (first %lld) bad %lld (first %lld); oracle %lld %lld (%lld) %lld (%lld)",
                   who, (long long) rep.counted_rows, (long long) rep.nonfinite_rows, (long long) rep.first_nonfinite_row,
                   (long long) rep.bad_labels, (long long) rep.first_bad_label_row, (long long) o.counted,
                   (long long) o.nonfinite, (long long) o.first_nonfinite, (long long) o.bad, (long long) o.first_bad));
    c.check(close(rep.loss, o.loss, 1e-5, 1e-5), format("%s loss %.12g, oracle %.12g", who, rep.loss, o.loss));
    const double scale = p.reduction == GS_PG_REDUCTION_MEAN && o.counted + o.bad > 0 ? 1.0 / double(std::max<int64_t>(1, o.counted)) : 1.0;
    for (size_t i = 0; i < o.grad.size(); ++i) {
        if (!close(r.grad[i], o.grad[i], 2e-6 * scale, 1e-5)) {
            c.fail(format("%s grad[%zu][%zu] = %.9g, oracle %.9g", who, i / p.classes, i % p.classes, double(r.grad[i]),
                          o.grad[i]));
        }
    }
    if (p.reduction == GS_PG_REDUCTION_NONE) {
        for (int row = 0; row < p.rows; ++row)
            c.check(close(r.loss[row], o.row_loss[row], 1e-5, 1e-5) ||
                        (std::isinf(r.loss[row]) && overflows_float(o.row_loss[row])),
                    format("%s row loss[%d] %.9g, oracle %.12g", who, row, double(r.loss[row]), o.row_loss[row]));
    } else {
        c.check(close(r.loss[0], o.loss, 1e-5, 1e-5) || (std::isinf(r.loss[0]) && overflows_float(o.loss)),
                format("%s float loss %.9g, oracle %.12g", who, double(r.loss[0]), o.loss));
    }
}

void run_pg(Context& c, const PgCase& p, bool with_cpu) {
    OK(c, gs_cuda_set_device(kH100));
    const PgData d = pg_input(c, p);
    const PgOracle o = pg_oracle(p, d);
    const PgRun gpu = pg_cuda(c, p, d);
    compare_pg(c, "cuda", p, gpu, o);
    if (p.kind == Rows::Huge) {
        for (size_t i = 0; i < gpu.grad.size(); ++i)
            c.check(std::isfinite(gpu.grad[i]), format("cuda grad[%zu][%zu] = %g on a finite row", i / p.classes, i % p.classes,
                                                       double(gpu.grad[i])));
    }
    if (with_cpu) {
        const PgRun cpu = pg_cpu(c, p, d);
        compare_pg(c, "cpu", p, cpu, o);
        c.check(close(gpu.report.loss, cpu.report.loss, 1e-5, 1e-5),
                format("loss: cuda %.12g, cpu %.12g", gpu.report.loss, cpu.report.loss));
    }
    c.detail = format("loss %.6g, counted %lld, nonfinite %lld, bad %lld", gpu.report.loss, (long long) gpu.report.counted_rows,
                      (long long) gpu.report.nonfinite_rows, (long long) gpu.report.bad_labels);
}

void add_pg_cases() {
    const int M = GS_PG_REDUCTION_MEAN, S = GS_PG_REDUCTION_SUM, N = GS_PG_REDUCTION_NONE;
    struct Named {
        std::string name;
        PgCase p;
    };
    std::vector<Named> list;
    // Every kernel and both load paths: class counts at and around each kernel's limit.
    const int label_classes[] = {1, 2, 3, 5, 31, 32, 33, 100, 128, 129, 256, 300, 512, 1000, 1024, 1025, 4096, 5000, 8192,
                                 9000, 16384, 16385, 32768, 32769, 40000};
    for (int C : label_classes) {
        const int rows = C <= 32 ? 300 : C <= 1024 ? 37 : C <= 16384 ? 9 : 3;  // small: tiles of 128 and a partial one
        list.push_back({format("labels-C%d-vec-mean", C), {rows, C, false, M, true, 0.25f, 0.0f, 0, false, Rows::Normal}});
        list.push_back({format("labels-C%d-scalar-in-place-none", C), {rows, C, false, N, false, 1.0f, 0.1f, 1, true, Rows::Normal}});
    }
    const int target_classes[] = {4, 7, 32, 100, 128, 256, 512, 1000, 1024, 2048, 4096, 8192, 8193, 20000};
    for (int C : target_classes) {
        const int rows = C <= 32 ? 150 : C <= 1024 ? 21 : 5;
        list.push_back({format("targets-C%d-vec-sum", C), {rows, C, true, S, false, 0.3f, 0.0f, 0, false, Rows::Normal}});
        list.push_back({format("targets-C%d-scalar-in-place-none", C), {rows, C, true, N, false, 0.25f, 0.2f, 3, true, Rows::Normal}});
    }
    list.push_back({"alpha-zero", {40, 50, false, M, false, 0.0f, 0.0f, 0, false, Rows::Normal}});
    list.push_back({"alpha-max", {40, 50, false, S, false, FLT_MAX, 0.0f, 0, false, Rows::Normal}});
    list.push_back({"all-rows-ignored", {20, 40, false, M, true, 0.25f, 0.0f, 0, false, Rows::Normal}});
    list.push_back({"one-row-one-class", {1, 1, false, M, false, 0.25f, 0.0f, 0, false, Rows::Normal}});
    for (int C : {8, 20, 100, 2000, 20000, 40000}) {
        const int rows = C <= 32 ? 130 : 8;
        list.push_back({format("bad-device-labels-C%d", C), {rows, C, false, M, false, 0.25f, 0.0f, 0, false, Rows::BadLabels}});
    }
    for (const auto& e : list) {
        PgCase p = e.p;
        if (e.name == "all-rows-ignored") {
            add("power_grad/" + e.name, [p](Context& c) {
                // Every label the ignore index: B = 0, loss 0, gradient 0.
                OK(c, gs_cuda_set_device(kH100));
                PgData d = pg_input(c, p);
                std::fill(d.y.begin(), d.y.end(), -100);
                const PgOracle o = pg_oracle(p, d);
                compare_pg(c, "cuda", p, pg_cuda(c, p, d), o);
                compare_pg(c, "cpu", p, pg_cpu(c, p, d), o);
                c.detail = "B = 0";
            });
            continue;
        }
        add("power_grad/" + e.name, [p](Context& c) {
            try {
                run_pg(c, p, true);
            } catch (Failure& f) {
                f.message += " [" + describe(p) + "]";
                throw;
            }
        });
    }

    // The one non-finite rule (issue 10 item 8): NaN / +-inf logits (or targets) make a row non-finite;
    // finite rows of any magnitude keep a finite gradient and the float64 oracle's loss, on CUDA and CPU.
    for (int C : {8, 32, 100, 1000, 2000, 20000, 40000}) {
        for (bool probs : {false, true}) {
            if (probs && C == 40000) continue;
            const int rows = C <= 32 ? 133 : 8;
            const std::pair<float, float> hyper[] = {{0.25f, 0.1f}, {1.0f, 0.0f}, {FLT_MAX, 0.1f}};  // alpha, smoothing
            for (const auto& [alpha, smoothing] : hyper) {
                {
                    PgCase p{rows, C, probs, N, false, alpha, smoothing, 0, false, Rows::Huge};
                    add(format("power_grad/nonfinite-rule/huge-finite-C%d-%s-alpha%g-smoothing%g", C, probs ? "targets" : "labels",
                               double(alpha), double(smoothing)),
                        [p](Context& c) {
                            try {
                                run_pg(c, p, true);
                            } catch (Failure& f) {
                                f.message += " [" + describe(p) + "]";
                                throw;
                            }
                        });
                }
            }
            PgCase p{rows, C, probs, M, false, 0.25f, 0.1f, 0, probs, Rows::NonFinite};
            add(format("power_grad/nonfinite-rule/nan-inf-C%d-%s", C, probs ? "targets" : "labels"), [p](Context& c) {
                try {
                    run_pg(c, p, true);
                } catch (Failure& f) {
                    f.message += " [" + describe(p) + "]";
                    throw;
                }
            });
            if (!probs) continue;
            PgCase q = p;
            q.nan_targets = true;
            add(format("power_grad/nonfinite-rule/nan-inf-device-targets-C%d", C), [q](Context& c) {
                try {
                    run_pg(c, q, false);
                } catch (Failure& f) {
                    f.message += " [" + describe(q) + "]";
                    throw;
                }
            });
        }
    }
}

// =================================================================================================
// Scaled SGD
// =================================================================================================

struct SgdTensor {
    int64_t length;
    int32_t kernel_area, layout;
    int64_t channels;
    int32_t decay;
    int w_shift, g_shift, m_shift;  // floats off 16-byte alignment
};

struct SgdCase {
    std::vector<SgdTensor> tensors;
    float lr, momentum, dampening, weight_decay;
    int nesterov, maximize;
    float unscale;
    int steps;
};

void run_sgd(Context& c, const SgdCase& s) {
    OK(c, gs_cuda_set_device(kH100));
    const int T = int(s.tensors.size());
    const bool mom = s.momentum != 0.0f;
    std::vector<int64_t> lengths;
    std::vector<int32_t> areas, layouts, decays, offsets;
    std::vector<int64_t> channels;
    int32_t scale_count = 0;
    for (const auto& t : s.tensors) {
        lengths.push_back(t.length);
        areas.push_back(t.kernel_area);
        layouts.push_back(t.layout);
        channels.push_back(t.channels);
        decays.push_back(t.decay);
        offsets.push_back(scale_count);
        scale_count += t.kernel_area;
    }
    std::vector<float> scales(std::max(scale_count, 1));
    for (auto& v : scales) v = float(0.2 + 2.0 * c.uniform());

    // Host (CPU) and device copies of every array, equal at the start.
    struct Arrays {
        std::vector<std::vector<float>> w, g, m;
    } host;
    std::vector<std::unique_ptr<Dev<float>>> dev;
    std::vector<int64_t> hw, hg, hm, dw, dg, dm;
    for (int i = 0; i < T; ++i) {
        const auto& t = s.tensors[i];
        std::vector<float> w(t.length + 4), g(t.length + 4), m(t.length + 4, 0.0f);
        for (auto& v : w) v = float(c.normal());
        for (auto& v : g) v = float(c.normal() * 0.1);
        for (auto& v : m) v = float(c.normal() * 0.01);
        host.w.push_back(w);
        host.g.push_back(g);
        host.m.push_back(m);
        for (auto* a : {&w, &g, &m}) {
            dev.push_back(std::make_unique<Dev<float>>(c, size_t(t.length + 4)));
            dev.back()->put(*a);
        }
        float* base_w = dev[3 * i]->p;
        float* base_g = dev[3 * i + 1]->p;
        float* base_m = dev[3 * i + 2]->p;
        hw.push_back(int64_t(reinterpret_cast<intptr_t>(host.w[i].data() + t.w_shift)));
        hg.push_back(int64_t(reinterpret_cast<intptr_t>(host.g[i].data() + t.g_shift)));
        hm.push_back(mom ? int64_t(reinterpret_cast<intptr_t>(host.m[i].data() + t.m_shift)) : 0);
        dw.push_back(int64_t(reinterpret_cast<intptr_t>(base_w + t.w_shift)));
        dg.push_back(int64_t(reinterpret_cast<intptr_t>(base_g + t.g_shift)));
        dm.push_back(mom ? int64_t(reinterpret_cast<intptr_t>(base_m + t.m_shift)) : 0);
    }
    // Vector data in host std::vector is only 8-byte aligned, which the CPU does not care about; the
    // device arrays (256-byte aligned + shift) give the CUDA table its heads.
    int64_t cpu_bytes = 0, cpu_blocks = 0, gpu_bytes = 0, gpu_blocks = 0;
    OK(c, gs_ssgd_table_bytes(T, lengths.data(), 0, &cpu_bytes, &cpu_blocks));
    OK(c, gs_ssgd_table_bytes(T, lengths.data(), 1, &gpu_bytes, &gpu_blocks));
    std::vector<int64_t> cpu_table((cpu_bytes + 7) / 8), gpu_staging((gpu_bytes + 7) / 8);
    OK(c, gs_ssgd_table_build(T, hw.data(), hg.data(), hm.data(), lengths.data(), areas.data(), layouts.data(), channels.data(),
                              decays.data(), offsets.data(), 0, cpu_table.data(), cpu_bytes));
    OK(c, gs_ssgd_table_build(T, dw.data(), dg.data(), dm.data(), lengths.data(), areas.data(), layouts.data(), channels.data(),
                              decays.data(), offsets.data(), 1, gpu_staging.data(), gpu_bytes));
    Dev<int64_t> gpu_table(c, gpu_staging.size());
    gpu_table.put(gpu_staging);
    Dev<float> gpu_scales(c, scales.size());
    gpu_scales.put(scales);
    int heads = 0, scalar_only = 0;
    for (int i = 0; i < T; ++i) {
        const auto* t = reinterpret_cast<const gs_ssgd_tensor*>(gpu_staging.data()) + i;
        heads += t->head > 0;
        scalar_only += t->head < 0;
    }
    for (int step = 0; step < s.steps; ++step) {
        const int first = step == 0;
        OK(c, gs_ssgd_step_cpu(cpu_table.data(), T, scales.data(), s.lr, s.momentum, s.dampening, s.weight_decay, s.nesterov,
                               s.maximize, s.unscale, first));
        OK(c, gs_ssgd_step_cuda(gpu_table.p, T, gpu_blocks, gpu_scales.p, s.lr, s.momentum, s.dampening, s.weight_decay,
                                s.nesterov, s.maximize, s.unscale, first, nullptr));
        for (int i = 0; i < T; ++i) {
            const auto& t = s.tensors[i];
            const float* cw = host.w[i].data() + t.w_shift;
            const float* gw = dev[3 * i]->p + t.w_shift;
            const float* cm = host.m[i].data() + t.m_shift;
            const float* gm = dev[3 * i + 2]->p + t.m_shift;
            for (int64_t e = 0; e < t.length; ++e) {
                // Bit-identical: the same update expression, no FMA contraction on either side.
                if (std::memcmp(&cw[e], &gw[e], 4) != 0)
                    c.fail(format("step %d tensor %d w[%lld]: cuda %.9g, cpu %.9g", step, i, (long long) e, double(gw[e]),
                                  double(cw[e])));
                if (mom && std::memcmp(&cm[e], &gm[e], 4) != 0)
                    c.fail(format("step %d tensor %d momentum[%lld]: cuda %.9g, cpu %.9g", step, i, (long long) e,
                                  double(gm[e]), double(cm[e])));
            }
            // Nothing outside the tensor was written (the arrays have 4 spare floats).
            const float* cw0 = host.w[i].data();
            const float* gw0 = dev[3 * i]->p;
            for (int64_t e = 0; e < t.length + 4; ++e) {
                if (e >= t.w_shift && e < t.w_shift + t.length) continue;
                c.check(std::memcmp(&cw0[e], &gw0[e], 4) == 0, format("tensor %d: element %lld outside the tensor changed", i, (long long) e));
            }
        }
    }
    c.detail = format("%d tensors, %lld blocks, %d with a scalar head, %d scalar only, %d steps", T, (long long) gpu_blocks,
                      heads, scalar_only, s.steps);
}

void add_sgd_cases() {
    const int OIHW = GS_SSGD_LAYOUT_OIHW, HWIO = GS_SSGD_LAYOUT_HWIO;
    // A model-like list: aligned and misaligned convs (OIHW and HWIO), biases, a tensor over one chunk.
    const std::vector<SgdTensor> model = {
        {64 * 3 * 7 * 7, 49, OIHW, 1, 1, 0, 0, 0},
        {64, 0, OIHW, 1, 0, 0, 0, 0},
        {5, 0, OIHW, 1, 0, 1, 1, 1},
        {3 * 3 * 16 * 8, 9, HWIO, 16 * 8, 1, 2, 2, 2},
        {32768 + 3, 9, OIHW, 1, 1, 3, 3, 3},
        {70001, 25, OIHW, 1, 1, 0, 1, 2},       // arrays not mutually aligned: scalar only
        {1, 9, OIHW, 1, 1, 1, 1, 1},
        {5 * 5 * 7 * 9, 25, HWIO, 63, 0, 1, 0, 3},
    };
    struct Named {
        const char* name;
        SgdCase s;
    };
    const Named list[] = {
        {"plain", {model, 0.1f, 0.0f, 0.0f, 0.0f, 0, 0, 1.0f, 2}},
        {"momentum-decay", {model, 0.1f, 0.9f, 0.0f, 1e-4f, 0, 0, 1.0f, 3}},
        {"nesterov", {model, 0.05f, 0.9f, 0.0f, 5e-4f, 1, 0, 1.0f, 3}},
        {"dampening-maximize-unscale", {model, 0.01f, 0.8f, 0.1f, 1e-3f, 0, 1, 0.5f, 3}},
        {"one-tensor-one-element", {{{1, 0, OIHW, 1, 1, 0, 0, 0}}, 0.1f, 0.9f, 0.0f, 1e-4f, 0, 0, 1.0f, 2}},
    };
    for (const auto& e : list) {
        const SgdCase s = e.s;
        add(std::string("scaled_sgd/") + e.name, [s](Context& c) { run_sgd(c, s); });
    }
}

// =================================================================================================
// Runtime helpers and the host-side defects
// =================================================================================================

void add_runtime_cases() {
    add("runtime/malloc-zero-is-unique-and-freed", [](Context& c) {
        const int64_t before = gs_emu_live_bytes();
        int64_t a = 0, b = 0;
        OK(c, gs_cuda_malloc(0, &a));
        OK(c, gs_cuda_malloc(0, &b));
        c.check(a != 0 && b != 0 && a != b, format("malloc(0): %#llx, %#llx", (long long) a, (long long) b));
        OK(c, gs_cuda_free(reinterpret_cast<void*>(a)));
        OK(c, gs_cuda_free(reinterpret_cast<void*>(b)));
        c.check(gs_emu_live_bytes() == before, "bytes still allocated after free");
    });
    add("runtime/F5-stream-ordered-allocation", [](Context& c) {
        const int64_t before = gs_emu_live_bytes();
        gs_emu_reset_counters();
        int64_t a = 0, b = 0;
        auto* stream = reinterpret_cast<gs_stream>(uintptr_t(0x5000));
        OK(c, gs_cuda_malloc_async(100, &a, stream));
        OK(c, gs_cuda_malloc_async(0, &b, stream));
        c.check(a != 0 && b != 0 && a != b && a % 256 == 0, "stream-ordered addresses");
        OK(c, gs_cuda_free_async(reinterpret_cast<void*>(a), stream));
        OK(c, gs_cuda_free_async(reinterpret_cast<void*>(b), stream));
        c.check(gs_cuda_free_async(reinterpret_cast<void*>(b), stream) == GS_CUDA_ERROR, "a double free was not reported");
        c.check(cudaPeekAtLastError() == cudaSuccess, "the failed free left its error pending");
        const auto k = gs_emu_get_counters();
        c.check(k.stream_mallocs == 3 - 1 && k.stream_frees == 3 && k.mallocs == 0 && k.frees == 0 && k.legacy_stream_operations == 0,
                format("calls: %lld stream mallocs, %lld stream frees, %lld mallocs, %lld frees, %lld on the legacy stream",
                       (long long) k.stream_mallocs, (long long) k.stream_frees, (long long) k.mallocs, (long long) k.frees,
                       (long long) k.legacy_stream_operations));
        c.check(gs_emu_live_bytes() == before, "bytes still allocated");
    });
    add("runtime/memcpy-memset-synchronize", [](Context& c) {
        Dev<int32_t> d(c, 1000);
        std::vector<int32_t> v(1000);
        for (int i = 0; i < 1000; ++i) v[i] = i * 7;
        OK(c, gs_cuda_memcpy(d.p, v.data(), 4000, nullptr));
        OK(c, gs_cuda_memset(d.p + 10, 0xff, 8, nullptr));
        std::vector<int32_t> back(1000);
        OK(c, gs_cuda_memcpy(back.data(), d.p, 4000, nullptr));
        OK(c, gs_cuda_stream_synchronize(nullptr));
        for (int i = 0; i < 1000; ++i) c.check(back[i] == (i == 10 || i == 11 ? -1 : i * 7), format("element %d: %d", i, back[i]));
        OK(c, gs_cuda_memcpy(back.data(), d.p, 0, nullptr));  // zero bytes: nothing, no error
    });
    add("runtime/devices-and-properties", [](Context& c) {
        int32_t n = 0, major = 0, minor = 0, sms = 0;
        int64_t total = 0;
        char name[64];
        OK(c, gs_cuda_device_count(&n));
        c.check(n == GS_EMU_DEVICES, format("device count %d", n));
        OK(c, gs_cuda_device_properties(kSmall, name, sizeof name, &major, &minor, &total, &sms));
        c.check(major == 9 && sms == 2 && std::strstr(name, "emulation") != nullptr, format("properties: %s %d.%d %d SMs", name, major, minor, sms));
    });
    // F1: an error is consumed where it is reported, so it cannot surface again at the next launch.
    add("runtime/F1-failed-calls-leave-no-pending-error", [](Context& c) {
        c.check(gs_cuda_free(reinterpret_cast<void*>(uintptr_t(0x10))) == GS_CUDA_ERROR, "freeing a wild pointer succeeded");
        c.check(cudaPeekAtLastError() == cudaSuccess, "gs_cuda_free left its error pending");
        c.check(gs_cuda_set_device(99) == GS_CUDA_ERROR, "cudaSetDevice(99) succeeded");
        c.check(cudaPeekAtLastError() == cudaSuccess, "gs_cuda_set_device left its error pending");
        gs_emu_fail_next_mallocs(1);
        int64_t a = 0;
        c.check(gs_cuda_malloc(64, &a) == GS_CUDA_ERROR, "injected malloc failure not reported");
        c.check(cudaPeekAtLastError() == cudaSuccess, "gs_cuda_malloc left its error pending");
    });
    // F1: a kernel queued after someone else's failed runtime call reports success, and runs once.
    add("runtime/F1-launch-after-foreign-error-reports-success", [](Context& c) {
        OK(c, gs_cuda_set_device(kH100));
        SgdCase s{{{1000, 9, GS_SSGD_LAYOUT_OIHW, 1, 1, 0, 0, 0}}, 0.1f, 0.0f, 0.0f, 0.0f, 0, 0, 1.0f, 1};
        // The host framework's own failed call (not through gradshape) leaves its error pending.
        void* p = nullptr;
        gs_emu_fail_next_mallocs(1);
        c.check(cudaMalloc(&p, 1 << 20) == cudaErrorMemoryAllocation, "injected failure missing");
        c.check(cudaPeekAtLastError() == cudaErrorMemoryAllocation, "the foreign error is not pending");
        // run_sgd compares one step with the CPU's: a launch reported as failed fails the case; a
        // retried step would have updated twice.
        run_sgd(c, s);
        cudaSetDevice(99);  // pending again, for PowerGrad in place: its gradient must be transformed once
        PgCase p2{10, 100, false, GS_PG_REDUCTION_MEAN, false, 0.25f, 0.0f, 0, true, Rows::Normal};
        run_pg(c, p2, false);
        cudaSetDevice(99);
        SdCase sd{kH100, 1, 1, 8, 8, GS_SD_LAYOUT_NCHW, 3, 3, 1, 1, 0, GS_SD_RANGE_PAIRS, 0, Data::Normal, 1, 0, 0, 0, 0};
        run_sd(c, sd);
        c.detail = "ssgd, power_grad in place and spatial dependence launched after a pending foreign error";
    });
    // F9: device attributes, kernel attributes and occupancy are asked once per device.
    add("runtime/F9-attributes-cached-per-device", [](Context& c) {
        OK(c, gs_cuda_set_device(kCache));
        SdCase s{kCache, 1, 2, 10, 10, GS_SD_LAYOUT_NCHW, 3, 3, 1, 1, 0, GS_SD_RANGE_PAIRS, 0, Data::Normal, 1, 0, 0, 0, 0};
        run_sd(c, s);  // first calls on this device: queries allowed
        PgCase p{10, 100, false, GS_PG_REDUCTION_SUM, false, 0.5f, 0.0f, 0, false, Rows::Normal};
        OK(c, gs_cuda_set_device(kCache));
        {
            const PgData d = pg_input(c, p);
            Dev<float> z(c, 1000), g(c, 1000), loss(c, 1);
            Dev<int32_t> y(c, 10);
            Dev<gs_pg_report> rep(c, 1);
            z.put(d.z);
            y.put(d.y);
            int64_t ws_bytes = 0;
            OK(c, gs_pg_workspace_cuda(&ws_bytes));
            Dev<char> ws(c, size_t(ws_bytes));
            OK(c, gs_cuda_memset(ws.p, 0, ws_bytes, nullptr));
            OK(c, gs_pg_cuda(z.p, 10, 100, y.p, nullptr, 0, 0, 0.5f, 0.0f, GS_PG_REDUCTION_SUM, g.p, loss.p, rep.p, ws.p, ws_bytes, nullptr));
            gs_emu_reset_counters();
            for (int i = 0; i < 3; ++i) {
                OK(c, gs_pg_workspace_cuda(&ws_bytes));
                OK(c, gs_pg_cuda(z.p, 10, 100, y.p, nullptr, 0, 0, 0.5f, 0.0f, GS_PG_REDUCTION_SUM, g.p, loss.p, rep.p, ws.p,
                                 ws_bytes, nullptr));
            }
            const auto k = gs_emu_get_counters();
            c.check(k.device_attribute_queries == 0 && k.occupancy_queries == 0 && k.func_attribute_queries == 0,
                    format("power_grad asked again: %lld device attributes, %lld occupancy, %lld kernel attributes",
                           (long long) k.device_attribute_queries, (long long) k.occupancy_queries,
                           (long long) k.func_attribute_queries));
        }
        gs_emu_reset_counters();
        run_sd(c, s);
        const auto k = gs_emu_get_counters();
        c.check(k.device_attribute_queries == 0 && k.func_attribute_queries == 0,
                format("spatial dependence asked again: %lld device attributes, %lld kernel attributes",
                       (long long) k.device_attribute_queries, (long long) k.func_attribute_queries));
        c.detail = "second calls on the device: no attribute or occupancy query";
    });
    // F2 (native half): the exchange returns the caller's device, which the Java layer restores.
    add("runtime/F2-exchange-device-returns-previous", [](Context& c) {
        OK(c, gs_cuda_set_device(kSmall));
        int32_t previous = -1;
        OK(c, gs_cuda_exchange_device(kTiny, &previous));
        int now = -1;
        cudaGetDevice(&now);
        c.check(previous == kSmall && now == kTiny, format("previous %d (want %d), now %d (want %d)", previous, kSmall, now, kTiny));
        c.check(gs_cuda_exchange_device(99, &previous) == GS_CUDA_ERROR, "exchange to device 99 succeeded");
        cudaGetDevice(&now);
        c.check(now == kTiny, format("a failed exchange changed the current device to %d", now));
    });
}

}  // namespace

int main(int argc, char** argv) {
    const char* s = std::getenv("GS_EMU_SEED");
    seed = s ? std::strtoull(s, nullptr, 10) : std::random_device{}();
    set_devices();
    add_runtime_cases();
    add_sgd_cases();
    add_sd_cases();
    add_pg_cases();
    std::printf("SEED %llu MODE %s\n", (unsigned long long) seed, gs_emu_mode());
    std::fflush(stdout);
    int passed = 0, failed = 0;
    for (size_t i = 0; i < cases().size(); ++i) {
        const Case& k = cases()[i];
        bool wanted = argc < 2;
        for (int a = 1; a < argc; ++a) wanted = wanted || k.name.find(argv[a]) != std::string::npos;
        if (!wanted) continue;
        Context c;
        c.name = k.name;
        c.rng.seed(seed + 7919 * i);  // each case its own stream: a filtered run sees the same inputs
        const auto start = std::chrono::steady_clock::now();
        try {
            k.run(c);
            const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
            std::printf("PASS %s | %s%s%.0f ms\n", k.name.c_str(), c.detail.c_str(), c.detail.empty() ? "" : ", ", ms);
            ++passed;
        } catch (const Failure& f) {
            std::printf("FAIL %s | %s (GS_EMU_SEED=%llu)\n", k.name.c_str(), f.message.c_str(), (unsigned long long) seed);
            ++failed;
        }
        std::fflush(stdout);
    }
    std::printf("SUMMARY %d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
