// Spatial dependence (SGS) on the CPU: the three phases of gradshape/spatial_dependence.h.
//
// Work is split into tasks of (channel, run of samples). A task copies one padded channel plane at a
// time into a private buffer whose zero border is written once, so the padding costs nothing per pair
// and NCHW / NHWC differ only in that copy. Phase 2 bins every value of the plane once per distinct
// (lo, hi, B) of the channel (once in all for fixed bins with a channel or fixed range, twice per
// displacement in the reference mode, whose ranges differ per displacement and side), then counts
// each displacement with one gather and one increment per pair into a private int32 table. Dropped
// values (outside the range, or zero when zeros are removed) get the spare bin B, so the pair loop
// has no branch; the spare row and column are left out when the table is added to the int64 state.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "core/parallel.hpp"
#include "core/status.hpp"
#include "gradshape.h"

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int kMaxBins = 256;
// Sturges' rule on at most 2^62 pairs needs 63 bins; anything above the fixed-bin limit is an error.
constexpr int kMaxTableBins = kMaxBins;

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

inline v4f load4(const float* p) {
    v4f v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline v4f splat(float x) { return v4f{x, x, x, x}; }

// Smallest k with 2^k >= n (0 for n <= 1): numpy's ceil(log2(n)) without the float rounding.
inline int ceil_log2(int64_t n) {
    return n <= 1 ? 0 : 64 - __builtin_clzll(uint64_t(n - 1));
}

struct Geometry {
    int64_t batch, channels, height, width;
    int layout;
    int kh, kw, ry, rx, d;  // d: displacements computed (first half of the window)
    int64_t hp, wp;

    int dy(int u) const { return u / kw - ry; }
    int dx(int u) const { return u % kw - rx; }
};

// The rectangle of P positions of displacement (dy, dx) in the padded plane; Q = P + dy * wp + dx.
struct Rect {
    int64_t i0, i1, j0, j1;
    bool empty() const { return i0 >= i1 || j0 >= j1; }
    int64_t size() const { return empty() ? 0 : (i1 - i0) * (j1 - j0); }
};

inline Rect rect_of(const Geometry& g, int dy, int dx) {
    return Rect{std::max(0, -dy), g.hp - std::max(0, dy), std::max(0, -dx), g.wp - std::max(0, dx)};
}

int check_geometry(const char* fn, const float* x, int32_t batch, int32_t channels, int32_t height, int32_t width,
                   int32_t layout, int32_t kernel_h, int32_t kernel_w, int32_t pad_h, int32_t pad_w, Geometry* g) {
    if (!x) return gs::fail(GS_INVALID_ARGUMENT, "%s: x is NULL", fn);
    if (batch < 1 || channels < 1 || height < 1 || width < 1)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: empty shape %d x %d x %d x %d", fn, batch, channels, height, width);
    if (layout != GS_SD_LAYOUT_NCHW && layout != GS_SD_LAYOUT_NHWC)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: unknown layout %d", fn, layout);
    if (kernel_h < 3 || kernel_w < 3 || kernel_h % 2 == 0 || kernel_w % 2 == 0)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: kernel %d x %d is not odd and >= 3", fn, kernel_h, kernel_w);
    if (pad_h < 0 || pad_w < 0) return gs::fail(GS_INVALID_ARGUMENT, "%s: negative padding %d, %d", fn, pad_h, pad_w);
    g->batch = batch;
    g->channels = channels;
    g->height = height;
    g->width = width;
    g->layout = layout;
    g->kh = kernel_h;
    g->kw = kernel_w;
    g->ry = (kernel_h - 1) / 2;
    g->rx = (kernel_w - 1) / 2;
    g->d = (kernel_h * kernel_w - 1) / 2;
    g->hp = int64_t(height) + 2 * int64_t(pad_h);
    g->wp = int64_t(width) + 2 * int64_t(pad_w);
    // Private int32 tables take one plane's pairs at a time between flushes.
    if (g->hp * g->wp > INT32_MAX)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: padded plane %lld x %lld exceeds 2^31 - 1 positions", fn,
                        (long long) g->hp, (long long) g->wp);
    return GS_OK;
}

