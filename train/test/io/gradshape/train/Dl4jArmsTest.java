package io.gradshape.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.SgsSchedule;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The DL4J arms on a small synthetic Fashion-MNIST stand-in: the table's fields are filled and plausible. */
class Dl4jArmsTest {
    static FashionMnist synthetic(long seed, int train, int test) {
        Random rnd = new Random(seed);
        float[] tr = new float[train * FashionMnist.PIXELS];
        float[] te = new float[test * FashionMnist.PIXELS];
        int[] trl = new int[train];
        int[] tel = new int[test];
        // class c: a bright horizontal band at row 2c + 4, plus noise, so the net can learn something
        fill(rnd, tr, trl);
        fill(rnd, te, tel);
        return new FashionMnist(tr, trl, te, tel, "synthetic (seed " + seed + ")");
    }

    private static void fill(Random rnd, float[] x, int[] y) {
        for (int i = 0; i < y.length; i++) {
            y[i] = rnd.nextInt(Network.CLASSES);
            for (int p = 0; p < FashionMnist.PIXELS; p++) {
                int row = p / FashionMnist.SIDE;
                x[i * FashionMnist.PIXELS + p] = 0.3f * rnd.nextFloat() + (Math.abs(row - (2 * y[i] + 4)) <= 1 ? 0.7f : 0f);
            }
        }
    }

    @Test
    void sgsPlusPgtArmTrainsAndReportsItsShare() throws Exception {
        long seed = System.nanoTime() % 10_000;
        FashionMnist data = synthetic(seed, 256, 64);
        ArmSpec spec = new ArmSpec("sgs+pgt", true, 0.25f, true, seed, 2, 256, 64, 32, 0.05f, 0.9f, 5e-4f,
                new SgsSchedule(5, 2, 1), 2);
        int[] ticks = new int[1];
        ArmResult r = new Dl4jArms().run(spec, data, (epoch, step, perEpoch, loss) -> ticks[0]++);
        assertEquals(16, r.steps(), "seed " + seed + ": 2 epochs of 8 steps");
        assertEquals(16, ticks[0]);
        assertEquals("dl4j", r.trainer());
        assertEquals(2, r.curve().size());
        assertTrue(Double.isFinite(r.finalLoss()) && r.testAccuracy() >= 0 && r.testAccuracy() <= 1, r.toString());
        assertTrue(r.gradshapeMsPerStep() > 0 && r.gradshapeMsPerStep() < r.stepMs(),
                "seed " + seed + ": gradshape " + r.gradshapeMsPerStep() + " ms of a " + r.stepMs() + " ms step");
        assertEquals(4, r.g().size());
        assertNotEquals(1f, r.g().get(0).g()[4], "seed " + seed + ": G of conv1 refreshed at epoch 1");
        System.out.printf("dl4j sgs+pgt: step %.2f ms, gradshape %.3f ms (%.2f %%), accuracy %.3f%n", r.stepMs(),
                r.gradshapeMsPerStep(), 100 * r.gradshapeMsPerStep() / r.stepMs(), r.testAccuracy());
    }

    @Test
    void baselineArmUsesNoGradshape() throws Exception {
        long seed = System.nanoTime() % 10_000 + 1;
        FashionMnist data = synthetic(seed, 128, 32);
        ArmSpec spec = new ArmSpec("baseline", false, Float.NaN, false, seed, 1, 128, 32, 32, 0.05f, 0.9f, 5e-4f,
                SgsSchedule.defaults(), 2);
        ArmResult r = new Dl4jArms().run(spec, data, (epoch, step, perEpoch, loss) -> {});
        assertEquals(4, r.steps());
        assertEquals(0, r.gradshapeMsPerStep());
        assertArrayEquals(new float[] {1, 1, 1, 1, 1, 1, 1, 1, 1}, r.g().get(3).g());
    }
}
