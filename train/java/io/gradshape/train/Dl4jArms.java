package io.gradshape.train;

import io.gradshape.Gradshape;
import io.gradshape.dl4j.GradshapeListener;
import io.gradshape.dl4j.GradshapeSgd;
import io.gradshape.dl4j.PowerGradLoss;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Random;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.conf.MultiLayerConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.SubsamplingLayer;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.api.DataSetPreProcessor;
import org.nd4j.linalg.dataset.api.iterator.DataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.Nesterovs;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.linalg.lossfunctions.ILossFunction;
import org.nd4j.linalg.lossfunctions.impl.LossMCXENT;

/**
 * The DL4J arms: the reference {@link Network} as a DL4J {@code MultiLayerNetwork}, trained by DL4J's
 * own {@code fit(iterator)} one epoch at a time.
 * <ul>
 * <li>baseline: DL4J's {@code Nesterovs(lr, momentum)} (plain {@code Sgd(lr)} at momentum 0) with
 *     DL4J's {@code .l2(weightDecay)} on weights, and {@code LossMCXENT};</li>
 * <li>gradshape arms: {@code GradshapeSgd.nesterovs(lr, momentum).weightDecay(weightDecay)} (the same
 *     step: DL4J has no heavy-ball momentum, and its Nesterovs and L2 are torch's Nesterov SGD with
 *     weight decay), {@code PowerGradLoss(alpha)} for PGT, else {@code LossMCXENT}, and a
 *     {@link GradshapeListener} (with SGS: refreshing G on the arm's schedule from the first batches of
 *     each epoch's order).</li>
 * </ul>
 * Data order: the first {@code trainSize} training images, reshuffled each epoch from
 * {@code seed} and the epoch (the same for every arm); the last, incomplete batch is dropped.
 */
public final class Dl4jArms implements ArmRunner {
    @Override
    public String trainer() {
        return "dl4j";
    }

    /** The reference network in DL4J, with this updater and loss (layer names as {@link Network#CONVS}). */
    static MultiLayerConfiguration configuration(long seed, IUpdater updater, double l2, ILossFunction loss) {
        NeuralNetConfiguration.Builder b = new NeuralNetConfiguration.Builder().seed(seed).updater(updater);
        if (l2 > 0) {
            b.l2(l2); // DL4J applies it to weights, not biases
        }
        int k = Network.KERNEL;
        int p = Network.PADDING;
        return b.list()
                .layer(new ConvolutionLayer.Builder(k, k).nOut(Network.C1).padding(p, p).activation(Activation.RELU).name("conv1").build())
                .layer(new ConvolutionLayer.Builder(k, k).nOut(Network.C1).padding(p, p).activation(Activation.RELU).name("conv2").build())
                .layer(new SubsamplingLayer.Builder(SubsamplingLayer.PoolingType.MAX).kernelSize(2, 2).stride(2, 2).build())
                .layer(new ConvolutionLayer.Builder(k, k).nOut(Network.C2).padding(p, p).activation(Activation.RELU).name("conv3").build())
                .layer(new ConvolutionLayer.Builder(k, k).nOut(Network.C2).padding(p, p).activation(Activation.RELU).name("conv4").build())
                .layer(new SubsamplingLayer.Builder(SubsamplingLayer.PoolingType.MAX).kernelSize(2, 2).stride(2, 2).build())
                .layer(new DenseLayer.Builder().nOut(Network.HIDDEN).activation(Activation.RELU).name("fc1").build())
                .layer(new OutputLayer.Builder(loss).nOut(Network.CLASSES).activation(Activation.SOFTMAX).name("fc2").build())
                .setInputType(InputType.convolutional(FashionMnist.SIDE, FashionMnist.SIDE, 1))
                .build();
    }

