// Spatial dependence (SGS) on the GPU: the three phases of gradshape/spatial_dependence.h.
//
// Kernels (all on the caller's stream, no host synchronisation, no allocation):
//
//   sd_stats_kernel      phase 1. One block per (channel, share of the channel's tiles), 512 threads.
//                        A tile is up to 2048 P pixels of one padded sample plane (TR rows x TW columns,
//                        TW <= 256) staged in shared memory with its halo (ry rows above, rx columns on
//                        each side; the first half of the window only looks up and sideways), zeros where
//                        the padded map is padding, so the pair loops have no border tests beyond
//                        "inside the padded map". Per displacement, the warp's pair count is a ballot
//                        popcount and its P / Q min / max are redux.sync on order-preserving integer keys;
//                        the block accumulates in shared memory and flushes once with global atomics.
//                        Without zero removal the pair counts are the closed form N (Hp-|dy|) (Wp-|dx|).
//   sd_histogram_kernel  phase 2. One block per (channel, share of tiles, table slice), 512 threads,
//                        2 blocks per SM. The block's int32 table covers a slice of the rows (u, bP) of
//                        the channel's D x table_bins x table_bins table: the whole table when it fits
//                        (then replicated up to 8 times, lane l counting into copy l % R, which divides
//                        same-cell contention on ReLU-skewed data by R), else the rows are split across
//                        blocks (256 bins: ~100 rows per block), each slice re-reading the input.
//                        When a copy is too small to absorb contention (R < 4), lanes with the same cell
//                        are merged with match.any first (one shared atomic per distinct cell per warp).
//                        Two flavours: values staged and binned per pair with the (channel, displacement)
//                        float64 ranges (reference mode: P and Q ranges differ per displacement), or,
//                        with fixed bins and a channel / fixed range, every staged value binned once
//                        into a uint16 (0xFFFF = dropped) so that a pair costs two shared loads and an
//                        atomic. The block's table is added to the int64 state with one global atomic per
//                        non-zero cell.
//   sd_entropy_kernel    phase 3a. One block per (channel, displacement), 256 threads: T, row and column
//                        sums (shared int64 atomics), then H(P), H(Q), H(P,Q) in float64 and the NMI,
//                        written to d and -d (and the centre 1).
//   sd_combine_kernel    phase 3b. One block of 256 threads: a warp per window entry NaN-means the
//                        channels (T_k before or after), then S, mean(S), G or the previous G.
//
// Exactness: binning uses __dsub_rn / __dmul_rn / __ddiv_rn (no contraction) and truncation, so the
// integer counts equal the CPU's; float outputs (ranges aside) agree to rounding. Ranges hold +0.0 where
// the data has -0.0 (the atomics need one zero).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda_check.cuh"
#include "device_cache.cuh"
#include "gradshape.h"

namespace {

constexpr int kThreads = 512;           // phases 1 and 2
constexpr int kPixelsPerThread = 4;     // P pixels of a tile per thread
constexpr int kTilePixels = kThreads * kPixelsPerThread;
constexpr int kMaxTileWidth = 256;
constexpr int kMaxBins = 256;
constexpr int kMaxCopies = 8;
constexpr int kFinalizeThreads = 256;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr uint16_t kDropped = 0xffff;
// Each block's int32 cells count at most one pair per P pixel it visits; this bounds the pixels.
constexpr long long kMaxPixelsPerBlock = 1LL << 30;

// Tiling of the padded maps of one channel, shared by phases 1 and 2.
struct Geometry {
    int batch, channels, height, width, layout;
    int kh, kw, ry, rx, d;
    int pad_h, pad_w, hp, wp;
    int tile_w, tile_h;         // P pixels of a tile: tile_h x tile_w, at most kTilePixels
    int stage_w, stage_h;       // staged region: tile plus halo
    int tiles_w, tiles_h;       // tiles per sample plane
    long long tiles;            // tiles per channel
    int blocks_per_channel;
};

long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

int check_geometry(const char* fn, int32_t batch, int32_t channels, int32_t height, int32_t width,
                   int32_t layout, int32_t kernel_h, int32_t kernel_w, int32_t pad_h, int32_t pad_w, Geometry& g) {
    if (batch < 1 || channels < 1 || height < 1 || width < 1)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: empty shape %d x %d x %d x %d", fn, batch, channels, height, width);
    if (layout != GS_SD_LAYOUT_NCHW && layout != GS_SD_LAYOUT_NHWC)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: unknown layout %d", fn, layout);
    if (kernel_h < 3 || kernel_w < 3 || kernel_h % 2 == 0 || kernel_w % 2 == 0)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: kernel %d x %d is not odd and >= 3", fn, kernel_h, kernel_w);
    if (pad_h < 0 || pad_w < 0) return gs::fail(GS_INVALID_ARGUMENT, "%s: negative padding %d, %d", fn, pad_h, pad_w);
    const long long hp = height + 2LL * pad_h, wp = width + 2LL * pad_w;
    if (hp * wp > INT32_MAX)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: padded plane %lld x %lld exceeds 2^31 - 1 positions", fn, hp, wp);
    g.batch = batch;
    g.channels = channels;
    g.height = height;
    g.width = width;
    g.layout = layout;
    g.kh = kernel_h;
    g.kw = kernel_w;
    g.ry = (kernel_h - 1) / 2;
    g.rx = (kernel_w - 1) / 2;
    g.d = (kernel_h * kernel_w - 1) / 2;
    g.pad_h = pad_h;
    g.pad_w = pad_w;
    g.hp = int(hp);
    g.wp = int(wp);
    // Balanced tiles: as wide as the plane up to 256 columns, then as many rows as fill 2048 pixels.
    g.tiles_w = int(ceil_div(wp, kMaxTileWidth));
    g.tile_w = int(ceil_div(wp, g.tiles_w));
    const int rows = kTilePixels / g.tile_w;
    g.tiles_h = int(ceil_div(hp, rows));
    g.tile_h = int(ceil_div(hp, g.tiles_h));
    g.stage_w = g.tile_w + 2 * g.rx;
    g.stage_h = g.tile_h + g.ry;
    g.tiles = (long long) batch * g.tiles_h * g.tiles_w;
    return GS_OK;
}

struct DeviceLimits {
    int sms, smem_optin, smem_per_sm;
};

int device_limits(DeviceLimits& l) {
    if (int st = gs::cached_device_attribute(cudaDevAttrMultiProcessorCount, &l.sms)) return st;
    if (int st = gs::cached_device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, &l.smem_optin)) return st;
    return gs::cached_device_attribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor, &l.smem_per_sm);
}

