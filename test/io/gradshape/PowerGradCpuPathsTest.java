package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.PowerGrad.Options;
import io.gradshape.PowerGrad.Reduction;
import io.gradshape.PowerGradTest.Case;
import io.gradshape.PowerGradTest.Targets;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The code paths of the CPU kernel (native/cpu/power_grad.cpp) against the float64 oracle: 16-lane
 * bodies and tails (C below, at and above multiples of 16), float32 block sums (C around the
 * 1024-element block), rows of several 32768-element chunks, those chunks split across threads
 * (fewer rows than twice the threads), in place, every reduction; that the result does not depend on
 * the thread count; the non-finite rule (a row is non-finite iff a logit is NaN or +-inf) in body and
 * tail lanes; and finite rows of any magnitude, which keep a finite gradient and the oracle's loss.
 */
class PowerGradCpuPathsTest {
    private final Backend cpu = Backends.select("cpu").backend();

    @AfterEach
    void restoreThreads() {
        Gradshape.setCpuThreads(0);
    }

    @Test
    void everyVectorAndChunkPathMatchesTheOracle() {
        // 4 threads on any machine, so that rows < 8 of more than one chunk take the split path.
        Gradshape.setCpuThreads(4);
        int[] classes = {1, 8, 15, 16, 17, 31, 47, 1023, 1024, 1025, 32767, 32768, 32769, 65536 + 17};
        long seed = 1000;
        for (int c : classes) {
            for (int rows : c > 32768 ? new int[] {1, 3, 9} : new int[] {1, 2, 37}) {
                for (double alpha : new double[] {0.0, 0.25, 1.0}) {
                    for (Targets targets : new Targets[] {Targets.INDEX, Targets.SOFT}) {
                        for (Reduction reduction : Reduction.values()) {
                            boolean inPlace = (seed & 1) == 0;
                            PowerGradTest.check(cpu, new Case(rows, c, 3.0, alpha, 0.1, reduction, targets, 0.0, inPlace, seed++));
                        }
                    }
                }
            }
        }
    }

    @Test
    void resultDoesNotDependOnTheThreadCount() {
        for (int[] shape : new int[][] {{3, 70000}, {5000, 10}, {64, 1000}}) {
            int rows = shape[0], classes = shape[1];
            Case c = new Case(rows, classes, 2.0, 0.25, 0.1, Reduction.MEAN, Targets.INDEX, 0.1, false, 77 + classes);
            PowerGradTest.Inputs in = PowerGradTest.inputs(c);
            float[][] grads = new float[3][];
            double[] losses = new double[3];
            int[] threads = {1, 2, 4};
            for (int t = 0; t < threads.length; t++) {
                Gradshape.setCpuThreads(threads[t]);
                grads[t] = new float[in.logits.length];
                try (PowerGrad pgt = new PowerGrad(cpu)) {
                    losses[t] = pgt.compute(Memory.of(in.logits), rows, classes, Memory.of(in.labels), c.options(),
                            Memory.of(grads[t])).loss();
                }
            }
            for (int t = 1; t < threads.length; t++) {
                assertArrayEquals(grads[0], grads[t], c + ": gradient with " + threads[t] + " threads");
                assertEquals(losses[0], losses[t], 0.0, c + ": loss with " + threads[t] + " threads");
            }
        }
    }

    @Test
    void nonFiniteLogitsInBodyAndTailLanes() {
        for (int threads : new int[] {1, 4}) {
            Gradshape.setCpuThreads(threads);
            for (int classes : new int[] {1, 17, 37, 70001}) {
                int rows = 6;
                Case c = new Case(rows, classes, 1.0, 0.25, 0.0, Reduction.SUM, Targets.INDEX, 0.0, false, 5 + classes);
                PowerGradTest.Inputs in = PowerGradTest.inputs(c);
                // Row 1: NaN in the last (tail) lane; row 3: -inf first; row 4: +inf in a body lane.
                in.logits[1 * classes + classes - 1] = Float.NaN;
                in.logits[3 * classes] = Float.NEGATIVE_INFINITY;
                in.logits[4 * classes + classes / 2] = Float.POSITIVE_INFINITY;
                float[] grad = new float[in.logits.length];
                String where = classes + " classes, " + threads + " threads";
                GradshapeException e = assertThrows(GradshapeException.class,
                        () -> PowerGrad.compute(cpu, in.logits, rows, classes, in.labels, c.options(), grad), where);
                assertEquals(Status.NONFINITE_INPUT, e.status(), where);
                assertTrue(e.getMessage().contains("3 row(s)") && e.getMessage().contains("row 1"), where + ": " + e.getMessage());
                PowerGradOracle.Out want = PowerGradOracle.compute(in.logits, rows, classes, in.labels, null, c.alpha(), 0.0,
                        Reduction.SUM, null);
                for (int r = 0; r < rows; r++) {
                    for (int i = 0; i < classes; i++) {
                        float g = grad[r * classes + i];
                        if (r == 1 || r == 3 || r == 4) {
                            assertTrue(Float.isNaN(g), where + ": row " + r + " must be NaN, grad[" + i + "] = " + g);
                        } else {
                            PowerGradTest.assertClose(want.grad[r * classes + i], g, 3e-6 + 1e-4 * Math.abs(want.grad[r * classes + i]),
                                    where + ": grad[" + r + "][" + i + "]");
                        }
                    }
                }
            }
        }
    }