// Tasks of (channel, run of samples): one run per channel when there are enough channels to keep every
// thread busy (no merging between tasks then), more runs when channels are few.
struct Split {
    int64_t runs, tasks;
    int64_t channel(int64_t t) const { return t / runs; }
    int64_t first(int64_t t, int64_t batch) const { return batch * (t % runs) / runs; }
    int64_t last(int64_t t, int64_t batch) const { return batch * (t % runs + 1) / runs; }
};

inline Split split_of(const Geometry& g) {
    int64_t want = 2 * int64_t(gs::thread_count());
    int64_t runs = std::min<int64_t>(g.batch, std::max<int64_t>(1, (want + g.channels - 1) / g.channels));
    return Split{runs, g.channels * runs};
}

// A padded channel plane with its zero border written once; load() replaces the interior.
class Plane {
public:
    explicit Plane(const Geometry& g, int pad_h, int pad_w)
        : g_(g), ph_(pad_h), pw_(pad_w), values_(size_t(g.hp * g.wp), 0.0f) {}

    const float* data() const { return values_.data(); }

    // Loads sample n of channel c; returns the number of NaN / infinite values when count is set.
    int64_t load(const float* x, int64_t n, int64_t c, bool count) {
        int64_t bad = 0;
        float* dst = values_.data() + ph_ * g_.wp + pw_;
        if (g_.layout == GS_SD_LAYOUT_NCHW) {
            const float* src = x + (n * g_.channels + c) * g_.height * g_.width;
            for (int64_t i = 0; i < g_.height; ++i) {
                std::memcpy(dst + i * g_.wp, src + i * g_.width, size_t(g_.width) * sizeof(float));
                if (count) bad += nonfinite(src + i * g_.width, g_.width);
            }
        } else {
            const float* src = x + n * g_.height * g_.width * g_.channels + c;
            for (int64_t i = 0; i < g_.height; ++i) {
                float* row = dst + i * g_.wp;
                const float* s = src + i * g_.width * g_.channels;
                for (int64_t j = 0; j < g_.width; ++j) row[j] = s[j * g_.channels];
                if (count) bad += nonfinite(row, g_.width);
            }
        }
        return bad;
    }

private:
    static int64_t nonfinite(const float* v, int64_t n) {
        int64_t bad = 0;
        for (int64_t j = 0; j < n; ++j) {
            uint32_t bits;
            std::memcpy(&bits, v + j, sizeof bits);
            bad += (bits & 0x7f800000u) == 0x7f800000u;
        }
        return bad;
    }

    const Geometry& g_;
    int64_t ph_, pw_;
    std::vector<float> values_;
};

inline void min_max(const float* v, int64_t n, float& mn, float& mx) {
    v4f vmn = splat(mn), vmx = splat(mx);
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        v4f a = load4(v + j);
        vmn = a < vmn ? a : vmn;
        vmx = a > vmx ? a : vmx;
    }
    for (int l = 0; l < 4; ++l) {
        mn = std::min(mn, vmn[l]);
        mx = std::max(mx, vmx[l]);
    }
    for (; j < n; ++j) {
        mn = std::min(mn, v[j]);
        mx = std::max(mx, v[j]);
    }
}

// min / max over the non-zero values.
inline void min_max_nonzero(const float* v, int64_t n, float& mn, float& mx) {
    v4f vmn = splat(mn), vmx = splat(mx);
    const v4f zero = splat(0.0f), inf = splat(kInf), ninf = splat(-kInf);
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        v4f a = load4(v + j);
        v4i keep = a != zero;
        v4f lo = keep ? a : inf, hi = keep ? a : ninf;
        vmn = lo < vmn ? lo : vmn;
        vmx = hi > vmx ? hi : vmx;
    }
    for (int l = 0; l < 4; ++l) {
        mn = std::min(mn, vmn[l]);
        mx = std::max(mx, vmx[l]);
    }
    for (; j < n; ++j) {
        if (v[j] != 0.0f) {
            mn = std::min(mn, v[j]);
            mx = std::max(mx, v[j]);
        }
    }
}

