package io.gradshape.train;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import io.gradshape.Gradshape;
import io.gradshape.djl.GradshapeSgd;
import io.gradshape.djl.PowerGradLoss;
import java.util.ArrayList;
import java.util.List;

/**
 * The arms with DJL (PyTorch engine, CPU). The baseline is DJL's own {@code Sgd} and
 * {@code SoftmaxCrossEntropyLoss} through its {@code Trainer}; the other arms keep the same trainer for
 * forward and backward and swap in gradshape's {@link GradshapeSgd} (G = 1 unless SGS) and, for PGT,
 * {@link PowerGradLoss}. DJL's {@code Sgd} decays every parameter (it has no per-parameter rule), so
 * with weight decay on the gradshape arms do the same here, for a like-for-like comparison.
 */
public final class DjlArms implements ArmRunner {
    private static final int EVAL_BATCH = 500;

    @Override
    public String trainer() {
        return "djl";
    }

    /** DJL reads its thread counts when the engine starts: set them first (an explicit count also avoids a libtorch fault, see docs/adapter-djl.md). */
    static void configureThreads(int threads) {
        System.setProperty("ai.djl.pytorch.num_threads", Integer.toString(threads));
        System.setProperty("ai.djl.pytorch.num_interop_threads", "1");
        System.setProperty("ai.djl.offline", "true");
    }

    static SequentialBlock network() {
        return new SequentialBlock()
                .add(conv(Network.C1)).add(Activation::relu)
                .add(conv(Network.C1)).add(Activation::relu)
                .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
                .add(conv(Network.C2)).add(Activation::relu)
                .add(conv(Network.C2)).add(Activation::relu)
                .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
                .add(Blocks.batchFlattenBlock())
                .add(Linear.builder().setUnits(Network.HIDDEN).build()).add(Activation::relu)
                .add(Linear.builder().setUnits(Network.CLASSES).build());
    }

    private static Conv2d conv(int filters) {
        return Conv2d.builder().setKernelShape(new Shape(Network.KERNEL, Network.KERNEL))
                .optPadding(new Shape(Network.PADDING, Network.PADDING)).setFilters(filters).build();
    }