    @Test
    void finiteRowsOfAnyMagnitudeKeepAFiniteGradientAndTheOracleLoss() {
        float big = 3e38f;
        float[][] rowsOf = {
            {big, -big, 0f, 1f, -1f},                 // max - min overflows float32: the float64 path
            filled(40, -big, big, 0.5f),               // the same, with body lanes
            {1e38f, 1e38f, 1e38f, 1e38f, 1e38f, 1e38f, 1e38f, 1e38f}, // all equal and huge: d = 0 everywhere
            filled(33, 1e30f, -1e30f, 2e29f),          // wide, but under the float64-path threshold on one side
            filled(19, 5e5f, -5e5f, 1f),               // ordinary magnitudes, e^(alpha d) underflows
        };
        for (float[] row : rowsOf) {
            for (double alpha : new double[] {0.0, 0.25, 1.0, 1e30}) {
                for (double smoothing : new double[] {0.0, 0.1}) {
                    int classes = row.length;
                    int label = 0; // the maximum: the row loss stays within float range
                    Options options = Options.of(alpha).withSmoothing(smoothing).withReduction(Reduction.SUM);
                    float[] grad = new float[classes];
                    PowerGrad.Result got = PowerGrad.compute(cpu, row, 1, classes, new int[] {label}, options, grad);
                    PowerGradOracle.Out want = PowerGradOracle.compute(row, 1, classes, new int[] {label}, null, alpha, smoothing,
                            Reduction.SUM, null);
                    String where = Arrays.toString(Arrays.copyOf(row, Math.min(5, classes))) + "... C " + classes + " alpha "
                            + alpha + " eps " + smoothing;
                    // The oracle's log-softmax, m + log s - z, loses log s next to 1e38; the loss as the
                    // kernel defines it: (m - z_y) + log sum e^(z - m), spread over the classes by q.
                    double loss = expectedLoss(row, label, smoothing);
                    PowerGradTest.assertClose(loss, got.loss(), 1e-4 + 1e-5 * Math.abs(loss), where + ": loss");
                    for (int i = 0; i < classes; i++) {
                        assertTrue(Float.isFinite(grad[i]), where + ": grad[" + i + "] = " + grad[i]);
                    }
                    PowerGradTest.checkGradient(want.grad, grad, 1.0, where);
                }
            }
        }
    }

    private static double expectedLoss(float[] z, int label, double smoothing) {
        double m = Double.NEGATIVE_INFINITY;
        for (float v : z) {
            m = Math.max(m, v);
        }
        double s = 0;
        for (float v : z) {
            s += Math.exp(v - m);
        }
        double lse = Math.log(s), loss = 0;
        for (int i = 0; i < z.length; i++) {
            double q = (1 - smoothing) * (i == label ? 1 : 0) + smoothing / z.length;
            loss += q * ((m - z[i]) + lse);
        }
        return loss;
    }

    /** n values: first, then second, then the rest alternating between third and -third (shuffled). */
    private static float[] filled(int n, float first, float second, float third) {
        float[] v = new float[n];
        SplittableRandom random = new SplittableRandom(n);
        for (int i = 0; i < n; i++) {
            v[i] = i == 0 ? first : i == 1 ? second : (i % 2 == 0 ? third : -third) * (float) random.nextDouble();
        }
        return v;
    }
}
