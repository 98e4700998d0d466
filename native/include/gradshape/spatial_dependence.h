/*
 * gradshape/spatial_dependence.h: spatial dependence (SGS), SPEC.md section 1.
 *
 * Normalised mutual information between each pixel of a padded feature map and its neighbour at every
 * displacement d of a kh x kw window, then the spatial-dependence matrix S and the gradient scale G.
 * Three phases, each a function in a CPU (_cpu) and a CUDA (_cuda, stream last) flavour with the same
 * arguments and bit-identical integer results:
 *
 *   1. stats:     per (channel, displacement): number of pairs used and the P / Q value ranges;
 *   2. histogram: per (channel, displacement): integer joint counts h[bP][bQ];
 *   3. finalize:  entropies -> NMI per channel -> T_k -> channel NaN-mean -> S -> G.
 *
 * Phases 1 and 2 ACCUMULATE into their outputs, so several batches (and, after an all-reduce of the
 * state, several ranks) combine exactly: feed every batch to phase 1, then every batch to phase 2.
 * Callers initialise the state first: pair_count = 0, nonfinite = 0, hist = 0,
 * ranges = { +inf, -inf, +inf, -inf } per (channel, displacement).
 *
 * ---- Shapes -------------------------------------------------------------------------------------
 * x:            float32, batch x channels x height x width (layout NCHW), or batch x height x width x
 *               channels (NHWC). Not padded: padding (pad_h, pad_w) zeros is implied on every side.
 * Padded map:   Hp = height + 2 pad_h, Wp = width + 2 pad_w.
 * Window:       kernel_h, kernel_w odd and >= 3; ry = (kernel_h-1)/2, rx = (kernel_w-1)/2.
 * Displacements: only the first half of the window, in row-major order: u = (dy + ry) * kernel_w +
 *               (dx + rx) for u in [0, D), D = (kernel_h * kernel_w - 1) / 2 (dy in [-ry, ry] is the
 *               vertical offset). The pair set of -d is that of d with P and Q swapped.
 * Pairs of d:   P = xp[n][c][i][j], Q = xp[n][c][i+dy][j+dx], both positions inside the padded map:
 *               N (Hp - |dy|) (Wp - |dx|) pairs before zero removal.
 *
 * ---- State --------------------------------------------------------------------------------------
 * pair_count:   int64 [channels][D]      pairs used (after zero removal when remove_zeros)
 * ranges:       float [channels][D][4]   { minP, maxP, minQ, maxQ } over the pairs used.
 *               range_mode CHANNEL: the same { min, max, min, max } of the whole padded channel (padding
 *               zeros included; zeros excluded when remove_zeros) in every displacement of the channel.
 *               range_mode FIXED: phase 1 still counts pairs; ranges are left as they are (unused).
 * nonfinite:    int64 [1]                number of NaN / infinite values seen in x (an error for callers)
 * hist:         int64 [channels][D][table_bins][table_bins], row bP, column bQ.
 *
 * ---- Binning (phase 2), per axis, float64 arithmetic exactly as written -------------------------
 * B = bins > 0 ? bins : 1 + ceil_log2(pair_count) (Sturges; ceil_log2(n) = smallest k with 2^k >= n,
 *     which equals numpy's ceil(log2(n)) for n < 2^45); B <= table_bins always.
 * PAIRS / CHANNEL: lo = (double) min, hi = (double) max + 1e-12; keep iff lo <= v && v < hi.
 * FIXED:           lo = (double) range_lo, hi = (double) range_hi; keep iff lo <= v && v <= hi.
 * b = (int) ((v - lo) * ((double) B / (hi - lo))), then b = min(b, B - 1).
 * A pair is counted only when both P and Q are kept. remove_zeros: pairs with P == 0 or Q == 0 are
 * skipped before anything (phases 1 and 2), and phase 3 ignores the diagonal cells h[b][b].
 *
 * ---- Finalize (phase 3) -------------------------------------------------------------------------
 * From the table (diagonal ignored when remove_zeros): total T = sum h; H(P), H(Q) from the row and
 * column sums, H(P,Q) from the cells, base 2, empty cells skipped, in float64.
 * NMI = (H(P) + H(Q) - H(P,Q)) / H(P,Q). NaN when T == 0 or H(P,Q) == 0; with remove_zeros such NaN
 * (and a displacement with no pairs) becomes 0. Mirrored to -d. Centre entry = 1.
 * nmi:          float [channels][kernel_h][kernel_w] the raw per-channel NMI (before T_k).
 * T_k(s) = k s / ((k - 1) s + 1).
 * order REFERENCE: S[e] = NaN-mean over channels of T_k(nmi[c][e]);
 * order PAPER:     S[e] = T_k(NaN-mean over channels of nmi[c][e]).
 * (NaN-mean: mean of the non-NaN values; NaN when all are NaN.)
 * G = S / mean(S over the kh*kw entries). If any G is not finite: G = previous_g (all ones when
 * previous_g is NULL) and *g_kept_previous = 1, else 0. s and g: float [kernel_h][kernel_w].
 */