// Zero removal: count of pairs with both values non-zero, and (when ranges) their P and Q ranges.
struct PairScan {
    int64_t count = 0;
    float p_min = kInf, p_max = -kInf, q_min = kInf, q_max = -kInf;
};

inline void scan_nonzero_pairs(const float* p, const float* q, int64_t n, bool ranges, PairScan& s) {
    const v4f zero = splat(0.0f), inf = splat(kInf), ninf = splat(-kInf);
    v4f pmn = inf, pmx = ninf, qmn = inf, qmx = ninf;
    v4i cnt = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        v4f a = load4(p + j), b = load4(q + j);
        v4i keep = (a != zero) & (b != zero);
        cnt -= keep;  // keep lanes are -1
        if (ranges) {
            v4f alo = keep ? a : inf, ahi = keep ? a : ninf, blo = keep ? b : inf, bhi = keep ? b : ninf;
            pmn = alo < pmn ? alo : pmn;
            pmx = ahi > pmx ? ahi : pmx;
            qmn = blo < qmn ? blo : qmn;
            qmx = bhi > qmx ? bhi : qmx;
        }
    }
    for (int l = 0; l < 4; ++l) {
        s.count += cnt[l];
        s.p_min = std::min(s.p_min, pmn[l]);
        s.p_max = std::max(s.p_max, pmx[l]);
        s.q_min = std::min(s.q_min, qmn[l]);
        s.q_max = std::max(s.q_max, qmx[l]);
    }
    for (; j < n; ++j) {
        if (p[j] != 0.0f && q[j] != 0.0f) {
            ++s.count;
            s.p_min = std::min(s.p_min, p[j]);
            s.p_max = std::max(s.p_max, p[j]);
            s.q_min = std::min(s.q_min, q[j]);
            s.q_max = std::max(s.q_max, q[j]);
        }
    }
}

// Per task phase-1 results, merged into the state after the parallel part.
struct TaskStats {
    std::vector<int64_t> count;  // [d]
    std::vector<float> range;    // [d][4]
    float ch_min = kInf, ch_max = -kInf;
    int64_t nonfinite = 0;
};