// Blocks per channel: about 4 waves of 2 blocks per SM over the whole grid (short tails, and each block
// still visits many tiles to amortise its table flush), at least one tile each, and few enough pixels
// per block for int32 cells.
int blocks_per_channel(const Geometry& g, long long slices, int sms) {
    long long bpc = ceil_div(8LL * sms, (long long) g.channels * slices);
    if (bpc > g.tiles) bpc = g.tiles;
    const long long need = ceil_div(g.tiles * g.tile_h * g.tile_w, kMaxPixelsPerBlock);
    if (bpc < need) bpc = need;
    return int(bpc < 1 ? 1 : bpc);
}

// ---- Device helpers -----------------------------------------------------------------------------

__host__ __device__ inline size_t align16(size_t bytes) { return (bytes + 15) & ~size_t(15); }

// A total order of floats as signed ints (so min / max become integer redux and atomics).
__device__ __forceinline__ int order_key(float v) {
    const int i = __float_as_int(v);
    return i >= 0 ? i : i ^ 0x7fffffff;
}
__device__ __forceinline__ float from_order_key(int k) { return __int_as_float(k >= 0 ? k : k ^ 0x7fffffff); }

// Float min / max on global memory through integer atomics. Valid for any stored float and any incoming
// value that is not -0.0 (callers canonicalise zeros).
__device__ __forceinline__ void atomic_min_float(float* a, float v) {
    if (v >= 0.0f) atomicMin(reinterpret_cast<int*>(a), __float_as_int(v));
    else atomicMax(reinterpret_cast<unsigned*>(a), __float_as_uint(v));
}
__device__ __forceinline__ void atomic_max_float(float* a, float v) {
    if (v >= 0.0f) atomicMax(reinterpret_cast<int*>(a), __float_as_int(v));
    else atomicMin(reinterpret_cast<unsigned*>(a), __float_as_uint(v));
}

__device__ __forceinline__ void atomic_add_i64(int64_t* a, long long v) {
    atomicAdd(reinterpret_cast<unsigned long long*>(a), static_cast<unsigned long long>(v));
}

// Smallest k with 2^k >= n (0 for n <= 1), as the CPU computes it.
__device__ __forceinline__ int ceil_log2(long long n) { return n <= 1 ? 0 : 64 - __clzll(n - 1); }

// The header's binning: keep iff lo <= v < hi (v <= hi when inclusive), b = min((int)((v-lo)*scale), B-1).
__device__ __forceinline__ int bin_of(double v, double lo, double hi, double scale, int bins, bool inclusive,
                                      bool& keep) {
    keep = lo <= v && (inclusive ? v <= hi : v < hi);
    return min(__double2int_rz(__dmul_rn(__dsub_rn(v, lo), scale)), bins - 1);
}

// Element (n, c, h, w) of x in its layout; h, w inside the unpadded map.
struct Source {
    const float* plane;  // NCHW: the (n, c) plane; NHWC: x + n H W C + c
    int width;
    int step;            // distance between neighbouring columns: 1 (NCHW) or C (NHWC)
    __device__ float at(int h, int w) const { return __ldg(plane + ((long long) h * width + w) * step); }
};

__device__ __forceinline__ Source source_of(const float* x, const Geometry& g, int c, long long n) {
    if (g.layout == GS_SD_LAYOUT_NCHW)
        return Source{x + ((long long) n * g.channels + c) * g.height * g.width, g.width, 1};
    return Source{x + (long long) n * g.height * g.width * g.channels + c, g.width, g.channels};
}

// One tile of channel c: sample n, P rows [i0, i0 + tile_h), P columns [j0, j0 + tile_w) (clipped to the
// padded map), and this thread's P pixels.
struct Tile {
    long long n;
    int i0, j0;
    int i[kPixelsPerThread], j[kPixelsPerThread], slot[kPixelsPerThread];  // padded position, staged index
    bool has[kPixelsPerThread];
};

__device__ __forceinline__ Tile tile_of(const Geometry& g, long long t) {
    Tile tile;
    const int tw = int(t % g.tiles_w);
    const long long rest = t / g.tiles_w;
    tile.i0 = int(rest % g.tiles_h) * g.tile_h;
    tile.n = rest / g.tiles_h;
    tile.j0 = tw * g.tile_w;
    const int rows = min(g.tile_h, g.hp - tile.i0), cols = min(g.tile_w, g.wp - tile.j0);
#pragma unroll
    for (int k = 0; k < kPixelsPerThread; ++k) {
        const int p = int(threadIdx.x) + k * kThreads;
        const int r = p / cols, col = p - r * cols;
        tile.has[k] = p < rows * cols;
        tile.i[k] = tile.i0 + r;
        tile.j[k] = tile.j0 + col;
        // A thread without a k-th pixel reads the first one (any in-stage slot would do).
        tile.slot[k] = tile.has[k] ? (r + g.ry) * g.stage_w + col + g.rx : g.ry * g.stage_w + g.rx;
    }
    return tile;
}

