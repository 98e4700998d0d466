package io.gradshape.djl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.ParameterList;
import ai.djl.nn.SequentialBlock;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import io.gradshape.SgsSchedule;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The DJL adapter against DJL's own training and against float64 oracles of SPEC.md section 2. */
class GradshapeSgdTest {
    private static final int BATCH = 16;

    private static long seed() {
        return System.nanoTime();
    }

    /**
     * With alpha = 1 and G = 1, gradshape's optimizer and loss follow DJL's own SGD and cross entropy
     * over 40 steps: losses to float rounding at every step, weights at the end.
     *
     * <p>Each side runs twice, as twins. On this machine libtorch 2.7.1 (DJL's pytorch-native-cpu)
     * sometimes computes a conv weight gradient wrongly, even NaN, in a pure DJL run with no gradshape in
     * the process (docs/adapter-djl.md); that can hit any model. An attempt in which either pair of twins
     * disagrees with itself measured nothing and is repeated with a fresh seed; an attempt in which both
     * pairs agree internally but gradshape differs from DJL fails at once. At least one clean attempt
     * is required.
     */
    @Test
    void equalsDjlSgdAndCrossEntropyOver40Steps() {
        List<String> voided = new ArrayList<>();
        for (int attempt = 0; attempt < 8; attempt++) {
            String broken = compareWithDjl(seed(), 40);
            if (broken == null) {
                if (!voided.isEmpty()) {
                    System.err.println("GradshapeSgdTest: voided attempts (libtorch disagreed with itself): " + voided);
                }
                return;
            }
            voided.add(broken);
        }
        throw new AssertionError("twins disagreed with themselves in every attempt: " + voided);
    }