void stats_task(const Geometry& g, int pad_h, int pad_w, const float* x, int64_t c, int64_t n0, int64_t n1,
                int range_mode, bool remove_zeros, TaskStats& out) {
    const int d = g.d;
    out.count.assign(size_t(d), 0);
    out.range.assign(size_t(d) * 4, 0.0f);
    for (int u = 0; u < d; ++u) {
        out.range[4 * u + 0] = out.range[4 * u + 2] = kInf;
        out.range[4 * u + 1] = out.range[4 * u + 3] = -kInf;
    }
    Plane plane(g, pad_h, pad_w);
    const float* xp = plane.data();
    const bool pair_ranges = range_mode == GS_SD_RANGE_PAIRS;
    // Without zero removal the P / Q ranges are min / max over rectangles of the plane: rows of
    // min / max per column window first (one per dx), then per displacement over its rows.
    const int nx = 2 * g.rx + 1;
    std::vector<float> row_min, row_max;
    if (pair_ranges && !remove_zeros) {
        row_min.resize(size_t(g.hp * nx));
        row_max.resize(size_t(g.hp * nx));
    }
    for (int64_t n = n0; n < n1; ++n) {
        out.nonfinite += plane.load(x, n, c, true);
        if (range_mode == GS_SD_RANGE_CHANNEL) {
            if (remove_zeros) min_max_nonzero(xp, g.hp * g.wp, out.ch_min, out.ch_max);
            else min_max(xp, g.hp * g.wp, out.ch_min, out.ch_max);
        }
        if (!remove_zeros) {
            for (int u = 0; u < d; ++u) out.count[u] += rect_of(g, g.dy(u), g.dx(u)).size();
            if (!pair_ranges) continue;
            for (int64_t i = 0; i < g.hp; ++i) {
                for (int dx = -g.rx; dx <= g.rx; ++dx) {
                    float mn = kInf, mx = -kInf;
                    int64_t j0 = std::max(0, -dx), j1 = g.wp - std::max(0, dx);
                    if (j0 < j1) min_max(xp + i * g.wp + j0, j1 - j0, mn, mx);
                    row_min[i * nx + dx + g.rx] = mn;
                    row_max[i * nx + dx + g.rx] = mx;
                }
            }
            for (int u = 0; u < d; ++u) {
                for (int side = 0; side < 2; ++side) {
                    int dy = side == 0 ? g.dy(u) : -g.dy(u), dx = side == 0 ? g.dx(u) : -g.dx(u);
                    Rect r = rect_of(g, dy, dx);
                    if (r.empty()) continue;
                    float& mn = out.range[4 * u + 2 * side];
                    float& mx = out.range[4 * u + 2 * side + 1];
                    for (int64_t i = r.i0; i < r.i1; ++i) {
                        mn = std::min(mn, row_min[i * nx + dx + g.rx]);
                        mx = std::max(mx, row_max[i * nx + dx + g.rx]);
                    }
                }
            }
        } else {
            for (int u = 0; u < d; ++u) {
                Rect r = rect_of(g, g.dy(u), g.dx(u));
                if (r.empty()) continue;
                const int64_t off = g.dy(u) * g.wp + g.dx(u);
                PairScan s;
                for (int64_t i = r.i0; i < r.i1; ++i) {
                    const float* p = xp + i * g.wp + r.j0;
                    scan_nonzero_pairs(p, p + off, r.j1 - r.j0, pair_ranges, s);
                }
                out.count[u] += s.count;
                if (pair_ranges) {
                    float* rg = &out.range[4 * u];
                    rg[0] = std::min(rg[0], s.p_min);
                    rg[1] = std::max(rg[1], s.p_max);
                    rg[2] = std::min(rg[2], s.q_min);
                    rg[3] = std::max(rg[3], s.q_max);
                }
            }
        }
    }
}

// How one axis of one (channel, displacement) is binned; equal parameters share one binned plane.
struct BinKey {
    double lo, hi;
    int bins;
    bool operator==(const BinKey& o) const { return lo == o.lo && hi == o.hi && bins == o.bins; }
};

// Bins every value of the plane exactly as the header writes it; dropped values get `bins`.
// Compiled for AVX-512 and AVX2 too (chosen at load time), where the compiler vectorises it 8 and
// 4 doubles wide: the baseline build leaves it scalar, a quarter of the reference mode's time. The
// arithmetic is a subtraction then a product, nothing to contract into an FMA: the same bins in
// every copy.
#if defined(__x86_64__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void bin_plane(const float* v, int64_t n, const BinKey& key, bool inclusive, bool remove_zeros, uint16_t* out) {
    const double lo = key.lo, hi = key.hi;
    const double scale = double(key.bins) / (hi - lo);
    const double last = double(key.bins - 1);
    const uint16_t drop = uint16_t(key.bins);
    for (int64_t j = 0; j < n; ++j) {
        const double x = v[j];
        bool keep = lo <= x && (inclusive ? x <= hi : x < hi);
        if (remove_zeros) keep = keep && v[j] != 0.0f;
        // Clamping in double (a NaN goes to the last bin) keeps the int conversion defined for any input.
        double t = keep ? (x - lo) * scale : 0.0;
        t = t < last ? t : last;
        out[j] = keep ? uint16_t(int(t)) : drop;
    }
}