    @Override
    public ArmResult run(ArmSpec spec, FashionMnist data, StepListener progress) throws Exception {
        if (spec.trainSize() < spec.batchSize() || spec.trainSize() > data.trainCount()) {
            throw new IllegalArgumentException("trainSize: expected " + spec.batchSize() + ".." + data.trainCount()
                    + ", got " + spec.trainSize());
        }
        if (spec.testSize() < 1 || spec.testSize() > data.testCount()) {
            throw new IllegalArgumentException("testSize: expected 1.." + data.testCount() + ", got " + spec.testSize());
        }
        Gradshape.setCpuThreads(spec.threads());
        Nd4j.getEnvironment().setMaxMasterThreads(spec.threads());
        Nd4j.getEnvironment().setMaxThreads(spec.threads());

        boolean ours = spec.gradshapeSgd();
        IUpdater updater;
        if (ours) {
            updater = spec.momentum() > 0 ? GradshapeSgd.nesterovs(spec.lr(), spec.momentum()) : new GradshapeSgd(spec.lr());
            ((GradshapeSgd) updater).weightDecay(spec.weightDecay());
        } else {
            updater = spec.momentum() > 0 ? new Nesterovs(spec.lr(), spec.momentum()) : new Sgd(spec.lr());
        }
        ILossFunction loss = spec.pgt() ? new PowerGradLoss(spec.pgtAlpha()) : new LossMCXENT();
        MultiLayerNetwork net = new MultiLayerNetwork(configuration(spec.seed(), updater, ours ? 0 : spec.weightDecay(), loss));
        net.init();

        int stepsPerEpoch = spec.trainSize() / spec.batchSize();
        EpochBatches epochBatches = new EpochBatches();
        GradshapeListener gradshape = !ours ? null
                : spec.sgs() ? GradshapeListener.sgs(spec.schedule(), epochBatches.view()) : new GradshapeListener();
        double[] lossSum = new double[1];
        long[] stepInEpoch = new long[1];
        int[] epochNow = new int[1];
        BaseTrainingListener ticks = new BaseTrainingListener() {
            @Override
            public void iterationDone(Model model, int iteration, int epoch) {
                double s = model.score();
                lossSum[0] += s;
                progress.step(epochNow[0], ++stepInEpoch[0], stepsPerEpoch, s);
            }
        };
        if (gradshape != null) {
            net.setListeners(gradshape, ticks);
        } else {
            net.setListeners(ticks);
        }
        List<ArmResult.EpochPoint> curve = new ArrayList<>();
        long trainNanos = 0;
        long steps = 0;
        double finalLoss = Double.NaN;
        double accuracy = Double.NaN;
        try {
            for (int epoch = 0; epoch < spec.epochs(); epoch++) {
                epochBatches.set(batches(data, spec, epoch));
                epochNow[0] = epoch + 1;
                lossSum[0] = 0;
                stepInEpoch[0] = 0;
                long t0 = System.nanoTime();
                net.fit(epochBatches.view());
                trainNanos += System.nanoTime() - t0;
                steps += stepInEpoch[0];
                finalLoss = lossSum[0] / Math.max(1, stepInEpoch[0]);
                accuracy = accuracy(net, data, spec);
                curve.add(new ArmResult.EpochPoint(epoch + 1, finalLoss, accuracy));
                progress.epoch(epoch + 1, finalLoss, accuracy);
            }
            double stepMs = steps == 0 ? 0 : trainNanos / 1e6 / steps;
            double gradshapeMs = gradshape == null || steps == 0 ? 0 : gradshape.timing().totalNanos() / 1e6 / steps;
            List<ArmResult.ConvG> g = new ArrayList<>();
            Map<String, float[]> gs = gradshape == null ? Map.of() : gradshape.g();
            for (String conv : Network.CONVS) {
                float[] v = gs.get(conv);
                if (v == null) {
                    v = new float[Network.KERNEL * Network.KERNEL];
                    Arrays.fill(v, 1f);
                }
                g.add(new ArmResult.ConvG(conv, Network.KERNEL, Network.KERNEL, v));
            }
            return new ArmResult(spec.name(), trainer(), accuracy, finalLoss, stepMs, gradshapeMs, steps, g, curve);
        } finally {
            if (gradshape != null) {
                gradshape.close();
            }
        }
    }