// Stages rows [i0 - ry, i0 + tile_h) and columns [j0 - rx, j0 + tile_w + rx) of the padded map, as
// convert(value), with 0 for padding and for positions outside the padded map (never part of a pair).
template <class T, class Convert>
__device__ __forceinline__ void stage_tile(const float* x, const Geometry& g, int c, const Tile& tile, T* stage,
                                           Convert convert) {
    const Source src = source_of(x, g, c, tile.n);
    const int top = tile.i0 - g.ry - g.pad_h, left = tile.j0 - g.rx - g.pad_w;
    const int total = g.stage_h * g.stage_w;
#pragma unroll 4
    for (int e = threadIdx.x; e < total; e += kThreads) {
        const int sr = e / g.stage_w, sc = e - sr * g.stage_w;
        const int h = top + sr, w = left + sc;
        float v = 0.0f;
        if (unsigned(h) < unsigned(g.height) && unsigned(w) < unsigned(g.width)) v = src.at(h, w);
        stage[e] = convert(v);
    }
}

// ---- Phase 1 ------------------------------------------------------------------------------------

// kCount: count pairs in the loop (zero removal); kPairRanges: P / Q ranges per displacement.
template <bool kCount, bool kPairRanges>
__global__ void __launch_bounds__(kThreads, 2)
sd_stats_kernel(const float* __restrict__ x, Geometry g, bool channel_range, bool remove_zeros,
                int64_t* __restrict__ pair_count, float* __restrict__ ranges, int64_t* __restrict__ nonfinite) {
    extern __shared__ __align__(16) unsigned char smem[];
    unsigned long long* s_count = reinterpret_cast<unsigned long long*>(smem);  // [d]
    int* s_key = reinterpret_cast<int*>(s_count + g.d);                         // [d][4]: order keys
    float* stage = reinterpret_cast<float*>(smem + align16(size_t(g.d) * 24));
    __shared__ unsigned long long s_nonfinite;
    __shared__ int s_channel_key[2];

    const int c = int(blockIdx.x / unsigned(g.blocks_per_channel));
    const int b = int(blockIdx.x % unsigned(g.blocks_per_channel));
    const int lane = threadIdx.x & 31;
    constexpr int kKeyInf = 0x7f800000, kKeyNegInf = int(0xff800000u ^ 0x7fffffffu);

    for (int u = threadIdx.x; u < g.d; u += kThreads) {
        s_count[u] = 0;
        s_key[4 * u + 0] = s_key[4 * u + 2] = kKeyInf;
        s_key[4 * u + 1] = s_key[4 * u + 3] = kKeyNegInf;
        if (!kCount && b == 0) {
            // Without zero removal every pair of the rectangle is used.
            const int dy = u / g.kw - g.ry, dx = u % g.kw - g.rx;
            const long long rows = max(0, g.hp - abs(dy)), cols = max(0, g.wp - abs(dx));
            pair_count[(long long) c * g.d + u] += (long long) g.batch * rows * cols;
        }
    }
    if (threadIdx.x == 0) {
        s_nonfinite = 0;
        s_channel_key[0] = kKeyInf;
        s_channel_key[1] = kKeyNegInf;
    }
    __syncthreads();

    unsigned bad = 0;
    int ch_min = kKeyInf, ch_max = kKeyNegInf;
    // One zero for the order keys and the float atomics.
    auto canonical = [](float v) { return v == 0.0f ? 0.0f : v; };
    for (long long t = b; t < g.tiles; t += g.blocks_per_channel) {
        const Tile tile = tile_of(g, t);
        stage_tile(x, g, c, tile, stage, canonical);
        __syncthreads();

        float p[kPixelsPerThread];
#pragma unroll
        for (int k = 0; k < kPixelsPerThread; ++k) {
            p[k] = stage[tile.slot[k]];
            if (tile.has[k]) {
                bad += !isfinite(p[k]);
                if (channel_range && !(remove_zeros && p[k] == 0.0f)) {
                    ch_min = min(ch_min, order_key(p[k]));
                    ch_max = max(ch_max, order_key(p[k]));
                }
            }
        }
        if (kCount || kPairRanges) {
            for (int u = 0; u < g.d; ++u) {
                const int dy = u / g.kw - g.ry, dx = u % g.kw - g.rx;
                const int offset = dy * g.stage_w + dx;
                unsigned count = 0;
                int pmin = kKeyInf, pmax = kKeyNegInf, qmin = kKeyInf, qmax = kKeyNegInf;
#pragma unroll
                for (int k = 0; k < kPixelsPerThread; ++k) {
                    const float q = stage[tile.slot[k] + offset];
                    bool valid = tile.has[k] && tile.i[k] + dy >= 0 && unsigned(tile.j[k] + dx) < unsigned(g.wp);
                    if (kCount) valid = valid && p[k] != 0.0f && q != 0.0f;
                    if (kCount) count += __popc(__ballot_sync(kFullMask, valid));
                    if (kPairRanges && valid) {
                        pmin = min(pmin, order_key(p[k]));
                        pmax = max(pmax, order_key(p[k]));
                        qmin = min(qmin, order_key(q));
                        qmax = max(qmax, order_key(q));
                    }
                }
                if (kPairRanges) {
                    pmin = __reduce_min_sync(kFullMask, pmin);
                    pmax = __reduce_max_sync(kFullMask, pmax);
                    qmin = __reduce_min_sync(kFullMask, qmin);
                    qmax = __reduce_max_sync(kFullMask, qmax);
                }
                if (lane == 0) {
                    if (kCount && count) atomicAdd(&s_count[u], (unsigned long long) count);
                    if (kPairRanges && pmin != kKeyInf) {
                        atomicMin(&s_key[4 * u + 0], pmin);
                        atomicMax(&s_key[4 * u + 1], pmax);
                        atomicMin(&s_key[4 * u + 2], qmin);
                        atomicMax(&s_key[4 * u + 3], qmax);
                    }
                }
            }
        }
        __syncthreads();  // the next tile overwrites the stage
    }

    bad = __reduce_add_sync(kFullMask, bad);
    if (channel_range) {
        ch_min = __reduce_min_sync(kFullMask, ch_min);
        ch_max = __reduce_max_sync(kFullMask, ch_max);
    }
    if (lane == 0) {
        if (bad) atomicAdd(&s_nonfinite, (unsigned long long) bad);
        if (channel_range && ch_min != kKeyInf) {
            atomicMin(&s_channel_key[0], ch_min);
            atomicMax(&s_channel_key[1], ch_max);
        }
    }
    __syncthreads();

    if (threadIdx.x == 0 && s_nonfinite) atomic_add_i64(nonfinite, (long long) s_nonfinite);
    for (int u = threadIdx.x; u < g.d; u += kThreads) {
        float* r = ranges + ((long long) c * g.d + u) * 4;
        if (kCount && s_count[u]) atomic_add_i64(pair_count + (long long) c * g.d + u, (long long) s_count[u]);
        if (kPairRanges && s_key[4 * u] != kKeyInf) {
            atomic_min_float(r + 0, from_order_key(s_key[4 * u + 0]));
            atomic_max_float(r + 1, from_order_key(s_key[4 * u + 1]));
            atomic_min_float(r + 2, from_order_key(s_key[4 * u + 2]));
            atomic_max_float(r + 3, from_order_key(s_key[4 * u + 3]));
        }
        if (channel_range && s_channel_key[0] != kKeyInf) {
            const float lo = from_order_key(s_channel_key[0]), hi = from_order_key(s_channel_key[1]);
            atomic_min_float(r + 0, lo);
            atomic_max_float(r + 1, hi);
            atomic_min_float(r + 2, lo);
            atomic_max_float(r + 3, hi);
        }
    }
}