    /** One attempt; null when clean, else why a pair of twins disagreed with itself. */
    private static String compareWithDjl(long seed, int steps) {
        float lr = 0.05f;
        float momentum = 0.9f;
        float wd = 1e-3f;
        // Two input channels: libtorch's CPU conv backward for a conv with ONE input channel sometimes
        // leaves NaN in the weight gradient (seen with DJL's libtorch 2.7.1 and the presets' 2.10, with
        // no gradshape code involved; docs/adapter-djl.md). This test is about the optimizer, so it
        // keeps off that path: the second channel is the image scaled, which changes no code under test.
        Shape input = new Shape(BATCH, 2, TestNets.SIDE, TestNets.SIDE);
        Model[] models = new Model[4]; // DJL, DJL twin, gradshape, gradshape twin
        Trainer[] trainers = new Trainer[4];
        GradshapeSgd[] sgd = new GradshapeSgd[2];
        try (NDManager manager = NDManager.newBaseManager(); PowerGradLoss ce = PowerGradLoss.of(1.0)) {
            for (int i = 0; i < 4; i++) {
                models[i] = Model.newInstance("m" + i);
                Engine.getInstance().setRandomSeed((int) seed);
                models[i].setBlock(TestNets.smoothCnn());
                DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss());
                if (i < 2) {
                    config.optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(lr)).optMomentum(momentum)
                            .optWeightDecays(wd).build());
                }
                trainers[i] = models[i].newTrainer(config);
                Engine.getInstance().setRandomSeed((int) seed);
                trainers[i].initialize(input);
                if (i >= 2) {
                    // DJL's Sgd decays every parameter: so does ours here.
                    sgd[i - 2] = GradshapeSgd.builder(models[i].getBlock()).lr(lr).momentum(momentum).weightDecay(wd)
                            .decayIf(p -> true).build();
                }
            }
            assertParametersEqual(models[0].getBlock().getParameters(), models[2].getBlock().getParameters(), 0,
                    "start, seed " + seed);
            Random random = new Random(seed);
            double worst = 0;
            for (int step = 0; step < steps; step++) {
                NDArray image = TestNets.images(manager, random, BATCH);
                NDArray x = image.concat(image.mul(0.5f), 1);
                NDArray y = TestNets.labels(manager, random, BATCH);
                double[] loss = new double[4];
                for (int i = 0; i < 4; i++) {
                    try (GradientCollector gc = trainers[i].newGradientCollector()) {
                        NDList logits = trainers[i].forward(new NDList(x));
                        if (i < 2) {
                            NDArray l = trainers[i].getLoss().evaluate(new NDList(y), logits);
                            loss[i] = l.getFloat();
                            gc.backward(l);
                        } else {
                            loss[i] = logits.head().isNaN().any().getBoolean() ? Double.NaN : ce.backward(logits.head(), y);
                        }
                    }
                    if (i < 2) {
                        trainers[i].step();
                    } else if (!Double.isNaN(loss[i])) {
                        sgd[i - 2].step();
                    }
                }
                x.close();
                y.close();
                if (!(loss[0] == loss[1]) || !(loss[2] == loss[3])) {
                    return "seed " + seed + ", step " + step + ": DJL twins " + loss[0] + ", " + loss[1]
                            + "; gradshape twins " + loss[2] + ", " + loss[3];
                }
                double rel = Math.abs(loss[2] - loss[0]) / Math.abs(loss[0]);
                worst = Math.max(worst, rel);
                assertTrue(rel < 1e-5, "step " + step + ": loss " + loss[2] + " vs DJL " + loss[0] + ", seed " + seed);
            }
            assertEquals(steps, sgd[0].steps());
            assertEquals(0, sgd[0].rebinds());
            assertParametersEqual(models[0].getBlock().getParameters(), models[2].getBlock().getParameters(), 1e-3,
                    "after " + steps + " steps, seed " + seed + " (worst loss rel. diff " + worst + ")");
            return null;
        } finally {
            for (GradshapeSgd g : sgd) {
                if (g != null) {
                    g.close();
                }
            }
            for (int i = 0; i < 4; i++) {
                if (trainers[i] != null) {
                    trainers[i].close();
                }
                if (models[i] != null) {
                    models[i].close();
                }
            }
        }
    }

    /**
     * With SGS on, the first step is {@code grad *= G} then torch's SGD step, in float64 from the weights
     * and gradients DJL holds; weights and gradients stay where DJL put them (zero copy).
     */
    @Test
    void firstScaledStepMatchesFloat64OracleInPlace() {
        long seed = seed();
        float lr = 0.1f;
        float momentum = 0.9f;
        float wd = 5e-3f;
        try (NDManager manager = NDManager.newBaseManager()) {
            SequentialBlock block = TestNets.initialized(manager, seed, BATCH);
            Random random = new Random(seed);
            try (GradshapeSgd sgd = GradshapeSgd.builder(block).lr(lr).momentum(momentum).weightDecay(wd)
                    .sgs(new SgsSchedule(5, 2, 0)).build()) {
                List<Batch> batches = List.of(batch(manager, random), batch(manager, random));
                assertTrue(sgd.startEpoch(0, batches), "warmup 0: refresh at epoch 0");
                assertEquals(1, sgd.sgs().refreshes());
                ParameterStore store = new ParameterStore(manager, false);
                NDArray x = TestNets.images(manager, random, BATCH);
                NDArray y = TestNets.labels(manager, random, BATCH);
                try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                    NDArray logits = block.forward(store, new NDList(x), true).singletonOrThrow();
                    gc.backward(Loss.softmaxCrossEntropyLoss().evaluate(new NDList(y), new NDList(logits)));
                }
                ParameterList params = block.getParameters();
                List<float[]> w0 = new ArrayList<>();
                List<float[]> g0 = new ArrayList<>();
                List<Long> gradAddress = new ArrayList<>();
                for (var p : params) {
                    NDArray w = p.getValue().getArray();
                    w0.add(w.toFloatArray());
                    try (PtNDArray g = DjlArrays.gradientOrNull(w)) {
                        g0.add(g.toFloatArray());
                        gradAddress.add(DjlArrays.currentAddress(g));
                    }
                }
                sgd.step();
                int scaled = 0;
                for (int i = 0; i < params.size(); i++) {
                    NDArray w = params.get(i).getValue().getArray();
                    long[] bound = sgd.boundAddresses(i);
                    assertEquals(DjlArrays.currentAddress(w), bound[0], "weights of " + params.get(i).getKey() + " bound in place");
                    assertEquals(gradAddress.get(i), bound[1], "gradient of " + params.get(i).getKey() + " bound in place");
                    int[] k = sgd.kernel(i);
                    float[] gScale = sgd.scale(i);
                    if (k != null) {
                        scaled++;
                        assertArrayEquals(new int[] {3, 3}, k);
                        assertNotEquals(1f, gScale[4], "G of a refreshed conv is not all ones");
                    } else {
                        assertNull(gScale);
                    }
                    boolean decays = w.getShape().dimension() > 1;
                    assertEquals(decays, sgd.decays(i));
                    float[] after = w.toFloatArray(); // DJL reads what gradshape wrote
                    int area = k == null ? 1 : k[0] * k[1];
                    for (int e = 0; e < after.length; e++) {
                        double gs = k == null ? 1.0 : gScale[e % area];
                        double d = gs * g0.get(i)[e] + (decays ? wd * (double) w0.get(i)[e] : 0);
                        double expected = w0.get(i)[e] - lr * d; // first step: buf = d
                        assertEquals(expected, after[e], 1e-6 + 1e-6 * Math.abs(expected),
                                params.get(i).getKey() + "[" + e + "], seed " + seed);
                    }
                    try (PtNDArray g = DjlArrays.gradientOrNull(w)) {
                        assertNotNull(g);
                        assertEquals(0f, g.abs().max().getFloat(), "gradient of " + params.get(i).getKey() + " zeroed after the step");
                        assertEquals(gradAddress.get(i), DjlArrays.currentAddress(g), "zeroed in place");
                    }
                }
                assertEquals(2, scaled);
            }
        }
    }

    /** A weight replaced by DJL (NDArray.set moves its storage) and a gradient moved by a create_graph backward: rebinds. */
    @Test
    void rebindsWhenDjlMovesAWeightOrAGradient() {
        long seed = seed();
        float lr = 0.1f;
        try (NDManager manager = NDManager.newBaseManager()) {
            SequentialBlock block = TestNets.initialized(manager, seed, BATCH);
            Random random = new Random(seed);
            ParameterStore store = new ParameterStore(manager, false);
            try (GradshapeSgd sgd = GradshapeSgd.builder(block).lr(lr).momentum(0.5f).build()) {
                backward(block, store, manager, random, false);
                sgd.step();
                NDArray w = block.getParameters().get(0).getValue().getArray();
                long before = sgd.boundAddresses(0)[0];
                float[] fresh = new float[(int) w.size()];
                for (int i = 0; i < fresh.length; i++) {
                    fresh[i] = (float) random.nextGaussian();
                }
                w.set(fresh);
                assertNotEquals(before, DjlArrays.currentAddress(w), "DJL's set(...) gives the tensor new storage");
                backward(block, store, manager, random, false);
                float[] grad;
                try (PtNDArray g = DjlArrays.gradientOrNull(w)) {
                    grad = g.toFloatArray();
                }
                sgd.step();
                assertEquals(1, sgd.rebinds());
                assertEquals(DjlArrays.currentAddress(w), sgd.boundAddresses(0)[0]);
                assertEquals(2, sgd.optimizer().stepCount(), "the step count survives a rebind");
                float[] after = w.toFloatArray();
                // The update went into the new storage: w moved against the gradient (momentum continues).
                double dot = 0;
                for (int i = 0; i < after.length; i++) {
                    dot += (after[i] - fresh[i]) * (double) grad[i];
                }
                assertTrue(dot < 0, "the rebound step updated the new weights, seed " + seed);

                backward(block, store, manager, random, true); // create_graph: libtorch makes a new gradient tensor
                long gradBefore = sgd.boundAddresses(0)[1];
                try (PtNDArray g = DjlArrays.gradientOrNull(w)) {
                    assertNotEquals(gradBefore, DjlArrays.currentAddress(g));
                }
                sgd.step();
                assertEquals(2, sgd.rebinds());
            }
        }
    }

    @Test
    void refusesAStepWithoutGradientsAndBadSettings() {
        long seed = seed();
        try (NDManager manager = NDManager.newBaseManager()) {
            SequentialBlock block = TestNets.initialized(manager, seed, BATCH);
            try (GradshapeSgd sgd = GradshapeSgd.builder(block).lr(0.1f).build()) {
                IllegalStateException e = assertThrows(IllegalStateException.class, sgd::step);
                assertTrue(e.getMessage().contains("01Conv2d_weight") && e.getMessage().contains("no gradient"), e.getMessage());
            }
            assertThrows(IllegalArgumentException.class, () -> GradshapeSgd.builder(block).build(), "lr missing");
            IllegalArgumentException m = assertThrows(IllegalArgumentException.class,
                    () -> GradshapeSgd.builder(block).lr(0.1f).momentum(-1f).build());
            assertTrue(m.getMessage().contains("momentum"), m.getMessage());
            assertThrows(IllegalArgumentException.class, () -> GradshapeSgd.builder(TestNets.cnn()).lr(0.1f).build(),
                    "an uninitialized block");
            NDArray t = manager.randomUniform(0, 1, new Shape(3, 4)).transpose();
            IllegalArgumentException c = assertThrows(IllegalArgumentException.class, () -> DjlArrays.bind(t, "t"));
            assertTrue(c.getMessage().contains("contiguous"), c.getMessage());
            GradshapeSgd closed = GradshapeSgd.builder(block).lr(0.1f).build();
            closed.close();
            closed.close();
            assertThrows(IllegalStateException.class, closed::step);
        }
    }

    /** DJL's learning-rate tracker drives the step's lr, counted from 1 as DJL's optimizers count. */
    @Test
    void followsDjlLearningRateTracker() {
        long seed = seed();
        try (NDManager manager = NDManager.newBaseManager()) {
            SequentialBlock block = TestNets.initialized(manager, seed, BATCH);
            Random random = new Random(seed);
            ParameterStore store = new ParameterStore(manager, false);
            Tracker tracker = Tracker.factor().setBaseValue(0.2f).setFactor(0.5f).build();
            try (GradshapeSgd sgd = GradshapeSgd.builder(block).lr(tracker).build()) {
                for (int s = 1; s <= 3; s++) {
                    backward(block, store, manager, random, false);
                    sgd.step();
                    assertEquals(tracker.getNewValue(s), sgd.optimizer().learningRate(), "step " + s);
                }
            }
        }
    }

    private static void backward(SequentialBlock block, ParameterStore store, NDManager manager, Random random,
            boolean createGraph) {
        NDArray x = TestNets.images(manager, random, BATCH);
        NDArray y = TestNets.labels(manager, random, BATCH);
        try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
            NDArray logits = block.forward(store, new NDList(x), true).singletonOrThrow();
            NDArray loss = Loss.softmaxCrossEntropyLoss().evaluate(new NDList(y), new NDList(logits));
            if (createGraph) {
                JniUtils.backward((PtNDArray) loss, (PtNDArray) manager.ones(loss.getShape()), false, true);
            } else {
                gc.backward(loss);
            }
        }
    }

    private static Batch batch(NDManager parent, Random random) {
        NDManager m = parent.newSubManager();
        NDArray x = TestNets.images(m, random, BATCH);
        NDArray y = TestNets.labels(m, random, BATCH);
        return new Batch(m, new NDList(x), new NDList(y), BATCH, null, null, 0, 1);
    }

    private static void assertParametersEqual(ParameterList a, ParameterList b,
            double relTol, String when) {
        assertEquals(a.size(), b.size());
        for (int i = 0; i < a.size(); i++) {
            float[] x = a.get(i).getValue().getArray().toFloatArray();
            float[] y = b.get(i).getValue().getArray().toFloatArray();
            assertEquals(x.length, y.length);
            double scale = 0;
            for (float v : x) {
                scale = Math.max(scale, Math.abs(v));
            }
            for (int e = 0; e < x.length; e++) {
                assertEquals(x[e], y[e], relTol * scale + (relTol == 0 ? 0 : 1e-7),
                        a.get(i).getKey() + "[" + e + "] " + when);
            }
        }
    }
}