// Adds the pairs of one displacement to a private table of stride bins + 1.
void count_pairs(const uint16_t* bp, const uint16_t* bq, const Geometry& g, const Rect& r, int64_t off, int stride,
                 int32_t* table) {
    const int64_t len = r.j1 - r.j0;
    int32_t* t0 = table;
    int32_t* t1 = table + stride * stride;
    for (int64_t i = r.i0; i < r.i1; ++i) {
        const uint16_t* a = bp + i * g.wp + r.j0;
        const uint16_t* b = bq + i * g.wp + r.j0 + off;
        int64_t j = 0;
        for (; j + 2 <= len; j += 2) {
            ++t0[int32_t(a[j]) * stride + b[j]];
            ++t1[int32_t(a[j + 1]) * stride + b[j + 1]];
        }
        if (j < len) ++t0[int32_t(a[j]) * stride + b[j]];
    }
}

// Two tables per displacement, for even and odd columns: runs of equal pairs (zeros, flat regions)
// then wait on two store-to-load chains instead of one.
constexpr int kWays = 2;

std::mutex channel_locks[64];

struct HistogramArgs {
    const Geometry* g;
    int pad_h, pad_w;
    const float* x;
    int bins, range_mode;
    float range_lo, range_hi;
    bool remove_zeros;
    const int64_t* pair_count;
    const float* ranges;
    int table_bins;
    int64_t* hist;
};

inline int bins_of(const HistogramArgs& a, int64_t c, int u) {
    return a.bins > 0 ? a.bins : 1 + ceil_log2(a.pair_count[c * a.g->d + u]);
}

void histogram_task(const HistogramArgs& a, int64_t c, int64_t n0, int64_t n1, bool shared_channel) {
    const Geometry& g = *a.g;
    const int d = g.d;
    const int64_t plane_size = g.hp * g.wp;
    const bool inclusive = a.range_mode == GS_SD_RANGE_FIXED;

    // Distinct binnings of the channel, and which one P and Q of each displacement use.
    std::vector<BinKey> keys;
    std::vector<int> key_p(size_t(d), -1), key_q(size_t(d), -1), stride(size_t(d), 0);
    std::vector<int64_t> offset(size_t(d), 0);
    int64_t table_size = 0;
    auto key_index = [&](const BinKey& k) {
        for (size_t i = 0; i < keys.size(); ++i)
            if (keys[i] == k) return int(i);
        keys.push_back(k);
        return int(keys.size() - 1);
    };
    for (int u = 0; u < d; ++u) {
        if (a.pair_count[c * d + u] == 0 || rect_of(g, g.dy(u), g.dx(u)).empty()) continue;
        const int b = bins_of(a, c, u);
        const float* rg = a.ranges + (c * d + u) * 4;
        BinKey p, q;
        if (inclusive) {
            p = q = BinKey{double(a.range_lo), double(a.range_hi), b};
        } else {
            p = BinKey{double(rg[0]), double(rg[1]) + 1e-12, b};
            q = BinKey{double(rg[2]), double(rg[3]) + 1e-12, b};
        }
        key_p[u] = key_index(p);
        key_q[u] = key_index(q);
        stride[u] = b + 1;
        offset[u] = table_size;
        table_size += kWays * int64_t(b + 1) * (b + 1);
    }
    if (keys.empty()) return;

    Plane plane(g, a.pad_h, a.pad_w);
    std::vector<uint16_t> binned(keys.size() * size_t(plane_size));
    std::vector<int32_t> table(size_t(table_size), 0);
    int64_t pending = 0;  // pairs per displacement in the private tables since the last flush

    auto flush = [&] {
        std::unique_lock<std::mutex> lock(channel_locks[c % 64], std::defer_lock);
        if (shared_channel) lock.lock();
        for (int u = 0; u < d; ++u) {
            if (key_p[u] < 0) continue;
            const int b = stride[u] - 1;
            int32_t* t = table.data() + offset[u];
            int64_t* h = a.hist + (c * d + u) * int64_t(a.table_bins) * a.table_bins;
            const int32_t cells = stride[u] * stride[u];
            for (int i = 0; i < b; ++i) {
                for (int j = 0; j < b; ++j) {
                    const int32_t k = i * stride[u] + j;
                    h[int64_t(i) * a.table_bins + j] += int64_t(t[k]) + t[k + cells];
                }
            }
            std::fill(t, t + kWays * int64_t(cells), 0);
        }
        pending = 0;
    };

    for (int64_t n = n0; n < n1; ++n) {
        if (pending + plane_size > INT32_MAX) flush();
        plane.load(a.x, n, c, false);
        for (size_t k = 0; k < keys.size(); ++k)
            bin_plane(plane.data(), plane_size, keys[k], inclusive, a.remove_zeros, binned.data() + k * plane_size);
        for (int u = 0; u < d; ++u) {
            if (key_p[u] < 0) continue;
            const Rect r = rect_of(g, g.dy(u), g.dx(u));
            count_pairs(binned.data() + key_p[u] * plane_size, binned.data() + key_q[u] * plane_size, g, r,
                        g.dy(u) * g.wp + g.dx(u), stride[u], table.data() + offset[u]);
        }
        pending += plane_size;
    }
    flush();
}

