package io.gradshape.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.SgsSchedule;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.ServiceLoader;
import org.junit.jupiter.api.Test;

/** The pytorch arms on a small synthetic set: registered, the adapter's arm equals libtorch's own, SGS refreshes. */
class PytorchArmsTest {
    static FashionMnist synthetic(long seed, int train, int test) {
        Random r = new Random(seed);
        float[] a = new float[train * FashionMnist.PIXELS];
        float[] b = new float[test * FashionMnist.PIXELS];
        for (int i = 0; i < a.length; i++) {
            a[i] = r.nextFloat();
        }
        for (int i = 0; i < b.length; i++) {
            b[i] = r.nextFloat();
        }
        int[] la = r.ints(train, 0, 10).toArray();
        int[] lb = r.ints(test, 0, 10).toArray();
        return new FashionMnist(a, la, b, lb, "synthetic (seed " + seed + ")");
    }

    static ArmSpec spec(String name, boolean sgs, float alpha, boolean gradshapeSgd, int epochs) {
        return new ArmSpec(name, sgs, alpha, gradshapeSgd, 7, epochs, 24, 20, 8, 0.05f, 0.9f, 5e-4f,
                new SgsSchedule(5, 2, 1), 2);
    }

    static final class Recorder implements ArmRunner.StepListener {
        final List<Double> losses = new ArrayList<>();
        int epochs;

        @Override
        public void step(int epoch, long stepInEpoch, long stepsPerEpoch, double loss) {
            losses.add(loss);
        }

        @Override
        public void epoch(int epoch, double trainLoss, double testAccuracy) {
            epochs++;
        }
    }

    @Test
    void registeredForServiceLoader() {
        List<String> names = ServiceLoader.load(ArmRunner.class).stream().map(p -> p.get().trainer()).toList();
        assertTrue(names.contains("pytorch"), names.toString());
    }

    /** gradshape's SGD with cross-entropy, and PowerGrad at alpha = 1, follow libtorch's SGD step for step. */
    @Test
    void adapterArmsEqualTheBaseline() throws Exception {
        FashionMnist data = synthetic(3, 24, 20);
        PytorchArms arms = new PytorchArms();
        Recorder base = new Recorder(), ours = new Recorder(), pgt1 = new Recorder();
        ArmResult b = arms.run(spec("baseline", false, Float.NaN, false, 2), data, base);
        ArmResult o = arms.run(spec("gradshape-sgd", false, Float.NaN, true, 2), data, ours);
        ArmResult p = arms.run(spec("pgt-1", false, 1f, true, 2), data, pgt1);
        assertEquals(6, base.losses.size());
        assertEquals(2, base.epochs);
        for (int i = 0; i < base.losses.size(); i++) {
            double e = base.losses.get(i);
            assertEquals(e, ours.losses.get(i), 1e-5 * Math.abs(e) + 1e-6, "gradshape SGD, step " + i);
            assertEquals(e, pgt1.losses.get(i), 1e-5 * Math.abs(e) + 1e-6, "PowerGrad alpha 1, step " + i);
        }
        assertEquals(b.testAccuracy(), o.testAccuracy(), 1e-9);
        assertEquals(0, b.gradshapeMsPerStep(), 0, "the baseline spends nothing in gradshape");
        assertTrue(o.gradshapeMsPerStep() > 0 && o.gradshapeMsPerStep() < o.stepMs(), o.toString());
        assertTrue(p.gradshapeMsPerStep() > 0 && p.gradshapeMsPerStep() < p.stepMs(), p.toString());
        assertEquals("pytorch", b.trainer());
        assertEquals(6, b.steps());
    }

    @Test
    void sgsArmRefreshesGAtTheWarmupEpoch() throws Exception {
        FashionMnist data = synthetic(5, 24, 20);
        ArmResult r = new PytorchArms().run(spec("sgs+pgt", true, 0.25f, true, 2), data, new Recorder());
        assertEquals(4, r.g().size());
        float[] ones = new float[9];
        Arrays.fill(ones, 1f);
        for (ArmResult.ConvG g : r.g()) {
            assertFalse(Arrays.equals(ones, g.g()), "G of " + g.conv() + " refreshed at epoch 1");
            double mean = 0;
            for (float v : g.g()) {
                mean += v / 9;
            }
            assertEquals(1, mean, 1e-4, "G of " + g.conv() + " has mean 1");
        }
        assertEquals(2, r.curve().size());
        assertTrue(Double.isFinite(r.finalLoss()) && r.testAccuracy() >= 0 && r.testAccuracy() <= 1, r.toString());
    }
}
