package io.gradshape.pytorch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.CrossEntropyLossImpl;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class PowerGradLossTest {
    @BeforeAll
    static void warm() {
        TestNet.libtorch();
    }

    static Tensor logits(Random r, int rows, int classes) {
        float[] v = new float[rows * classes];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (3 * r.nextGaussian());
        }
        return TestNet.tensor(v, rows, classes).set_requires_grad(true);
    }

    /** alpha = 1: loss and the gradient libtorch's backward leaves equal cross_entropy's. */
    @Test
    void alphaOneIsLibtorchsCrossEntropy() {
        for (int rows : new int[] {1, 7, 64}) {
            long seed = 100 + rows;
            Random r = new Random(seed);
            try (PointerScope scope = new PointerScope(); PowerGradLoss loss = PowerGradLoss.of(1.0);
                 CrossEntropyLossImpl ce = new CrossEntropyLossImpl()) {
                Tensor a = logits(r, rows, 10);
                Tensor b = a.detach().clone().set_requires_grad(true);
                long[] labels = new long[rows];
                for (int i = 0; i < rows; i++) {
                    labels[i] = r.nextInt(10);
                }
                Tensor y = Tensor.create(labels, rows);
                Tensor l = ce.forward(a, y);
                l.backward();
                double ours = loss.backward(b, y);
                String what = "rows " + rows + ", seed " + seed;
                assertEquals(l.item_double(), ours, 1e-6 * Math.max(1, Math.abs(ours)), "loss, " + what);
                float[] ga = TestNet.floats(a.grad());
                float[] gb = TestNet.floats(b.grad());
                for (int i = 0; i < ga.length; i++) {
                    assertEquals(ga[i], gb[i], 1e-7, "gradient[" + i + "], " + what);
                }
            }
        }
    }

    /** alpha = 0.25: backward receives (softmax(alpha z) - onehot) / batch, computed here in float64. */
    @Test
    void pgtGradientReachesBackward() {
        long seed = 31;
        Random r = new Random(seed);
        int rows = 13, classes = 10;
        double alpha = 0.25;
        try (PointerScope scope = new PointerScope(); PowerGradLoss loss = PowerGradLoss.of(alpha)) {
            Tensor z = logits(r, rows, classes);
            float[] zv = TestNet.floats(z);
            long[] labels = new long[rows];
            for (int i = 0; i < rows; i++) {
                labels[i] = r.nextInt(classes);
            }
            double value = loss.backward(z, Tensor.create(labels, rows));
            float[] g = TestNet.floats(z.grad());
            double ceSum = 0;
            for (int i = 0; i < rows; i++) {
                double max = Double.NEGATIVE_INFINITY, maxA = Double.NEGATIVE_INFINITY;
                for (int c = 0; c < classes; c++) {
                    max = Math.max(max, zv[i * classes + c]);
                    maxA = Math.max(maxA, alpha * zv[i * classes + c]);
                }
                double sum = 0, sumA = 0;
                for (int c = 0; c < classes; c++) {
                    sum += Math.exp(zv[i * classes + c] - max);
                    sumA += Math.exp(alpha * zv[i * classes + c] - maxA);
                }
                ceSum += Math.log(sum) + max - zv[i * classes + (int) labels[i]];
                for (int c = 0; c < classes; c++) {
                    double p = Math.exp(alpha * zv[i * classes + c] - maxA) / sumA;
                    double expected = (p - (c == labels[i] ? 1 : 0)) / rows;
                    assertEquals(expected, g[i * classes + c], 1e-7, "gradient[" + i + "][" + c + "] (seed " + seed + ")");
                }
            }
            assertEquals(ceSum / rows, value, 1e-5, "the loss reported is the ordinary cross entropy");
            assertEquals(value, loss.lastLoss(), 0);
        }
    }

    /** Bad labels or logits are rejected before backward runs: no gradient reaches the logits. */
    @Test
    void badInputIsRejectedBeforeBackward() {
        Random r = new Random(2);
        try (PointerScope scope = new PointerScope(); PowerGradLoss loss = PowerGradLoss.of(0.5)) {
            Tensor z = logits(r, 4, 10);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> loss.backward(z, Tensor.create(new int[] {1, 2, 3, 4}, 4)));
            assertTrue(e.getMessage().contains("labels") && e.getMessage().contains("int64"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> loss.backward(z, Tensor.create(new long[] {1, 2, 3}, 3)));
            assertTrue(e.getMessage().contains("[4]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> loss.backward(z, Tensor.create(new long[] {1, 2, 10, 0}, 4)));
            assertTrue(e.getMessage().contains("label"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> loss.backward(z, Tensor.create(new long[] {1, 2, 1L << 40, 0}, 4)));
            assertTrue(e.getMessage().contains("labels[2]"), e.getMessage());
            Tensor wide = z.detach().to(torch.ScalarType.Double);
            assertThrows(IllegalArgumentException.class, () -> loss.backward(wide, Tensor.create(new long[] {1, 2, 3, 4}, 4)));
            assertFalse(z.grad().defined(), "backward never ran");
            assertThrows(IllegalArgumentException.class,
                    () -> new PowerGradLoss(io.gradshape.PowerGrad.Options.of(1).withReduction(io.gradshape.PowerGrad.Reduction.NONE)));
        }
        PowerGradLoss closed = PowerGradLoss.of(1);
        closed.close();
        closed.close();
        assertThrows(IllegalStateException.class, () -> closed.backward(logits(r, 1, 2), Tensor.create(new long[] {0}, 1)));
    }
}