    @Override
    public ArmResult run(ArmSpec spec, FashionMnist data, StepListener progress) throws Exception {
        configureThreads(spec.threads());
        Gradshape.setCpuThreads(spec.threads());
        int trainSize = Math.min(spec.trainSize(), data.trainCount());
        int testSize = Math.min(spec.testSize(), data.testCount());
        int[] subset = TrainOrder.subset(data.trainCount(), trainSize, spec.seed());
        long stepsPerEpoch = (trainSize + spec.batchSize() - 1) / spec.batchSize();
        Engine.getEngine("PyTorch").setRandomSeed((int) spec.seed());
        DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss());
        if (!spec.gradshapeSgd()) {
            config.optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(spec.lr()))
                    .optMomentum(spec.momentum()).optWeightDecays(spec.weightDecay()).build());
        }
        try (Model model = Model.newInstance("gradshape-" + spec.name(), "PyTorch")) {
            model.setBlock(network());
            try (Trainer trainer = model.newTrainer(config)) {
                Engine.getEngine("PyTorch").setRandomSeed((int) spec.seed());
                trainer.initialize(new Shape(spec.batchSize(), 1, FashionMnist.SIDE, FashionMnist.SIDE));
                GradshapeSgd sgd = null;
                PowerGradLoss pgt = null;
                try {
                    if (spec.gradshapeSgd()) {
                        GradshapeSgd.Builder b = GradshapeSgd.builder(model.getBlock()).lr(spec.lr()).momentum(spec.momentum())
                                .weightDecay(spec.weightDecay()).decayIf(p -> true);
                        if (spec.sgs()) {
                            b.sgs(spec.schedule());
                        }
                        sgd = b.build();
                    }
                    if (spec.pgt()) {
                        pgt = PowerGradLoss.of(spec.pgtAlpha());
                    }
                    return train(spec, data, progress, model, trainer, sgd, pgt, subset, stepsPerEpoch, testSize);
                } finally {
                    if (sgd != null) {
                        sgd.close();
                    }
                    if (pgt != null) {
                        pgt.close();
                    }
                }
            }
        }
    }

    private ArmResult train(ArmSpec spec, FashionMnist data, StepListener progress, Model model, Trainer trainer,
            GradshapeSgd sgd, PowerGradLoss pgt, int[] subset, long stepsPerEpoch, int testSize) {
        NDManager manager = trainer.getManager();
        List<ArmResult.EpochPoint> curve = new ArrayList<>();
        long stepNanos = 0;
        long steps = 0;
        double lastLoss = Double.NaN;
        for (int epoch = 0; epoch < spec.epochs(); epoch++) {
            int[] order = TrainOrder.epoch(subset, spec.seed(), epoch);
            if (sgd != null) {
                long t0 = System.nanoTime();
                sgd.startEpoch(epoch, batches(manager, data, order, spec.batchSize()));
                stepNanos += System.nanoTime() - t0; // the refresh is part of the training time it costs
            }
            double lossSum = 0;
            for (long s = 0; s < stepsPerEpoch; s++) {
                long t0 = System.nanoTime();
                double loss;
                try (NDManager scope = manager.newSubManager()) {
                    int from = (int) (s * spec.batchSize());
                    int n = Math.min(spec.batchSize(), order.length - from);
                    NDArray x = images(scope, data.trainImages(), order, from, n);
                    NDArray y = labels(scope, data.trainLabels(), order, from, n);
                    try (GradientCollector gc = trainer.newGradientCollector()) {
                        NDList logits = trainer.forward(new NDList(x));
                        if (pgt != null) {
                            loss = pgt.backward(logits.head(), y);
                        } else {
                            NDArray l = trainer.getLoss().evaluate(new NDList(y), logits);
                            loss = l.getFloat();
                            gc.backward(l);
                        }
                    }
                    if (sgd != null) {
                        sgd.step();
                    } else {
                        trainer.step();
                    }
                }
                stepNanos += System.nanoTime() - t0;
                steps++;
                if (!Double.isFinite(loss)) {
                    throw new IllegalStateException(spec.name() + ": training loss " + loss + " at epoch " + epoch + ", step " + s
                            + " (seed " + spec.seed() + ")");
                }
                lossSum += loss;
                lastLoss = loss;
                progress.step(epoch, s + 1, stepsPerEpoch, loss);
            }
            double accuracy = evaluate(model, manager, data, testSize);
            double trainLoss = lossSum / stepsPerEpoch;
            curve.add(new ArmResult.EpochPoint(epoch + 1, trainLoss, accuracy));
            progress.epoch(epoch + 1, trainLoss, accuracy);
        }
        List<ArmResult.ConvG> g = new ArrayList<>();
        for (int c = 0; c < Network.CONVS.length; c++) {
            float[] gc = sgd != null && sgd.sgs() != null ? sgd.sgs().g(c) : ones(Network.KERNEL * Network.KERNEL);
            g.add(new ArmResult.ConvG(Network.CONVS[c], Network.KERNEL, Network.KERNEL, gc));
        }
        double gradshapeNanos = (sgd == null ? 0 : sgd.nanosSpent()) + (pgt == null ? 0 : pgt.nanosSpent());
        return new ArmResult(spec.name(), trainer(), curve.get(curve.size() - 1).testAccuracy(), lastLoss,
                stepNanos / 1e6 / steps, gradshapeNanos / 1e6 / steps, steps, g, curve);
    }

    /** The first batches of an epoch, for an SGS refresh (each closes its own manager). */
    private static Iterable<Batch> batches(NDManager manager, FashionMnist data, int[] order, int batchSize) {
        return () -> new java.util.Iterator<>() {
            private int from;

            @Override
            public boolean hasNext() {
                return from < order.length;
            }

            @Override
            public Batch next() {
                int n = Math.min(batchSize, order.length - from);
                NDManager m = manager.newSubManager();
                NDArray x = images(m, data.trainImages(), order, from, n);
                NDArray y = labels(m, data.trainLabels(), order, from, n);
                from += n;
                return new Batch(m, new NDList(x), new NDList(y), n, null, null, 0, 1);
            }
        };
    }

    private static double evaluate(Model model, NDManager manager, FashionMnist data, int testSize) {
        long correct = 0;
        for (int from = 0; from < testSize; from += EVAL_BATCH) {
            int n = Math.min(EVAL_BATCH, testSize - from);
            try (NDManager scope = manager.newSubManager()) {
                float[] x = new float[n * FashionMnist.PIXELS];
                System.arraycopy(data.testImages(), from * FashionMnist.PIXELS, x, 0, x.length);
                NDArray in = scope.create(x, new Shape(n, 1, FashionMnist.SIDE, FashionMnist.SIDE));
                NDArray logits = model.getBlock().forward(new ParameterStore(scope, false), new NDList(in), false).head();
                long[] predicted = logits.argMax(1).toLongArray();
                for (int i = 0; i < n; i++) {
                    if (predicted[i] == data.testLabels()[from + i]) {
                        correct++;
                    }
                }
            }
        }
        return (double) correct / testSize;
    }

    private static NDArray images(NDManager m, float[] all, int[] order, int from, int n) {
        float[] x = new float[n * FashionMnist.PIXELS];
        for (int i = 0; i < n; i++) {
            System.arraycopy(all, order[from + i] * FashionMnist.PIXELS, x, i * FashionMnist.PIXELS, FashionMnist.PIXELS);
        }
        return m.create(x, new Shape(n, 1, FashionMnist.SIDE, FashionMnist.SIDE));
    }

    private static NDArray labels(NDManager m, int[] all, int[] order, int from, int n) {
        long[] y = new long[n];
        for (int i = 0; i < n; i++) {
            y[i] = all[order[from + i]];
        }
        return m.create(y);
    }

    private static float[] ones(int n) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, 1f);
        return a;
    }
}
