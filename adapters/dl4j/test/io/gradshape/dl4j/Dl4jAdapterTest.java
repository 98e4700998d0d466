package io.gradshape.dl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.Backends;
import io.gradshape.SgsRefresh;
import io.gradshape.SgsSchedule;
import io.gradshape.SpatialDependence;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.deeplearning4j.datasets.iterator.utilty.ListDataSetIterator;
import org.deeplearning4j.nn.conf.MultiLayerConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.SubsamplingLayer;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.nn.updater.BaseMultiLayerUpdater;
import org.deeplearning4j.nn.updater.UpdaterBlock;
import org.deeplearning4j.nn.weights.WeightInit;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.Nesterovs;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.linalg.lossfunctions.ILossFunction;
import org.nd4j.linalg.lossfunctions.impl.LossMCXENT;

/**
 * The DL4J adapter against DL4J itself and against float64 formulas, on a small conv net (two 3x3
 * convs, max-pool, dense, softmax output) and fresh random data: fixed seeds, named in every message.
 */
class Dl4jAdapterTest {
    static final int SIDE = 8;
    static final int CLASSES = 10;
    static final int BATCH = 16;

    /** conv0 3x3 1->4 pad 1, conv1 3x3 4->6 pad 1, max-pool 2, dense 16, output 10 (softmax). */
    static MultiLayerConfiguration config(long seed, IUpdater updater, ILossFunction loss) {
        return new NeuralNetConfiguration.Builder().seed(seed).updater(updater).weightInit(WeightInit.XAVIER)
                .list()
                .layer(new ConvolutionLayer.Builder(3, 3).nOut(4).padding(1, 1).activation(Activation.RELU).name("conv0").build())
                .layer(new ConvolutionLayer.Builder(3, 3).nOut(6).padding(1, 1).activation(Activation.RELU).name("conv1").build())
                .layer(new SubsamplingLayer.Builder(SubsamplingLayer.PoolingType.MAX).kernelSize(2, 2).stride(2, 2).build())
                .layer(new DenseLayer.Builder().nOut(16).activation(Activation.RELU).name("fc").build())
                .layer(new OutputLayer.Builder(loss).nOut(CLASSES).activation(Activation.SOFTMAX).name("out").build())
                .setInputType(InputType.convolutional(SIDE, SIDE, 1)).build();
    }

    static MultiLayerNetwork net(long seed, IUpdater updater, ILossFunction loss) {
        MultiLayerNetwork n = new MultiLayerNetwork(config(seed, updater, loss));
        n.init();
        return n;
    }

    /** Smooth-ish random images (a random field blurred once, so neighbours depend) and one-hot labels. */
    static DataSet batch(Random rnd, int n) {
        float[] x = new float[n * SIDE * SIDE];
        for (int i = 0; i < n; i++) {
            float[] raw = new float[(SIDE + 1) * (SIDE + 1)];
            for (int k = 0; k < raw.length; k++) {
                raw[k] = rnd.nextFloat();
            }
            for (int r = 0; r < SIDE; r++) {
                for (int c = 0; c < SIDE; c++) {
                    int o = r * (SIDE + 1) + c;
                    x[i * SIDE * SIDE + r * SIDE + c] = (raw[o] + raw[o + 1] + raw[o + SIDE + 1] + raw[o + SIDE + 2]) / 4;
                }
            }
        }
        float[] y = new float[n * CLASSES];
        for (int i = 0; i < n; i++) {
            y[i * CLASSES + rnd.nextInt(CLASSES)] = 1;
        }
        return new DataSet(Nd4j.create(x, new long[] {n, 1, SIDE, SIDE}, 'c'), Nd4j.create(y, new long[] {n, CLASSES}, 'c'));
    }

    static double[] doubles(INDArray a) {
        return a.dup('c').data().asDouble();
    }

