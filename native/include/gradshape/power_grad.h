/*
 * gradshape/power_grad.h: the PowerGrad transform fused with the softmax cross-entropy loss,
 * SPEC.md section 3.
 *
 * One pass over logits z[rows][classes] (row-major, float32) yields, per row r:
 *
 *   m     = max_i z_i
 *   S     = sum_i e^(z_i - m),  lse = log S          (log p_i = z_i - m - lse, stable log-softmax)
 *   S_a   = sum_i e^(alpha (z_i - m))                 (p'_i = e^(alpha (z_i - m)) / S_a = softmax(alpha z))
 *   q_i   = (1 - smoothing) onehot(y)_i + smoothing / classes      class-index targets y = labels[r]
 *   q_i   = (1 - smoothing) targets[r][i] + smoothing / classes    probability targets
 *   loss_r = -sum_i q_i log p_i                        (the ordinary cross entropy; PGT leaves it alone)
 *   grad[r][i] = scale (p'_i - q_i),  scale = 1 / B for MEAN (B = rows counted), 1 for SUM and NONE
 *
 * alpha = 1 is the ordinary fused softmax-cross-entropy gradient; alpha = 0 gives p' = 1 / classes.
 *
 * ---- Rows -------------------------------------------------------------------------------------
 * ignored: class-index targets with use_ignore != 0 and labels[r] == ignore_index: gradient row 0,
 *          row loss 0, not counted.
 * bad:     class-index targets outside [0, classes) and not ignored (the Java layer rejects these for
 *          host labels; device labels are only seen by the kernel): gradient row NaN, row loss NaN,
 *          not counted, reported in bad_labels / first_bad_label_row.
 * nonfinite: a counted row with at least one logit NaN or +-infinity (CUDA: or one probability
 *          target NaN or +-infinity; host targets are checked by the Java layer): gradient row NaN,
 *          row loss NaN, reported in nonfinite_rows / first_nonfinite_row. The reduced loss is then
 *          NaN too. A row of finite logits of any magnitude (e.g. {3e38, -3e38}) is not: its gradient
 *          is finite and its loss, formed in float64, that of a float64 evaluation (a float row loss
 *          beyond FLT_MAX reads as +inf in `loss`; the report keeps the float64 value).
 * counted: every other row (with probability targets: every row). B = their number. With MEAN and
 *          B = 0 (every row ignored) the loss is 0 and the gradient is 0 (PyTorch returns NaN there).
 *
 * ---- Outputs ----------------------------------------------------------------------------------
 * grad:    float32 [rows][classes]; may be the logits pointer itself (in place); must not overlap
 *          the logits otherwise.
 * loss:    may be NULL. MEAN, SUM: float32 [1], the reduced loss; NONE: float32 [rows], the row losses.
 * report:  the reduced loss in float64 (MEAN: sum / B, or 0 when B = 0; SUM: the sum; NONE: the sum of
 *          the row losses) and the row counts above. first_*_row = -1 when there is none.
 *
 * Exactly one of labels (int32 [rows]) and targets (float32 [rows][classes]) is non-NULL. Probability
 * rows are used as given: the gradient formula assumes they sum to 1 (one-hot rows do).
 * Requires rows >= 0, classes >= 1, alpha finite and >= 0, smoothing in [0, 1].
 *
 * Determinism: the CPU result does not depend on the thread count; the CUDA result is the same from
 * run to run on the same GPU model (fixed grid, fixed reduction order, no floating-point atomics).
 */
#ifndef GRADSHAPE_POWER_GRAD_H
#define GRADSHAPE_POWER_GRAD_H

#include "../gradshape.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { GS_PG_REDUCTION_MEAN = 0, GS_PG_REDUCTION_SUM = 1, GS_PG_REDUCTION_NONE = 2 };

/* 64 bytes; written completely by every call. */
typedef struct gs_pg_report {
    double loss;
    int64_t counted_rows;
    int64_t nonfinite_rows;
    int64_t bad_labels;
    int64_t first_nonfinite_row;
    int64_t first_bad_label_row;
    int64_t reserved[2];
} gs_pg_report;

/* report: host memory. Synchronous; multi-threaded over rows (and within rows longer than 32768 when
   rows are fewer than twice the threads); float32 partial sums over 1024 elements added in float64. */
int gs_pg_cpu(const float* logits, int32_t rows, int32_t classes, const int32_t* labels,
              const float* targets, int32_t use_ignore, int32_t ignore_index, float alpha,
              float smoothing, int32_t reduction, float* grad, float* loss, gs_pg_report* report);

/*
 * Bytes of device workspace gs_pg_cuda needs on the current device (a few hundred KiB, independent
 * of the sizes). The workspace must be zero-filled once after allocation; every call leaves it
 * ready for the next, so one workspace serves any number of calls in stream order (not concurrent
 * calls on different streams).
 */
int gs_pg_workspace_cuda(int64_t* workspace_bytes);

/*
 * Every pointer is device memory (report included); asynchronous on stream. The report and loss are
 * final once the stream reaches this point. Picks one of these by classes: thread per row through
 * shared memory (classes <= 32), warp per row (<= 1024), block per row with the row in registers
 * (<= 32768), block per row streaming the row twice (larger). Uses 16-byte loads and stores when
 * classes % 4 == 0 and logits, grad (and targets) are 16-byte aligned.
 */
int gs_pg_cuda(const float* logits, int32_t rows, int32_t classes, const int32_t* labels,
               const float* targets, int32_t use_ignore, int32_t ignore_index, float alpha,
               float smoothing, int32_t reduction, float* grad, float* loss, gs_pg_report* report,
               void* workspace, int64_t workspace_bytes, gs_stream stream);

#ifdef __cplusplus
}
#endif

#endif /* GRADSHAPE_POWER_GRAD_H */