// ---- Phase 2 ------------------------------------------------------------------------------------

// Binning of one displacement of the block's channel (64 bytes: four 16-byte shared loads).
struct __align__(16) Displacement {
    double lo_p, hi_p, scale_p, lo_q, hi_q, scale_q;
    int offset;  // of Q from P in the stage
    int dy, dx, bins;
};

struct HistogramArgs {
    const float* x;
    Geometry g;
    int bins, range_mode, remove_zeros, table_bins;
    float range_lo, range_hi;
    const int64_t* pair_count;
    const float* ranges;
    int64_t* hist;
    int slices, rows_per_slice, copies, copy_stride;  // the block's table: rows of (u, bP) per slice
    int table_offset, stage_offset;                  // bytes into dynamic shared memory
};

// Counts one cell (key = index into the block's tables, or -1 for no pair). kAggregate: called by all 32
// lanes together; lanes with the same cell add once.
template <bool kAggregate>
__device__ __forceinline__ void count_cell(int* table, int key) {
    if (kAggregate) {
        const unsigned peers = __match_any_sync(kFullMask, key);
        if (key >= 0 && int(threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(table + key, __popc(peers));
    } else if (key >= 0) {
        atomicAdd(table + key, 1);
    }
}

// kStagedBins: fixed bins with a channel or fixed range, every value binned once at staging.
template <bool kStagedBins, bool kAggregate>
__global__ void __launch_bounds__(kThreads, 2) sd_histogram_kernel(HistogramArgs a) {
    extern __shared__ __align__(16) unsigned char smem[];
    const Geometry& g = a.g;
    Displacement* disp = reinterpret_cast<Displacement*>(smem);
    int* table = reinterpret_cast<int*>(smem + a.table_offset);

    const int s = int(blockIdx.x % unsigned(a.slices));
    const int cb = int(blockIdx.x / unsigned(a.slices));
    const int b = cb % g.blocks_per_channel, c = cb / g.blocks_per_channel;
    const int tb = a.table_bins, d = g.d;
    const int r0 = s * a.rows_per_slice, rows = min(a.rows_per_slice, d * tb - r0);
    const int u_first = r0 / tb, u_last = (r0 + rows - 1) / tb;
    const bool inclusive = a.range_mode == GS_SD_RANGE_FIXED;
    const bool rz = a.remove_zeros != 0;
    // Lane l counts into copy l % copies; copies sit an odd number of words apart, so the same cell of
    // different copies falls in different banks.
    const int copy_base = int(threadIdx.x % unsigned(a.copies)) * a.copy_stride;

    for (int u = threadIdx.x; u < d; u += kThreads) {
        Displacement p{};
        p.dy = u / g.kw - g.ry;
        p.dx = u % g.kw - g.rx;
        p.offset = p.dy * g.stage_w + p.dx;
        if (!kStagedBins) {
            const long long n = a.pair_count == nullptr ? 0 : a.pair_count[(long long) c * d + u];
            p.bins = min(a.bins > 0 ? a.bins : 1 + ceil_log2(n), tb);  // Java guarantees B <= table_bins
            if (inclusive) {
                p.lo_p = p.lo_q = double(a.range_lo);
                p.hi_p = p.hi_q = double(a.range_hi);
            } else {
                const float* r = a.ranges + ((long long) c * d + u) * 4;
                p.lo_p = double(r[0]);
                p.hi_p = __dadd_rn(double(r[1]), 1e-12);
                p.lo_q = double(r[2]);
                p.hi_q = __dadd_rn(double(r[3]), 1e-12);
            }
            p.scale_p = __ddiv_rn(double(p.bins), __dsub_rn(p.hi_p, p.lo_p));
            p.scale_q = __ddiv_rn(double(p.bins), __dsub_rn(p.hi_q, p.lo_q));
        }
        disp[u] = p;
    }
    for (int w = threadIdx.x; w < a.copies * a.copy_stride; w += kThreads) table[w] = 0;

    // The channel's binning of staged values (kStagedBins).
    double lo = 0.0, hi = 0.0, scale = 0.0;
    if (kStagedBins) {
        if (inclusive) {
            lo = double(a.range_lo);
            hi = double(a.range_hi);
        } else {
            const float* r = a.ranges + (long long) c * d * 4;  // the same channel range in every displacement
            lo = double(r[0]);
            hi = __dadd_rn(double(r[1]), 1e-12);
        }
        scale = __ddiv_rn(double(a.bins), __dsub_rn(hi, lo));
    }
    __syncthreads();

    for (long long t = b; t < g.tiles; t += g.blocks_per_channel) {
        const Tile tile = tile_of(g, t);
        if (kStagedBins) {
            uint16_t* stage = reinterpret_cast<uint16_t*>(smem + a.stage_offset);
            stage_tile(a.x, g, c, tile, stage, [&](float v) {
                bool keep;
                const int bin = bin_of(double(v), lo, hi, scale, a.bins, inclusive, keep);
                return (keep && !(rz && v == 0.0f)) ? uint16_t(bin) : kDropped;
            });
            __syncthreads();
            int bp[kPixelsPerThread];
#pragma unroll
            for (int k = 0; k < kPixelsPerThread; ++k) bp[k] = stage[tile.slot[k]];
            for (int u = u_first; u <= u_last; ++u) {
                const int dy = disp[u].dy, dx = disp[u].dx, offset = disp[u].offset;
                const int row0 = u * tb - r0;
#pragma unroll
                for (int k = 0; k < kPixelsPerThread; ++k) {
                    const int bq = stage[tile.slot[k] + offset];
                    const int row = row0 + bp[k];
                    const bool valid = tile.has[k] && tile.i[k] + dy >= 0 && unsigned(tile.j[k] + dx) < unsigned(g.wp) &&
                                       bp[k] != kDropped && bq != kDropped && unsigned(row) < unsigned(rows);
                    count_cell<kAggregate>(table, valid ? copy_base + row * tb + bq : -1);
                }
            }
        } else {
            float* stage = reinterpret_cast<float*>(smem + a.stage_offset);
            stage_tile(a.x, g, c, tile, stage, [](float v) { return v; });
            __syncthreads();
            float p[kPixelsPerThread];
#pragma unroll
            for (int k = 0; k < kPixelsPerThread; ++k) p[k] = stage[tile.slot[k]];
            for (int u = u_first; u <= u_last; ++u) {
                const Displacement dp = disp[u];
                const int row0 = u * tb - r0;
#pragma unroll
                for (int k = 0; k < kPixelsPerThread; ++k) {
                    const float q = stage[tile.slot[k] + dp.offset];
                    bool keep_p, keep_q;
                    const int bp = bin_of(double(p[k]), dp.lo_p, dp.hi_p, dp.scale_p, dp.bins, inclusive, keep_p);
                    const int bq = bin_of(double(q), dp.lo_q, dp.hi_q, dp.scale_q, dp.bins, inclusive, keep_q);
                    const int row = row0 + bp;
                    const bool valid = tile.has[k] && tile.i[k] + dp.dy >= 0 &&
                                       unsigned(tile.j[k] + dp.dx) < unsigned(g.wp) && keep_p && keep_q &&
                                       !(rz && (p[k] == 0.0f || q == 0.0f)) && unsigned(row) < unsigned(rows);
                    count_cell<kAggregate>(table, valid ? copy_base + row * tb + bq : -1);
                }
            }
        }
        __syncthreads();  // the next tile overwrites the stage
    }

    // Rows r0.. of the slice are rows r0.. of the channel's [d][tb][tb] table.
    int64_t* out = a.hist + ((long long) c * d * tb + r0) * tb;
    for (int w = threadIdx.x; w < rows * tb; w += kThreads) {
        int sum = 0;
        for (int r = 0; r < a.copies; ++r) sum += table[r * a.copy_stride + w];
        if (sum) atomic_add_i64(out + w, sum);
    }
}

// ---- Phase 3 ------------------------------------------------------------------------------------

// Block-wide sum of a double over kFinalizeThreads threads; every thread gets the result.
__device__ double block_sum(double v, double* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
    __syncthreads();  // scratch may still be read by a previous call
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    double total = 0.0;
    for (int w = 0; w < kFinalizeThreads / 32; ++w) total += scratch[w];
    return total;
}

__device__ __forceinline__ double entropy_term(long long count, double total) {
    const double p = double(count) / total;
    return -p * log2(p);
}

// (kFinalizeThreads, 1): with no minimum of blocks ptxas aims at 32 registers and spills around the
// double division's slow path.
__global__ void __launch_bounds__(kFinalizeThreads, 1)
sd_entropy_kernel(int d, int window, int tb, bool remove_zeros, const int64_t* __restrict__ hist,
                  float* __restrict__ nmi) {
    __shared__ unsigned long long s_rows[kMaxBins], s_cols[kMaxBins];
    __shared__ double s_scratch[kFinalizeThreads / 32];
    const int c = int(blockIdx.x) / d, u = int(blockIdx.x) % d;
    const int64_t* h = hist + (long long) blockIdx.x * tb * tb;
    const int cells = tb * tb;

    for (int i = threadIdx.x; i < tb; i += kFinalizeThreads) s_rows[i] = s_cols[i] = 0;
    __syncthreads();
    double total = 0.0;  // an exact integer below 2^53
    for (int e = threadIdx.x; e < cells; e += kFinalizeThreads) {
        const int r = e / tb, q = e - r * tb;
        const long long v = (remove_zeros && r == q) ? 0 : h[e];
        if (v) {
            total += double(v);
            atomicAdd(&s_rows[r], (unsigned long long) v);
            atomicAdd(&s_cols[q], (unsigned long long) v);
        }
    }
    total = block_sum(total, s_scratch);  // its __syncthreads also publishes s_rows / s_cols

    double hpq = 0.0, hp = 0.0, hq = 0.0;
    if (total > 0.0) {
        for (int e = threadIdx.x; e < cells; e += kFinalizeThreads) {
            const int r = e / tb, q = e - r * tb;
            const long long v = (remove_zeros && r == q) ? 0 : h[e];
            if (v) hpq += entropy_term(v, total);
        }
        for (int i = threadIdx.x; i < tb; i += kFinalizeThreads) {
            if (s_rows[i]) hp += entropy_term((long long) s_rows[i], total);
            if (s_cols[i]) hq += entropy_term((long long) s_cols[i], total);
        }
    }
    hpq = block_sum(hpq, s_scratch);
    hp = block_sum(hp, s_scratch);
    hq = block_sum(hq, s_scratch);
    if (threadIdx.x == 0) {
        double v = (total == 0.0 || hpq == 0.0) ? __longlong_as_double(0x7ff8000000000000LL) : (hp + hq - hpq) / hpq;
        if (remove_zeros && isnan(v)) v = 0.0;
        float* out = nmi + (long long) c * window;
        out[u] = out[window - 1 - u] = float(v);  // u and window - 1 - u are d and -d
        if (u == 0) out[d] = 1.0f;
    }
}

__device__ __forceinline__ double transform(double s, double k) { return k * s / ((k - 1.0) * s + 1.0); }

// One block: a warp per window entry NaN-means the channels, then S, G and the fallback.
// previous_g and g are not __restrict__: callers may pass the same buffer.
__global__ void __launch_bounds__(kFinalizeThreads, 1)
sd_combine_kernel(int channels, int window, float k, int order, const float* __restrict__ nmi,
                  const float* previous_g, float* __restrict__ s, float* g, int32_t* __restrict__ g_kept_previous) {
    extern __shared__ double s_entry[];  // [window]
    __shared__ double s_mean;
    const double kd = k;
    const double nan = __longlong_as_double(0x7ff8000000000000LL);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int e = warp; e < window; e += kFinalizeThreads / 32) {
        double sum = 0.0;
        int used = 0;
        for (int c = lane; c < channels; c += 32) {
            const double v = nmi[(long long) c * window + e];
            if (!isnan(v)) {
                sum += order == GS_SD_ORDER_REFERENCE ? transform(v, kd) : v;
                ++used;
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            sum += __shfl_xor_sync(kFullMask, sum, o);
            used += __shfl_xor_sync(kFullMask, used, o);
        }
        if (lane == 0) {
            const double mean = used > 0 ? sum / used : nan;
            s_entry[e] = order == GS_SD_ORDER_REFERENCE ? mean : transform(mean, kd);
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;  // in entry order, as the CPU adds
        for (int e = 0; e < window; ++e) total += s_entry[e];
        s_mean = total / window;
    }
    __syncthreads();
    bool finite = true;
    for (int e = threadIdx.x; e < window; e += kFinalizeThreads) finite = finite && isfinite(float(s_entry[e] / s_mean));
    const bool all_finite = __syncthreads_and(finite);
    for (int e = threadIdx.x; e < window; e += kFinalizeThreads) {
        // previous_g may alias g: each thread reads its entries before writing them.
        const float ge = all_finite ? float(s_entry[e] / s_mean) : (previous_g ? previous_g[e] : 1.0f);
        s[e] = float(s_entry[e]);
        g[e] = ge;
    }
    if (threadIdx.x == 0) *g_kept_previous = all_finite ? 0 : 1;
}

// ---- Launch plans -------------------------------------------------------------------------------

// Shared-memory layout of sd_histogram_kernel for one call.
struct HistogramPlan {
    HistogramArgs args;
    size_t smem;
    long long blocks;
};

int plan_histogram(const char* fn, const DeviceLimits& lim, bool staged_bins, HistogramArgs& a, HistogramPlan& plan) {
    const Geometry& g0 = a.g;
    const size_t disp_bytes = align16(size_t(g0.d) * sizeof(Displacement));
    const size_t stage_bytes = align16(size_t(g0.stage_h) * g0.stage_w * (staged_bins ? sizeof(uint16_t) : sizeof(float)));
    // Two blocks per SM (each SM reserves 1 KB per block); one when the window's parameters need more.
    long long budget = std::min<long long>(lim.smem_optin, lim.smem_per_sm / 2 - 1024);
    long long table_words = (budget - (long long) (disp_bytes + stage_bytes)) / 4;
    if (table_words < a.table_bins + 1) {
        budget = lim.smem_optin;
        table_words = (budget - (long long) (disp_bytes + stage_bytes)) / 4;
    }
    if (table_words < a.table_bins + 1)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: a %d x %d window needs more shared memory than the device has", fn,
                        g0.kh, g0.kw);
    const long long total_rows = (long long) g0.d * a.table_bins;
    const long long max_rows = (table_words - 1) / a.table_bins;  // one word of padding per copy
    a.slices = int(ceil_div(total_rows, max_rows));
    a.rows_per_slice = int(ceil_div(total_rows, a.slices));
    const int words = a.rows_per_slice * a.table_bins;
    a.copy_stride = words | 1;
    a.copies = 1;
    while (a.slices == 1 && a.copies < kMaxCopies && 2LL * a.copies * a.copy_stride <= table_words) a.copies *= 2;
    a.table_offset = int(disp_bytes);
    a.stage_offset = int(disp_bytes + align16(size_t(a.copies) * a.copy_stride * 4));
    a.g.blocks_per_channel = blocks_per_channel(g0, a.slices, lim.sms);
    plan.smem = size_t(a.stage_offset) + stage_bytes;
    plan.blocks = (long long) g0.channels * a.g.blocks_per_channel * a.slices;
    if (plan.blocks > INT32_MAX)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: %lld blocks exceed the grid limit", fn, plan.blocks);
    plan.args = a;
    return GS_OK;
}

// Raises the kernel's dynamic shared-memory limit to the device maximum less its static shared memory
// (cudaFuncSetAttribute rejects a limit whose sum with the static size exceeds the opt-in maximum), and
// checks that the call's size fits. Always the same limit, never the call's size: concurrent callers
// cannot undercut each other.
// Once per (device, kernel): the limit does not depend on the call.
template <class Kernel>
int raise_smem_limit(const char* fn, Kernel kernel, int smem_optin, size_t smem) {
    int limit = 0;
    const int st = gs::cached_on_device(reinterpret_cast<const void*>(kernel), smem_optin, 0, &limit,
                                        [kernel, smem_optin](int, int* v) -> int {
                                            cudaFuncAttributes attr;
                                            GS_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
                                            *v = smem_optin - int(attr.sharedSizeBytes);
                                            GS_CUDA_CHECK(cudaFuncSetAttribute(
                                                kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, *v));
                                            return GS_OK;
                                        });
    if (st) return st;
    if ((long long) smem > limit)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: needs %zu bytes of shared memory per block, the device allows %d", fn,
                        smem, limit);
    return GS_OK;
}

template <bool kStagedBins, bool kAggregate>
int launch_histogram(const char* fn, const HistogramPlan& plan, int smem_optin, cudaStream_t stream) {
    auto kernel = sd_histogram_kernel<kStagedBins, kAggregate>;
    if (int st = raise_smem_limit(fn, kernel, smem_optin, plan.smem)) return st;
    gs::clear_pending_error();
    kernel<<<unsigned(plan.blocks), kThreads, plan.smem, stream>>>(plan.args);
    GS_CUDA_CHECK_LAUNCH();
    return GS_OK;
}

template <bool kCount, bool kPairRanges>
int launch_stats(const char* fn, const float* x, const Geometry& g, size_t smem, int smem_optin, bool channel_range,
                 bool remove_zeros, int64_t* pair_count, float* ranges, int64_t* nonfinite, cudaStream_t stream) {
    auto kernel = sd_stats_kernel<kCount, kPairRanges>;
    if (int st = raise_smem_limit(fn, kernel, smem_optin, smem)) return st;
    const long long blocks = (long long) g.channels * g.blocks_per_channel;
    gs::clear_pending_error();
    kernel<<<unsigned(blocks), kThreads, smem, stream>>>(x, g, channel_range, remove_zeros, pair_count, ranges,
                                                         nonfinite);
    GS_CUDA_CHECK_LAUNCH();
    return GS_OK;
}

}  // namespace