// h log2 h, from a table for the small counts that fill most histogram cells.
inline double hlog2h(int64_t h) {
    constexpr int kSmall = 4096;
    static const std::vector<double> small = [] {
        std::vector<double> t(kSmall);
        for (int i = 1; i < kSmall; ++i) t[i] = i * std::log2(double(i));
        return t;
    }();
    return h < kSmall ? small[size_t(h)] : double(h) * std::log2(double(h));
}

// Entropy in bits of counts summing to total, given sum h log2 h: -sum (h/T) log2 (h/T).
inline double entropy(double sum_hlogh, int64_t total, int64_t nonzero) {
    // One occupied cell is exactly 0 bits; the subtraction below would leave rounding noise.
    return nonzero <= 1 ? 0.0 : std::log2(double(total)) - sum_hlogh / double(total);
}

// NMI of one table in one pass over its cells.
double nmi_of(const int64_t* table, int tb, bool remove_zeros, std::vector<int64_t>& rows, std::vector<int64_t>& cols) {
    rows.assign(size_t(tb), 0);
    cols.assign(size_t(tb), 0);
    int64_t total = 0, cells = 0;
    double joint = 0.0;
    for (int i = 0; i < tb; ++i) {
        const int64_t* row = table + int64_t(i) * tb;
        int64_t sum = 0;
        for (int j = 0; j < tb; ++j) {
            const int64_t h = (remove_zeros && i == j) ? 0 : row[j];
            if (h == 0) continue;
            sum += h;
            cols[j] += h;
            joint += hlog2h(h);
            ++cells;
        }
        rows[i] = sum;
        total += sum;
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    if (total == 0) return nan;
    const double hpq = entropy(joint, total, cells);
    if (hpq == 0.0) return nan;
    double pr = 0.0, pc = 0.0;
    int64_t nr = 0, nc = 0;
    for (int i = 0; i < tb; ++i) {
        if (rows[i] > 0) {
            pr += hlog2h(rows[i]);
            ++nr;
        }
        if (cols[i] > 0) {
            pc += hlog2h(cols[i]);
            ++nc;
        }
    }
    return (entropy(pr, total, nr) + entropy(pc, total, nc) - hpq) / hpq;
}

}  // namespace