    /** This epoch's minibatches: the training prefix in a permutation drawn from the seed and the epoch. */
    static List<DataSet> batches(FashionMnist data, ArmSpec spec, int epoch) {
        int[] order = new int[spec.trainSize()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Random rnd = new Random(spec.seed() * 1_000_003L + epoch);
        for (int i = order.length - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        int n = spec.batchSize();
        List<DataSet> out = new ArrayList<>();
        for (int b = 0; b + n <= order.length; b += n) {
            float[] x = new float[n * FashionMnist.PIXELS];
            float[] y = new float[n * Network.CLASSES];
            for (int i = 0; i < n; i++) {
                int idx = order[b + i];
                System.arraycopy(data.trainImages(), idx * FashionMnist.PIXELS, x, i * FashionMnist.PIXELS, FashionMnist.PIXELS);
                y[i * Network.CLASSES + data.trainLabels()[idx]] = 1;
            }
            out.add(new DataSet(Nd4j.create(x, new long[] {n, 1, FashionMnist.SIDE, FashionMnist.SIDE}, 'c'),
                    Nd4j.create(y, new long[] {n, Network.CLASSES}, 'c')));
        }
        return out;
    }

    /** Accuracy on the first {@code testSize} test images, in inference mode. */
    static double accuracy(MultiLayerNetwork net, FashionMnist data, ArmSpec spec) {
        int correct = 0;
        int chunk = 256;
        for (int s = 0; s < spec.testSize(); s += chunk) {
            int n = Math.min(chunk, spec.testSize() - s);
            float[] x = Arrays.copyOfRange(data.testImages(), s * FashionMnist.PIXELS, (s + n) * FashionMnist.PIXELS);
            INDArray out = net.output(Nd4j.create(x, new long[] {n, 1, FashionMnist.SIDE, FashionMnist.SIDE}, 'c'), false);
            INDArray pred = out.argMax(1);
            for (int i = 0; i < n; i++) {
                if (pred.getInt(i) == data.testLabels()[s + i]) {
                    correct++;
                }
            }
        }
        return correct / (double) spec.testSize();
    }

    /**
     * The current epoch's batches as a resettable DL4J iterator: the training loop's {@code fit} and
     * SGS's capture (which reads the first B batches at the epoch's start) each get their own view.
     */
    static final class EpochBatches {
        private List<DataSet> batches = List.of();

        void set(List<DataSet> batches) {
            this.batches = List.copyOf(batches);
        }

        DataSetIterator view() {
            return new View();
        }

        private final class View implements DataSetIterator {
            private static final long serialVersionUID = 1L;
            private int next;
            private DataSetPreProcessor pre;

            @Override
            public boolean hasNext() {
                return next < batches.size();
            }

            @Override
            public DataSet next() {
                if (!hasNext()) {
                    throw new NoSuchElementException("epoch batches: all " + batches.size() + " read");
                }
                DataSet ds = batches.get(next++);
                if (pre != null) {
                    ds = ds.copy();
                    pre.preProcess(ds);
                }
                return ds;
            }

            @Override
            public DataSet next(int num) {
                throw new UnsupportedOperationException("epoch batches come whole: next(int) is not supported");
            }

            @Override
            public int inputColumns() {
                return FashionMnist.PIXELS;
            }

            @Override
            public int totalOutcomes() {
                return Network.CLASSES;
            }

            @Override
            public boolean resetSupported() {
                return true;
            }

            @Override
            public boolean asyncSupported() {
                return false; // batches are already in memory: no prefetch thread
            }

            @Override
            public void reset() {
                next = 0;
            }

            @Override
            public int batch() {
                return batches.isEmpty() ? 0 : (int) batches.get(0).getFeatures().size(0);
            }

            @Override
            public void setPreProcessor(DataSetPreProcessor preProcessor) {
                this.pre = preProcessor;
            }

            @Override
            public DataSetPreProcessor getPreProcessor() {
                return pre;
            }

            @Override
            public List<String> getLabels() {
                return null;
            }
        }
    }
}