extern "C" {

int gs_sd_stats_cuda(const float* x, int32_t batch, int32_t channels, int32_t height, int32_t width, int32_t layout,
                     int32_t kernel_h, int32_t kernel_w, int32_t pad_h, int32_t pad_w, int32_t range_mode,
                     int32_t remove_zeros, int64_t* pair_count, float* ranges, int64_t* nonfinite, gs_stream stream) {
    const char* fn = "gs_sd_stats_cuda";
    Geometry g;
    if (int st = check_geometry(fn, batch, channels, height, width, layout, kernel_h, kernel_w, pad_h, pad_w, g)) return st;
    if (range_mode < GS_SD_RANGE_PAIRS || range_mode > GS_SD_RANGE_FIXED)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: unknown range_mode %d", fn, range_mode);
    if (!x || !pair_count || !ranges || !nonfinite)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: x or a state pointer is NULL", fn);
    DeviceLimits lim;
    if (int st = device_limits(lim)) return st;
    g.blocks_per_channel = blocks_per_channel(g, 1, lim.sms);
    const size_t smem = align16(size_t(g.d) * 24) + align16(size_t(g.stage_h) * g.stage_w * sizeof(float));
    if (smem > size_t(lim.smem_optin))
        return gs::fail(GS_INVALID_ARGUMENT, "%s: a %d x %d window needs more shared memory than the device has", fn,
                        kernel_h, kernel_w);
    const bool rz = remove_zeros != 0, channel = range_mode == GS_SD_RANGE_CHANNEL;
    const cudaStream_t s = gs::as_stream(stream);
    if (range_mode == GS_SD_RANGE_PAIRS) {
        return rz ? launch_stats<true, true>(fn, x, g, smem, lim.smem_optin, channel, rz, pair_count, ranges, nonfinite, s)
                  : launch_stats<false, true>(fn, x, g, smem, lim.smem_optin, channel, rz, pair_count, ranges, nonfinite, s);
    }
    return rz ? launch_stats<true, false>(fn, x, g, smem, lim.smem_optin, channel, rz, pair_count, ranges, nonfinite, s)
              : launch_stats<false, false>(fn, x, g, smem, lim.smem_optin, channel, rz, pair_count, ranges, nonfinite, s);
}

int gs_sd_histogram_workspace_cuda(int32_t batch, int32_t channels, int32_t height, int32_t width, int32_t kernel_h,
                                   int32_t kernel_w, int32_t table_bins, int64_t* workspace_bytes) {
    // Every block's scratch lives in shared memory.
    *workspace_bytes = 0;
    return GS_OK;
}

int gs_sd_histogram_cuda(const float* x, int32_t batch, int32_t channels, int32_t height, int32_t width,
                         int32_t layout, int32_t kernel_h, int32_t kernel_w, int32_t pad_h, int32_t pad_w,
                         int32_t bins, int32_t range_mode, float range_lo, float range_hi, int32_t remove_zeros,
                         const int64_t* pair_count, const float* ranges, int32_t table_bins, int64_t* hist,
                         void* workspace, int64_t workspace_bytes, gs_stream stream) {
    const char* fn = "gs_sd_histogram_cuda";
    HistogramArgs a{};
    if (int st = check_geometry(fn, batch, channels, height, width, layout, kernel_h, kernel_w, pad_h, pad_w, a.g))
        return st;
    if (range_mode < GS_SD_RANGE_PAIRS || range_mode > GS_SD_RANGE_FIXED)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: unknown range_mode %d", fn, range_mode);
    if (bins != 0 && (bins < 2 || bins > kMaxBins))
        return gs::fail(GS_INVALID_ARGUMENT, "%s: bins %d is neither 0 nor in 2..%d", fn, bins, kMaxBins);
    if (table_bins < 1 || table_bins > kMaxBins || (bins > 0 && bins > table_bins))
        return gs::fail(GS_INVALID_ARGUMENT, "%s: table_bins %d outside %d..%d", fn, table_bins, bins > 0 ? bins : 1,
                        kMaxBins);
    if (range_mode == GS_SD_RANGE_FIXED && !(std::isfinite(range_lo) && std::isfinite(range_hi) && range_lo < range_hi))
        return gs::fail(GS_INVALID_ARGUMENT, "%s: fixed range [%g, %g] is not finite and increasing", fn,
                        double(range_lo), double(range_hi));
    if (!x || !hist || (bins == 0 && !pair_count) || (range_mode != GS_SD_RANGE_FIXED && !ranges))
        return gs::fail(GS_INVALID_ARGUMENT, "%s: x or a state pointer is NULL", fn);
    DeviceLimits lim;
    if (int st = device_limits(lim)) return st;
    a.x = x;
    a.bins = bins;
    a.range_mode = range_mode;
    a.remove_zeros = remove_zeros != 0;
    a.table_bins = table_bins;
    a.range_lo = range_lo;
    a.range_hi = range_hi;
    a.pair_count = pair_count;
    a.ranges = ranges;
    a.hist = hist;
    const bool staged = bins > 0 && range_mode != GS_SD_RANGE_PAIRS;
    HistogramPlan plan;
    if (int st = plan_histogram(fn, lim, staged, a, plan)) return st;
    const cudaStream_t s = gs::as_stream(stream);
    // Fewer than 4 copies leave up to 32 lanes on one cell: merge them first.
    const bool aggregate = plan.args.copies < 4;
    if (staged) {
        return aggregate ? launch_histogram<true, true>(fn, plan, lim.smem_optin, s)
                         : launch_histogram<true, false>(fn, plan, lim.smem_optin, s);
    }
    return aggregate ? launch_histogram<false, true>(fn, plan, lim.smem_optin, s)
                     : launch_histogram<false, false>(fn, plan, lim.smem_optin, s);
}

int gs_sd_finalize_cuda(int32_t channels, int32_t kernel_h, int32_t kernel_w, int32_t remove_zeros,
                        const int64_t* pair_count, const int64_t* hist, int32_t table_bins, float k, int32_t order,
                        const float* previous_g, float* nmi, float* s, float* g, int32_t* g_kept_previous,
                        gs_stream stream) {
    const char* fn = "gs_sd_finalize_cuda";
    if (channels < 1 || kernel_h < 3 || kernel_w < 3 || kernel_h % 2 == 0 || kernel_w % 2 == 0)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: bad shape %d x %d x %d", fn, channels, kernel_h, kernel_w);
    if (table_bins < 1 || table_bins > kMaxBins)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: table_bins %d outside 1..%d", fn, table_bins, kMaxBins);
    if (!(std::isfinite(k) && k > 0))
        return gs::fail(GS_INVALID_ARGUMENT, "%s: k %g is not finite and > 0", fn, double(k));
    if (order != GS_SD_ORDER_REFERENCE && order != GS_SD_ORDER_PAPER)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: unknown order %d", fn, order);
    if (!hist || !nmi || !s || !g || !g_kept_previous)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: a pointer is NULL", fn);
    const int window = kernel_h * kernel_w, d = (window - 1) / 2;
    const long long blocks = (long long) channels * d;
    if (blocks > INT32_MAX) return gs::fail(GS_INVALID_ARGUMENT, "%s: %lld tables exceed the grid limit", fn, blocks);
    const size_t combine_smem = size_t(window) * sizeof(double);
    if (combine_smem > 48 * 1024)
        return gs::fail(GS_INVALID_ARGUMENT, "%s: a %d x %d window is too large", fn, kernel_h, kernel_w);
    const cudaStream_t st = gs::as_stream(stream);
    // A table with no pairs has T == 0, so pair_count adds nothing that the table does not say.
    gs::clear_pending_error();
    sd_entropy_kernel<<<unsigned(blocks), kFinalizeThreads, 0, st>>>(d, window, table_bins, remove_zeros != 0, hist,
                                                                      nmi);
    GS_CUDA_CHECK_LAUNCH();
    gs::clear_pending_error();
    sd_combine_kernel<<<1, kFinalizeThreads, combine_smem, st>>>(channels, window, k, order, nmi, previous_g, s, g,
                                                                 g_kept_previous);
    GS_CUDA_CHECK_LAUNCH();
    return GS_OK;
}

}  // extern "C"