    static double maxAbs(double[] a) {
        double m = 0;
        for (double v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    /** Runs DL4J's own updater + MCXENT next to GradshapeSgd + PowerGradLoss(1) for {@code steps} steps. */
    private void assertSameRun(long seed, IUpdater own, GradshapeSgd ours, int steps) {
        MultiLayerNetwork a = net(seed, own, new LossMCXENT());
        MultiLayerNetwork b = net(seed, ours, new PowerGradLoss(1));
        double[] initial = doubles(a.params());
        assertArrayEquals(initial, doubles(b.params()), 0, "seed " + seed + ": same initial weights");
        try (GradshapeListener listener = new GradshapeListener()) {
            b.addListeners(listener);
            Random rnd = new Random(seed);
            for (int s = 0; s < steps; s++) {
                DataSet ds = batch(rnd, BATCH);
                a.fit(ds);
                b.fit(ds);
                // DL4J's MCXENT clips the softmax it reports the score of at 1e-10: equal to float rounding here
                assertEquals(a.score(), b.score(), 2e-6 * Math.max(1, Math.abs(a.score())),
                        "seed " + seed + ", step " + s + ", " + own + ": loss");
            }
            double[] pa = doubles(a.params());
            double[] pb = doubles(b.params());
            double scale = maxAbs(pa);
            double worst = 0;
            for (int i = 0; i < pa.length; i++) {
                worst = Math.max(worst, Math.abs(pa[i] - pb[i]));
            }
            assertTrue(worst <= 1e-5 * scale, "seed " + seed + ", " + own + ": weights after " + steps
                    + " steps differ by " + worst + " (max |w| " + scale + ")");
            double moved = 0;
            for (int i = 0; i < pa.length; i++) {
                moved = Math.max(moved, Math.abs(pb[i] - initial[i]));
            }
            assertTrue(moved > 1e3 * worst, "seed " + seed + ": training moved the weights (" + moved + ") far more than"
                    + " the two runs differ (" + worst + ")");
            assertEquals(steps, listener.timing().steps(), "steps stepped by gradshape");
            assertEquals(0, listener.rebinds(), "no rebind without a move");
        }
    }

    @Test
    void alphaOneGOneEqualsDl4jSgdAndMcxent() {
        long seed = System.nanoTime() % 100_000;
        assertSameRun(seed, new Sgd(0.1), new GradshapeSgd(0.1), 40);
    }

    @Test
    void alphaOneGOneEqualsDl4jNesterovsAndMcxent() {
        long seed = System.nanoTime() % 100_000 + 7;
        assertSameRun(seed, new Nesterovs(0.05, 0.9), GradshapeSgd.nesterovs(0.05, 0.9), 45);
    }

    /** With SGS on: the first step is {@code grad *= G; torch-style SGD} in float64. */
    @Test
    void firstSgsStepEqualsFloat64Formula() {
        long seed = System.nanoTime() % 100_000 + 11;
        Random rnd = new Random(seed);
        float lr = 0.05f;
        float momentum = 0.9f;
        float wd = 1e-2f;
        MultiLayerNetwork net = net(seed, new GradshapeSgd(lr).momentum(momentum).weightDecay(wd), new PowerGradLoss(0.25));
        List<DataSet> capture = List.of(batch(rnd, BATCH), batch(rnd, BATCH));
        try (GradshapeListener listener = GradshapeListener.sgs(new SgsSchedule(5, 2, 1), new ListDataSetIterator<>(capture, 1))) {
            net.addListeners(listener);
            List<SgsRefresh.Update> updates = listener.refresh(net);
            assertEquals(List.of("conv0", "conv1"), listener.scaledConvs());
            assertEquals(2, updates.size());

            // G of each conv equals SpatialDependence.compute on the same images (merged batches = one batch)
            INDArray images = Nd4j.concat(0, capture.get(0).getFeatures(), capture.get(1).getFeatures());
            INDArray conv1In = net.getLayer(0).activate(images, false, org.deeplearning4j.nn.workspace.LayerWorkspaceMgr.noWorkspaces()).dup('c');
            float[] g0 = SpatialDependence.compute(Backends.cpu(), images.dup('c').data().asFloat(), 2 * BATCH, 1, SIDE, SIDE,
                    SpatialDependence.Options.defaults().kernel(3, 3).padding(1, 1)).g();
            float[] g1 = SpatialDependence.compute(Backends.cpu(), conv1In.data().asFloat(), 2 * BATCH, 4, SIDE, SIDE,
                    SpatialDependence.Options.defaults().kernel(3, 3).padding(1, 1)).g();
            assertArrayEquals(g0, listener.g().get("conv0"), 1e-6f, "seed " + seed + ": G of conv0");
            assertArrayEquals(g1, listener.g().get("conv1"), 1e-6f, "seed " + seed + ": G of conv1");
            assertNotEquals(1f, g0[0], "seed " + seed + ": G of conv0 is not all ones");

            // the gradient DL4J computes for the step (summed over the minibatch), and the weights before it
            DataSet ds = batch(rnd, BATCH);
            double[] w0 = doubles(net.params());
            net.setInput(ds.getFeatures());
            net.setLabels(ds.getLabels());
            net.computeGradientAndScore();
            double[] g = doubles(net.getFlattenedGradients());
            net.fit(ds);
            double[] w1 = doubles(net.params());

            // expected, in float64: d = G * g / N (+ wd * w for weights, not biases); buf = d; w -= lr * d
            double[] expected = new double[w0.length];
            double[] scale = new double[w0.length];
            boolean[] decay = new boolean[w0.length];
            java.util.Arrays.fill(scale, 1);
            for (FlatStep.Param p : listener.stepsForTest().get(0).params()) {
                for (long i = p.offset(); i < p.offset() + p.length(); i++) {
                    decay[(int) i] = p.weightDecay();
                    if (p.kernel() != null) {
                        float[] gc = listener.g().get(p.layer());
                        scale[(int) i] = gc[(int) ((i - p.offset()) % 9)];
                    }
                }
            }
            double worst = 0;
            for (int i = 0; i < w0.length; i++) {
                double d = scale[i] * (g[i] / BATCH) + (decay[i] ? wd * w0[i] : 0);
                expected[i] = w0[i] - (double) lr * d;
                worst = Math.max(worst, Math.abs(expected[i] - w1[i]) / Math.max(1e-3, Math.abs(expected[i])));
            }
            assertTrue(worst < 2e-6, "seed " + seed + ": first SGS step vs float64, worst relative error " + worst);
            // biases are exempt from decay, conv weights scaled: both kinds present in this check
            assertTrue(listener.stepsForTest().get(0).params().stream().anyMatch(p -> !p.weightDecay()));
        }
    }

    /** The trainer reads the weights gradshape wrote; gradshape reads the gradients the trainer wrote. */
    @Test
    void zeroCopyBothWays() {
        long seed = System.nanoTime() % 100_000 + 13;
        MultiLayerNetwork net = net(seed, new GradshapeSgd(0.5), new PowerGradLoss(1));
        try (GradshapeListener listener = new GradshapeListener()) {
            net.addListeners(listener);
            listener.onGradientCalculation(net); // binds, as DL4J's fit() does before its updater
            FlatStep step = listener.stepsForTest().get(0);
            UpdaterBlock ub = ((BaseMultiLayerUpdater<?>) net.getUpdater()).getUpdaterBlocks().get(0);
            assertEquals(Dl4jMemory.address(net.getFlattenedGradients()), Dl4jMemory.address(ub.getGradientView()),
                    "the block covers the whole network");
            // a gradient written by DL4J (through its own array API), a step through DL4J's updater object
            Random rnd = new Random(seed);
            INDArray grads = net.getFlattenedGradients();
            float[] pattern = new float[(int) grads.length()];
            for (int i = 0; i < pattern.length; i++) {
                pattern[i] = rnd.nextFloat() - 0.5f;
            }
            grads.assign(Nd4j.create(pattern, grads.shape(), grads.ordering()));
            double[] w0 = doubles(net.params());
            ub.getGradientUpdater().applyUpdater(ub.getGradientView(), 0, 0);
            double[] w1 = doubles(net.params()); // read by DL4J from its own parameter array
            for (int i = 0; i < w0.length; i++) {
                assertEquals(w0[i] - 0.5 * pattern[i], w1[i], 1e-6 * Math.max(1, Math.abs(w0[i])),
                        "seed " + seed + ", element " + i);
            }
            assertEquals(0, maxAbs(doubles(net.getFlattenedGradients())), "gradient view zeroed for DL4J's subtraction");
            assertEquals(1, step.stepCount());
            // and the layer's own views are the same memory as the flat buffers
            assertEquals(Dl4jMemory.address(net.params()), Dl4jMemory.address(net.getLayer(0).getParam("b")),
                    "conv bias first in DL4J's flat layout");
        }
    }

    /** A network whose updater (and so its state and gradient binding) is replaced is rebound, not written blind. */
    @Test
    void rebindsWhenDl4jReplacesItsUpdater() {
        long seed = System.nanoTime() % 100_000 + 17;
        MultiLayerNetwork a = net(seed, new Nesterovs(0.05, 0.9), new LossMCXENT());
        MultiLayerNetwork b = net(seed, GradshapeSgd.nesterovs(0.05, 0.9), new PowerGradLoss(1));
        try (GradshapeListener listener = new GradshapeListener()) {
            b.addListeners(listener);
            Random rnd = new Random(seed);
            for (int s = 0; s < 20; s++) {
                if (s == 10) {
                    a.setUpdater(null); // DL4J builds a new updater (fresh state) on the next fit
                    b.setUpdater(null);
                }
                DataSet ds = batch(rnd, BATCH);
                a.fit(ds);
                b.fit(ds);
                assertEquals(a.score(), b.score(), 2e-6 * Math.max(1, a.score()), "seed " + seed + ", step " + s);
            }
            assertEquals(1, listener.rebinds(), "one rebind after the updater was replaced");
        }
    }

    @Test
    void powerGradLossComputesOncePerStepAndMatchesFloat64() {
        long seed = System.nanoTime() % 100_000 + 19;
        Random rnd = new Random(seed);
        MultiLayerNetwork net = net(seed, new GradshapeSgd(0.1), new PowerGradLoss(0.25));
        try (GradshapeListener listener = new GradshapeListener()) {
            net.addListeners(listener);
            for (int s = 0; s < 3; s++) {
                net.fit(batch(rnd, BATCH));
            }
        }
        PowerGradLoss loss = (PowerGradLoss) ((OutputLayer) net.getOutputLayer().conf().getLayer()).getLossFn();
        assertEquals(3, loss.computations(), "one transform per step");
        assertTrue(loss.reuses() >= 3, "DL4J's second call reused it: " + loss.reuses());

        // the gradient against float64 softmax(alpha z) - y, the score against float64 cross entropy
        DataSet ds = batch(rnd, 5);
        float[] z = new float[5 * CLASSES];
        for (int i = 0; i < z.length; i++) {
            z[i] = (float) (rnd.nextGaussian() * 3);
        }
        INDArray logits = Nd4j.create(z, new long[] {5, CLASSES}, 'c');
        double[] grad = doubles(loss.computeGradient(ds.getLabels(), logits, Activation.SOFTMAX.getActivationFunction(), null));
        double score = loss.computeScore(ds.getLabels(), logits, Activation.SOFTMAX.getActivationFunction(), null, true);
        double[] y = doubles(ds.getLabels());
        double ce = 0;
        for (int r = 0; r < 5; r++) {
            double max = Double.NEGATIVE_INFINITY;
            double maxA = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < CLASSES; c++) {
                max = Math.max(max, z[r * CLASSES + c]);
                maxA = Math.max(maxA, 0.25 * z[r * CLASSES + c]);
            }
            double sum = 0;
            double sumA = 0;
            for (int c = 0; c < CLASSES; c++) {
                sum += Math.exp(z[r * CLASSES + c] - max);
                sumA += Math.exp(0.25 * z[r * CLASSES + c] - maxA);
            }
            for (int c = 0; c < CLASSES; c++) {
                double p = Math.exp(0.25 * z[r * CLASSES + c] - maxA) / sumA;
                assertEquals(p - y[r * CLASSES + c], grad[r * CLASSES + c], 1e-6, "seed " + seed + ", row " + r + ", class " + c);
                ce -= y[r * CLASSES + c] * (z[r * CLASSES + c] - max - Math.log(sum));
            }
        }
        assertEquals(ce / 5, score, 1e-5, "seed " + seed + ": mean cross entropy");
    }

    @Test
    void jsonRoundTripKeepsUpdaterAndLoss() {
        MultiLayerConfiguration conf = config(3, GradshapeSgd.nesterovs(0.05, 0.9).weightDecay(5e-4), new PowerGradLoss(0.25));
        String json = conf.toJson();
        MultiLayerConfiguration back = MultiLayerConfiguration.fromJson(json);
        assertEquals(conf, back, "configuration after the JSON round trip");
        ConvolutionLayer c = (ConvolutionLayer) back.getConf(0).getLayer();
        assertEquals(GradshapeSgd.nesterovs(0.05, 0.9).weightDecay(5e-4), c.getIUpdater());
        assertEquals(new PowerGradLoss(0.25), ((OutputLayer) back.getConf(4).getLayer()).getLossFn());
        // and a network built from it trains through gradshape
        MultiLayerNetwork net = new MultiLayerNetwork(back);
        net.init();
        try (GradshapeListener listener = new GradshapeListener()) {
            net.addListeners(listener);
            net.fit(batch(new Random(3), BATCH));
            assertEquals(1, listener.timing().steps());
        }
        // a bad value in the JSON fails with the property named
        String bad = json.replace("\"alpha\" : 0.25", "\"alpha\" : -1.0");
        assertNotEquals(json, bad, "the JSON holds the alpha property");
        Exception e = assertThrows(RuntimeException.class, () -> MultiLayerConfiguration.fromJson(bad));
        assertTrue(String.valueOf(rootCause(e).getMessage()).contains("alpha"), rootCause(e).toString());
    }

    @Test
    void clearErrors() {
        DataSet ds = batch(new Random(5), 4);
        MultiLayerNetwork unbound = net(5, new GradshapeSgd(0.1), new PowerGradLoss(1));
        Exception e = assertThrows(IllegalStateException.class, () -> unbound.fit(ds));
        assertTrue(e.getMessage().contains("GradshapeListener"), e.getMessage());

        MultiLayerConfiguration l2 = new NeuralNetConfiguration.Builder().seed(5).updater(new GradshapeSgd(0.1)).l2(1e-4)
                .list()
                .layer(new ConvolutionLayer.Builder(3, 3).nOut(2).padding(1, 1).build())
                .layer(new OutputLayer.Builder(new PowerGradLoss(1)).nOut(CLASSES).activation(Activation.SOFTMAX).build())
                .setInputType(InputType.convolutional(SIDE, SIDE, 1)).build();
        MultiLayerNetwork withL2 = new MultiLayerNetwork(l2);
        withL2.init();
        try (GradshapeListener listener = new GradshapeListener()) {
            withL2.addListeners(listener);
            e = assertThrows(IllegalArgumentException.class, () -> withL2.fit(ds));
            assertTrue(e.getMessage().contains("weightDecay"), e.getMessage());
        }

        MultiLayerConfiguration identity = new NeuralNetConfiguration.Builder().seed(5).updater(new Sgd(0.1)).list()
                .layer(new DenseLayer.Builder().nOut(4).build())
                .layer(new OutputLayer.Builder(new PowerGradLoss(1)).nOut(CLASSES).activation(Activation.IDENTITY).build())
                .setInputType(InputType.convolutional(SIDE, SIDE, 1)).build();
        MultiLayerNetwork idNet = new MultiLayerNetwork(identity);
        idNet.init();
        e = assertThrows(IllegalArgumentException.class, () -> idNet.fit(ds));
        assertTrue(e.getMessage().contains("SOFTMAX"), e.getMessage());

        assertThrows(IllegalArgumentException.class, () -> new PowerGradLoss(Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> new GradshapeSgd(0.1).momentum(1.5));
        assertThrows(IllegalArgumentException.class, () -> new GradshapeSgd(-1));
        List<DataSet> one = new ArrayList<>(List.of(ds));
        MultiLayerNetwork sgsNet = net(5, new GradshapeSgd(0.1), new PowerGradLoss(1));
        try (GradshapeListener listener = GradshapeListener.sgs(new ListDataSetIterator<>(one, 4))) {
            e = assertThrows(IllegalStateException.class, () -> listener.refresh(sgsNet));
            assertTrue(e.getMessage().contains("needs 2"), e.getMessage());
        }
    }

    /** fit(iterator) over epochs: G refreshed on the papers' schedule (epoch 1 with warmup 1), ones before. */
    @Test
    void refreshesOnTheScheduleInsideFit() {
        long seed = System.nanoTime() % 100_000 + 23;
        Random rnd = new Random(seed);
        List<DataSet> train = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            train.add(batch(rnd, BATCH));
        }
        MultiLayerNetwork net = net(seed, GradshapeSgd.nesterovs(0.05, 0.9), new PowerGradLoss(0.25));
        try (GradshapeListener listener = GradshapeListener.sgs(new SgsSchedule(5, 2, 1), new ListDataSetIterator<>(train, 1))) {
            net.addListeners(listener);
            net.fit(new ListDataSetIterator<>(train, 1));
            assertEquals(List.of(), listener.lastUpdates(), "seed " + seed + ": no refresh at epoch 0");
            assertArrayEquals(new float[] {1, 1, 1, 1, 1, 1, 1, 1, 1}, listener.g().get("conv1"));
            net.fit(new ListDataSetIterator<>(train, 1));
            assertEquals(2, listener.lastUpdates().size(), "seed " + seed + ": refreshed at epoch 1");
            assertNotEquals(1f, listener.g().get("conv1")[4], "seed " + seed + ": G of conv1 changed");
            assertEquals(6, listener.timing().steps());
            assertTrue(listener.timing().sgsNanos() > 0 && listener.timing().lossNanos() > 0);
        }
    }

    private static Throwable rootCause(Throwable t) {
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t;
    }
}
