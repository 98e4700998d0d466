package io.gradshape.djl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.gradshape.Backends;
import io.gradshape.PowerGrad;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The gradient that reaches libtorch's backward is exactly PowerGrad's, and the loss is the cross entropy. */
class PowerGradLossTest {
    @Test
    void injectsExactlyThePowerGradGradient() {
        long seed = System.nanoTime();
        Random random = new Random(seed);
        for (int[] size : new int[][] {{1, 10}, {7, 10}, {33, 3}}) {
            int rows = size[0];
            int classes = size[1];
            float[] z = new float[rows * classes];
            for (int i = 0; i < z.length; i++) {
                z[i] = (float) (3 * random.nextGaussian());
            }
            long[] y = new long[rows];
            int[] yi = new int[rows];
            for (int i = 0; i < rows; i++) {
                yi[i] = random.nextInt(classes);
                y[i] = yi[i];
            }
            for (double alpha : new double[] {1.0, 0.25}) {
                try (NDManager manager = NDManager.newBaseManager(); PowerGradLoss pgt = PowerGradLoss.of(alpha)) {
                    NDArray logits = manager.create(z, new Shape(rows, classes));
                    logits.setRequiresGradient(true);
                    double loss;
                    try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                        // a leaf's gradient is what backward was seeded with
                        loss = pgt.backward(logits, manager.create(y));
                    }
                    float[] got = logits.getGradient().toFloatArray();
                    float[] direct = new float[z.length];
                    PowerGrad.Result r = PowerGrad.compute(Backends.cpu(), z, rows, classes, yi, PowerGrad.Options.of(alpha), direct);
                    assertArrayEquals(direct, got, "bit-exact injection, " + rows + "x" + classes + " alpha " + alpha + ", seed " + seed);
                    assertEquals(r.loss(), loss);
                    double ce = 0;
                    for (int i = 0; i < rows; i++) {
                        double max = Double.NEGATIVE_INFINITY;
                        for (int c = 0; c < classes; c++) {
                            max = Math.max(max, alpha * z[i * classes + c]);
                        }
                        double sum = 0;
                        double sumPlain = 0;
                        double maxPlain = max / alpha;
                        for (int c = 0; c < classes; c++) {
                            sum += Math.exp(alpha * z[i * classes + c] - max);
                            sumPlain += Math.exp(z[i * classes + c] - maxPlain);
                        }
                        ce += -(z[i * classes + yi[i]] - maxPlain - Math.log(sumPlain));
                        for (int c = 0; c < classes; c++) {
                            double expected = (Math.exp(alpha * z[i * classes + c] - max) / sum - (c == yi[i] ? 1 : 0)) / rows;
                            assertEquals(expected, got[i * classes + c], 1e-6, "grad[" + i + "][" + c + "], seed " + seed);
                        }
                    }
                    assertEquals(ce / rows, loss, 1e-5 * Math.max(1, ce / rows), "mean cross entropy, seed " + seed);
                }
            }
        }
    }

    @Test
    void acceptsDjlLabelTypesAndRefusesBadInput() {
        try (NDManager manager = NDManager.newBaseManager(); PowerGradLoss pgt = PowerGradLoss.of(0.25)) {
            NDArray z = manager.randomNormal(new Shape(4, 3));
            for (NDArray labels : new NDArray[] {manager.create(new int[] {0, 1, 2, 0}), manager.create(new float[] {0, 1, 2, 0}),
                    manager.create(new long[] {0, 1, 2, 0}, new Shape(4, 1))}) {
                NDArray logits = z.duplicate();
                logits.setRequiresGradient(true);
                try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                    assertTrue(Double.isFinite(pgt.backward(logits, labels)));
                }
            }
            NDArray logits = z.duplicate();
            logits.setRequiresGradient(true);
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                IllegalArgumentException f = assertThrows(IllegalArgumentException.class,
                        () -> pgt.backward(logits, manager.create(new float[] {0, 1.5f, 2, 0})));
                assertTrue(f.getMessage().contains("labels[1]"), f.getMessage());
                IllegalArgumentException s = assertThrows(IllegalArgumentException.class,
                        () -> pgt.backward(logits, manager.create(new long[] {0, 1, 2})));
                assertTrue(s.getMessage().contains("labels"), s.getMessage());
                IllegalArgumentException range = assertThrows(IllegalArgumentException.class,
                        () -> pgt.backward(logits, manager.create(new long[] {0, 1, 3, 0})));
                assertTrue(range.getMessage().contains("label"), range.getMessage());
                assertThrows(IllegalArgumentException.class, () -> pgt.backward(z.reshape(12), manager.create(new long[] {0})));
            }
            IllegalStateException noGrad = assertThrows(IllegalStateException.class,
                    () -> pgt.backward(manager.randomNormal(new Shape(4, 3)), manager.create(new long[] {0, 1, 2, 0})));
            assertTrue(noGrad.getMessage().contains("GradientCollector"), noGrad.getMessage());
            assertThrows(IllegalArgumentException.class, () -> PowerGradLoss.of(PowerGrad.Options.of(1).withReduction(PowerGrad.Reduction.SUM)));
        }
    }
}