#ifndef GRADSHAPE_SPATIAL_DEPENDENCE_H
#define GRADSHAPE_SPATIAL_DEPENDENCE_H

#include "../gradshape.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { GS_SD_LAYOUT_NCHW = 0, GS_SD_LAYOUT_NHWC = 1 };
enum { GS_SD_RANGE_PAIRS = 0, GS_SD_RANGE_CHANNEL = 1, GS_SD_RANGE_FIXED = 2 };
enum { GS_SD_ORDER_REFERENCE = 0, GS_SD_ORDER_PAPER = 1 };

/* Phase 1. */
int gs_sd_stats_cpu(const float* x, int32_t batch, int32_t channels, int32_t height, int32_t width,
                    int32_t layout, int32_t kernel_h, int32_t kernel_w, int32_t pad_h, int32_t pad_w,
                    int32_t range_mode, int32_t remove_zeros, int64_t* pair_count, float* ranges,
                    int64_t* nonfinite);
int gs_sd_stats_cuda(const float* x, int32_t batch, int32_t channels, int32_t height, int32_t width,
                     int32_t layout, int32_t kernel_h, int32_t kernel_w, int32_t pad_h, int32_t pad_w,
                     int32_t range_mode, int32_t remove_zeros, int64_t* pair_count, float* ranges,
                     int64_t* nonfinite, gs_stream stream);

/* Phase 2. bins: 0 = Sturges from pair_count, else fixed 2..256. table_bins >= every B used. */
int gs_sd_histogram_cpu(const float* x, int32_t batch, int32_t channels, int32_t height, int32_t width,
                        int32_t layout, int32_t kernel_h, int32_t kernel_w, int32_t pad_h, int32_t pad_w,
                        int32_t bins, int32_t range_mode, float range_lo, float range_hi,
                        int32_t remove_zeros, const int64_t* pair_count, const float* ranges,
                        int32_t table_bins, int64_t* hist);
/* The CUDA flavour may use a caller-provided workspace of gs_sd_histogram_workspace_cuda() bytes. */
int gs_sd_histogram_workspace_cuda(int32_t batch, int32_t channels, int32_t height, int32_t width,
                                   int32_t kernel_h, int32_t kernel_w, int32_t table_bins,
                                   int64_t* workspace_bytes);
int gs_sd_histogram_cuda(const float* x, int32_t batch, int32_t channels, int32_t height, int32_t width,
                         int32_t layout, int32_t kernel_h, int32_t kernel_w, int32_t pad_h, int32_t pad_w,
                         int32_t bins, int32_t range_mode, float range_lo, float range_hi,
                         int32_t remove_zeros, const int64_t* pair_count, const float* ranges,
                         int32_t table_bins, int64_t* hist, void* workspace, int64_t workspace_bytes,
                         gs_stream stream);

/* Phase 3. previous_g may be NULL. */
int gs_sd_finalize_cpu(int32_t channels, int32_t kernel_h, int32_t kernel_w, int32_t remove_zeros,
                       const int64_t* pair_count, const int64_t* hist, int32_t table_bins, float k,
                       int32_t order, const float* previous_g, float* nmi, float* s, float* g,
                       int32_t* g_kept_previous);
int gs_sd_finalize_cuda(int32_t channels, int32_t kernel_h, int32_t kernel_w, int32_t remove_zeros,
                        const int64_t* pair_count, const int64_t* hist, int32_t table_bins, float k,
                        int32_t order, const float* previous_g, float* nmi, float* s, float* g,
                        int32_t* g_kept_previous, gs_stream stream);

#ifdef __cplusplus
}
#endif

#endif /* GRADSHAPE_SPATIAL_DEPENDENCE_H */