extern "C" {

int gs_sd_stats_cpu(const float* x, int32_t batch, int32_t channels, int32_t height, int32_t width, int32_t layout,
                    int32_t kernel_h, int32_t kernel_w, int32_t pad_h, int32_t pad_w, int32_t range_mode,
                    int32_t remove_zeros, int64_t* pair_count, float* ranges, int64_t* nonfinite) {
    return gs::guarded("gs_sd_stats_cpu", [&]() -> int {
        Geometry g;
        int st = check_geometry("gs_sd_stats_cpu", x, batch, channels, height, width, layout, kernel_h, kernel_w,
                                pad_h, pad_w, &g);
        if (st != GS_OK) return st;
        if (range_mode < GS_SD_RANGE_PAIRS || range_mode > GS_SD_RANGE_FIXED)
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_stats_cpu: unknown range_mode %d", range_mode);
        if (!pair_count || !ranges || !nonfinite)
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_stats_cpu: a state pointer is NULL");
        const Split split = split_of(g);
        std::vector<TaskStats> results(size_t(split.tasks));
        gs::parallel_tasks(split.tasks, [&](int64_t t) {
            stats_task(g, pad_h, pad_w, x, split.channel(t), split.first(t, g.batch), split.last(t, g.batch),
                       range_mode, remove_zeros != 0, results[size_t(t)]);
        });
        for (int64_t t = 0; t < split.tasks; ++t) {
            const TaskStats& r = results[size_t(t)];
            const int64_t c = split.channel(t);
            *nonfinite += r.nonfinite;
            for (int u = 0; u < g.d; ++u) {
                pair_count[c * g.d + u] += r.count[u];
                float* rg = ranges + (c * g.d + u) * 4;
                if (range_mode == GS_SD_RANGE_PAIRS) {
                    rg[0] = std::min(rg[0], r.range[4 * u + 0]);
                    rg[1] = std::max(rg[1], r.range[4 * u + 1]);
                    rg[2] = std::min(rg[2], r.range[4 * u + 2]);
                    rg[3] = std::max(rg[3], r.range[4 * u + 3]);
                } else if (range_mode == GS_SD_RANGE_CHANNEL) {
                    rg[0] = std::min(rg[0], r.ch_min);
                    rg[1] = std::max(rg[1], r.ch_max);
                    rg[2] = std::min(rg[2], r.ch_min);
                    rg[3] = std::max(rg[3], r.ch_max);
                }
            }
        }
        return GS_OK;
    });
}

int gs_sd_histogram_cpu(const float* x, int32_t batch, int32_t channels, int32_t height, int32_t width,
                        int32_t layout, int32_t kernel_h, int32_t kernel_w, int32_t pad_h, int32_t pad_w,
                        int32_t bins, int32_t range_mode, float range_lo, float range_hi, int32_t remove_zeros,
                        const int64_t* pair_count, const float* ranges, int32_t table_bins, int64_t* hist) {
    return gs::guarded("gs_sd_histogram_cpu", [&]() -> int {
        Geometry g;
        int st = check_geometry("gs_sd_histogram_cpu", x, batch, channels, height, width, layout, kernel_h,
                                kernel_w, pad_h, pad_w, &g);
        if (st != GS_OK) return st;
        if (range_mode < GS_SD_RANGE_PAIRS || range_mode > GS_SD_RANGE_FIXED)
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_histogram_cpu: unknown range_mode %d", range_mode);
        if (bins != 0 && (bins < 2 || bins > kMaxBins))
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_histogram_cpu: bins %d is neither 0 nor in 2..%d", bins, kMaxBins);
        if (range_mode == GS_SD_RANGE_FIXED && !(std::isfinite(range_lo) && std::isfinite(range_hi) && range_lo < range_hi))
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_histogram_cpu: fixed range [%g, %g] is not finite and increasing",
                            double(range_lo), double(range_hi));
        if (!pair_count || !ranges || !hist)
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_histogram_cpu: a state pointer is NULL");
        if (table_bins < 1 || table_bins > kMaxTableBins)
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_histogram_cpu: table_bins %d outside 1..%d", table_bins, kMaxTableBins);
        HistogramArgs a{&g, pad_h, pad_w, x, bins, range_mode, range_lo, range_hi, remove_zeros != 0,
                        pair_count, ranges, table_bins, hist};
        for (int64_t c = 0; c < g.channels; ++c) {
            for (int u = 0; u < g.d; ++u) {
                if (pair_count[c * g.d + u] < 0)
                    return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_histogram_cpu: negative pair_count");
                if (pair_count[c * g.d + u] > 0 && bins_of(a, c, u) > table_bins)
                    return gs::fail(GS_INVALID_ARGUMENT,
                                    "gs_sd_histogram_cpu: %d bins for channel %lld, displacement %d exceed table_bins %d",
                                    bins_of(a, c, u), (long long) c, u, table_bins);
            }
        }
        const Split split = split_of(g);
        gs::parallel_tasks(split.tasks, [&](int64_t t) {
            histogram_task(a, split.channel(t), split.first(t, g.batch), split.last(t, g.batch), split.runs > 1);
        });
        return GS_OK;
    });
}

