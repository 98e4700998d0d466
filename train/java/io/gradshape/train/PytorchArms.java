package io.gradshape.train;

import static org.bytedeco.pytorch.global.torch.max_pool2d;
import static org.bytedeco.pytorch.global.torch.relu;

import io.gradshape.Gradshape;
import io.gradshape.SgsRefresh;
import io.gradshape.pytorch.GradshapeSgd;
import io.gradshape.pytorch.PowerGradLoss;
import io.gradshape.pytorch.SgsCapture;
import io.gradshape.pytorch.TorchWarmup;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Conv2dImpl;
import org.bytedeco.pytorch.Conv2dOptions;
import org.bytedeco.pytorch.CrossEntropyLossImpl;
import org.bytedeco.pytorch.LinearImpl;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.OptimizerParamGroup;
import org.bytedeco.pytorch.SGD;
import org.bytedeco.pytorch.SGDOptions;
import org.bytedeco.pytorch.StringTensorDict;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * The {@code --trainer pytorch} arms: the reference {@link Network} built with the JavaCPP PyTorch
 * presets (libtorch's C++ frontend), trained by libtorch's SGD + cross-entropy (baseline) or through
 * the gradshape-pytorch adapter (scaled SGD, SGS capture, PowerGrad). Registered for
 * {@code java.util.ServiceLoader} in {@code META-INF/services/io.gradshape.train.ArmRunner}.
 *
 * <p>Before any libtorch class is initialised, libtorch is loaded once in a child JVM
 * ({@link TorchWarmup#ensureCache()}): on a fresh JavaCPP cache the first JVM that loads it crashes,
 * and this one must not be that JVM. (Loading the classes below does not load libtorch; initialising
 * {@code org.bytedeco.pytorch} classes does, which happens only after the warm-up.)
 *
 * <p>Data order: {@link TrainOrder}, shared by every arm and trainer of a seed. An SGS refresh measures
 * the first {@code B} batches of its epoch.
 */
public final class PytorchArms implements ArmRunner {
    @Override
    public String trainer() {
        return "pytorch";
    }

    @Override
    public ArmResult run(ArmSpec spec, FashionMnist data, StepListener progress) {
        TorchWarmup.ensureCache();
        // oneDNN off: with it, libtorch 2.10's CPU backward of conv1 (one input channel) now and then
        // leaves NaN in the weight gradient, with or without gradshape (docs/adapter-pytorch.md).
        torch.globalContext().setUserEnabledMkldnn(false);
        Gradshape.setCpuThreads(spec.threads());
        torch.set_num_threads(spec.threads());
        torch.manual_seed(spec.seed());
        Net net = new Net();
        try {
            return train(spec, data, progress, net);
        } finally {
            net.close();
        }
    }

    /** The reference network, layer for layer as {@link Network} describes it. */
    static final class Net extends Module {
        final Conv2dImpl conv1, conv2, conv3, conv4;
        final LinearImpl fc1, fc2;

        Net() {
            conv1 = register_module(Network.CONVS[0], new Conv2dImpl(conv(1, Network.C1)));
            conv2 = register_module(Network.CONVS[1], new Conv2dImpl(conv(Network.C1, Network.C1)));
            conv3 = register_module(Network.CONVS[2], new Conv2dImpl(conv(Network.C1, Network.C2)));
            conv4 = register_module(Network.CONVS[3], new Conv2dImpl(conv(Network.C2, Network.C2)));
            fc1 = register_module("fc1", new LinearImpl((long) Network.C2 * 7 * 7, Network.HIDDEN));
            fc2 = register_module("fc2", new LinearImpl(Network.HIDDEN, Network.CLASSES));
        }

        private static Conv2dOptions conv(long in, long out) {
            Conv2dOptions o = new Conv2dOptions(in, out, new LongPointer(Network.KERNEL, Network.KERNEL));
            o.padding().put(new LongPointer(Network.PADDING, Network.PADDING));
            return o;
        }

        /** The forward; each conv's input goes through {@code sgs} (null: no SGS) for the refreshes. */
        Tensor forward(Tensor x, SgsCapture sgs) {
            x = relu(conv1.forward(in(sgs, conv1, x)));
            x = max_pool2d(relu(conv2.forward(in(sgs, conv2, x))), 2, 2);
            x = relu(conv3.forward(in(sgs, conv3, x)));
            x = max_pool2d(relu(conv4.forward(in(sgs, conv4, x))), 2, 2);
            x = relu(fc1.forward(x.reshape(x.size(0), -1)));
            return fc2.forward(x);
        }

        private static Tensor in(SgsCapture sgs, Conv2dImpl conv, Tensor x) {
            return sgs == null ? x : sgs.input(conv, x);
        }
    }

    private static ArmResult train(ArmSpec spec, FashionMnist data, StepListener progress, Net net) {
        int trainSize = Math.min(spec.trainSize(), data.trainCount());
        int testSize = Math.min(spec.testSize(), data.testCount());
        int batch = spec.batchSize();
        if (trainSize < batch || batch < 1 || testSize < 1) {
            throw new IllegalArgumentException("spec: batch size " + batch + " needs at least as many training images, got "
                    + trainSize + " (test images " + testSize + ")");
        }
        int[] subset = TrainOrder.subset(data.trainCount(), trainSize, spec.seed());
        long stepsPerEpoch = trainSize / batch; // the last partial batch is dropped, as every arm does

        SGD torchSgd = null;
        CrossEntropyLossImpl ce = new CrossEntropyLossImpl();
        GradshapeSgd sgd = null;
        SgsCapture sgs = null;
        PowerGradLoss pgt = null;
        List<ArmResult.EpochPoint> curve = new ArrayList<>();
        long stepNanos = 0;
        long gradshapeNanos = 0;
        long steps = 0;
        try {
            if (spec.gradshapeSgd()) {
                sgd = GradshapeSgd.builder(net).lr(spec.lr()).momentum(spec.momentum()).weightDecay(spec.weightDecay()).build();
                if (spec.sgs()) {
                    sgs = new SgsCapture(net, sgd, spec.schedule());
                }
                if (spec.pgt()) {
                    pgt = PowerGradLoss.of(spec.pgtAlpha());
                }
            } else {
                torchSgd = torchSgd(net, spec);
            }
            double trainLoss = Double.NaN;
            for (int epoch = 0; epoch < spec.epochs(); epoch++) {
                int[] order = TrainOrder.epoch(subset, spec.seed(), epoch);
                if (sgs != null) {
                    long before = sgs.nanosSpent();
                    List<Tensor> first = new ArrayList<>();
                    try (PointerScope scope = new PointerScope()) {
                        for (int b = 0; b < spec.schedule().batches() && (long) b < stepsPerEpoch; b++) {
                            first.add(images(data.trainImages(), order, b * batch, batch));
                        }
                        SgsCapture s = sgs;
                        for (SgsRefresh.Update u : sgs.beginEpoch(epoch, first, x -> net.forward(x, s))) {
                            if (u.keptPrevious()) {
                                System.err.println("pytorch/" + spec.name() + ": " + u.reason());
                            }
                        }
                    }
                    gradshapeNanos += sgs.nanosSpent() - before;
                }
                double lossSum = 0;
                for (long s = 0; s < stepsPerEpoch; s++) {
                    double loss;
                    try (PointerScope scope = new PointerScope()) {
                        Tensor x = images(data.trainImages(), order, (int) (s * batch), batch);
                        Tensor y = labels(data.trainLabels(), order, (int) (s * batch), batch);
                        long t0 = System.nanoTime();
                        if (sgd == null) {
                            torchSgd.zero_grad();
                            Tensor l = ce.forward(net.forward(x, null), y);
                            l.backward();
                            torchSgd.step();
                            loss = l.item_double();
                        } else {
                            long g0 = System.nanoTime();
                            sgd.zeroGrad();
                            long inside = System.nanoTime() - g0;
                            Tensor logits = net.forward(x, sgs);
                            if (pgt != null) {
                                long p0 = pgt.nanosSpent();
                                loss = pgt.backward(logits, y);
                                inside += pgt.nanosSpent() - p0;
                            } else {
                                Tensor l = ce.forward(logits, y);
                                l.backward();
                                loss = l.item_double();
                            }
                            long s0 = System.nanoTime();
                            sgd.step();
                            inside += System.nanoTime() - s0;
                            gradshapeNanos += inside;
                        }
                        stepNanos += System.nanoTime() - t0;
                    }
                    steps++;
                    lossSum += loss;
                    progress.step(epoch, s, stepsPerEpoch, loss);
                }
                trainLoss = lossSum / stepsPerEpoch;
                double accuracy = accuracy(net, data, testSize);
                curve.add(new ArmResult.EpochPoint(epoch + 1, trainLoss, accuracy));
                progress.epoch(epoch, trainLoss, accuracy);
            }
            List<ArmResult.ConvG> g = new ArrayList<>();
            for (String conv : Network.CONVS) {
                float[] values;
                if (sgs != null) {
                    values = sgs.g(conv);
                } else {
                    values = new float[Network.KERNEL * Network.KERNEL];
                    Arrays.fill(values, 1f);
                }
                g.add(new ArmResult.ConvG(conv, Network.KERNEL, Network.KERNEL, values));
            }
            double testAccuracy = curve.isEmpty() ? Double.NaN : curve.get(curve.size() - 1).testAccuracy();
            return new ArmResult(spec.name(), "pytorch", testAccuracy, trainLoss, steps == 0 ? 0 : stepNanos / 1e6 / steps,
                    steps == 0 ? 0 : gradshapeNanos / 1e6 / steps, steps, List.copyOf(g), List.copyOf(curve));
        } finally {
            if (pgt != null) {
                pgt.close();
            }
            if (sgs != null) {
                sgs.close();
            }
            if (sgd != null) {
                sgd.close();
            }
            if (torchSgd != null) {
                torchSgd.close();
            }
            ce.close();
        }
    }

    /** libtorch's SGD with the recipe's groups: weight decay on weights (dim > 1), none on biases. */
    private static SGD torchSgd(Net net, ArmSpec spec) {
        TensorVector decay = new TensorVector();
        TensorVector noDecay = new TensorVector();
        try (StringTensorDict named = net.named_parameters()) {
            for (long i = 0; i < named.size(); i++) {
                Tensor p = named.get(i).value();
                (p.dim() > 1 ? decay : noDecay).push_back(p);
            }
        }
        SGDOptions withDecay = new SGDOptions(spec.lr());
        withDecay.momentum().put(spec.momentum());
        withDecay.weight_decay().put(spec.weightDecay());
        SGDOptions without = new SGDOptions(spec.lr());
        without.momentum().put(spec.momentum());
        SGD sgd = new SGD(decay, withDecay);
        sgd.add_param_group(new OptimizerParamGroup(noDecay, without));
        return sgd;
    }

    private static double accuracy(Net net, FashionMnist data, int testSize) {
        int correct = 0;
        int chunk = 500;
        int[] identity = new int[testSize];
        for (int i = 0; i < testSize; i++) {
            identity[i] = i;
        }
        net.eval();
        try (NoGradGuard guard = new NoGradGuard()) {
            for (int start = 0; start < testSize; start += chunk) {
                int n = Math.min(chunk, testSize - start);
                try (PointerScope scope = new PointerScope()) {
                    Tensor predicted = net.forward(images(data.testImages(), identity, start, n), null).argmax(
                            new org.bytedeco.pytorch.LongOptional(1), false);
                    long[] p = new long[n];
                    try (org.bytedeco.javacpp.Pointer ptr = predicted.contiguous().data_ptr();
                         LongPointer values = new LongPointer(ptr)) {
                        values.get(p);
                    }
                    for (int i = 0; i < n; i++) {
                        if (p[i] == data.testLabels()[start + i]) {
                            correct++;
                        }
                    }
                }
            }
        } finally {
            net.train(true);
        }
        return (double) correct / testSize;
    }

    /** Images {@code order[start .. start + n)} as a {@code [n, 1, 28, 28]} tensor (a copy). */
    private static Tensor images(float[] all, int[] order, int start, int n) {
        int px = FashionMnist.PIXELS;
        float[] out = new float[n * px];
        for (int i = 0; i < n; i++) {
            System.arraycopy(all, order[start + i] * px, out, i * px, px);
        }
        return Tensor.create(out, n, 1, FashionMnist.SIDE, FashionMnist.SIDE);
    }

    /** Labels as libtorch holds class indices: int64. */
    private static Tensor labels(int[] all, int[] order, int start, int n) {
        long[] out = new long[n];
        for (int i = 0; i < n; i++) {
            out[i] = all[order[start + i]];
        }
        return Tensor.create(out, n);
    }
}