int gs_sd_finalize_cpu(int32_t channels, int32_t kernel_h, int32_t kernel_w, int32_t remove_zeros,
                       const int64_t* pair_count, const int64_t* hist, int32_t table_bins, float k, int32_t order,
                       const float* previous_g, float* nmi, float* s, float* g, int32_t* g_kept_previous) {
    return gs::guarded("gs_sd_finalize_cpu", [&]() -> int {
        if (channels < 1 || kernel_h < 3 || kernel_w < 3 || kernel_h % 2 == 0 || kernel_w % 2 == 0)
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_finalize_cpu: bad shape %d x %d x %d", channels, kernel_h, kernel_w);
        if (table_bins < 1 || table_bins > kMaxTableBins)
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_finalize_cpu: table_bins %d outside 1..%d", table_bins, kMaxTableBins);
        if (!(std::isfinite(k) && k > 0))
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_finalize_cpu: k %g is not finite and > 0", double(k));
        if (order != GS_SD_ORDER_REFERENCE && order != GS_SD_ORDER_PAPER)
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_finalize_cpu: unknown order %d", order);
        if (!pair_count || !hist || !nmi || !s || !g || !g_kept_previous)
            return gs::fail(GS_INVALID_ARGUMENT, "gs_sd_finalize_cpu: a pointer is NULL");
        const int e = kernel_h * kernel_w, d = (e - 1) / 2, centre = d;
        const int64_t cells = int64_t(table_bins) * table_bins;
        gs::parallel_for(channels, 1, [&](int64_t c0, int64_t c1) {
            std::vector<int64_t> rows, cols;
            for (int64_t c = c0; c < c1; ++c) {
                float* out = nmi + c * e;
                for (int u = 0; u < d; ++u) {
                    double v = pair_count[c * d + u] > 0
                                   ? nmi_of(hist + (c * d + u) * cells, table_bins, remove_zeros != 0, rows, cols)
                                   : std::numeric_limits<double>::quiet_NaN();
                    if (remove_zeros && std::isnan(v)) v = 0.0;
                    // u and e - 1 - u are d and -d in row-major order.
                    out[u] = out[e - 1 - u] = float(v);
                }
                out[centre] = 1.0f;
            }
        });
        const double kd = k;
        auto transform = [kd](double x) { return kd * x / ((kd - 1.0) * x + 1.0); };
        std::vector<double> sd(static_cast<size_t>(e));
        for (int i = 0; i < e; ++i) {
            double sum = 0.0;
            int64_t used = 0;
            for (int64_t c = 0; c < channels; ++c) {
                double v = nmi[c * e + i];
                if (std::isnan(v)) continue;
                sum += order == GS_SD_ORDER_REFERENCE ? transform(v) : v;
                ++used;
            }
            double mean = used > 0 ? sum / double(used) : std::numeric_limits<double>::quiet_NaN();
            sd[i] = order == GS_SD_ORDER_REFERENCE ? mean : transform(mean);
        }
        double mean_s = 0.0;
        for (int i = 0; i < e; ++i) mean_s += sd[i];
        mean_s /= e;
        bool finite = true;
        std::vector<float> gv(static_cast<size_t>(e));
        for (int i = 0; i < e; ++i) {
            double gi = sd[i] / mean_s;
            gv[i] = float(gi);
            finite = finite && std::isfinite(gv[i]);
        }
        if (!finite) {
            // previous_g may be g itself: gv is read before g is written.
            for (int i = 0; i < e; ++i) gv[i] = previous_g ? previous_g[i] : 1.0f;
        }
        for (int i = 0; i < e; ++i) {
            s[i] = float(sd[i]);
            g[i] = gv[i];
        }
        *g_kept_previous = finite ? 0 : 1;
        return GS_OK;
    });
}

}  // extern "C"
