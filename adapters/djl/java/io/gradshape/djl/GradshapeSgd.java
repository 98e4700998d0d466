package io.gradshape.djl;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.dataset.Batch;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.Pair;
import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.HostBuffer;
import io.gradshape.ScaledSgd;
import io.gradshape.SgsRefresh;
import io.gradshape.SgsSchedule;
import io.gradshape.SpatialDependence;
import ai.djl.nn.convolutional.Convolution;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.List;
import java.util.Objects;
import java.util.function.Predicate;

/**
 * gradshape's scaled SGD for a DJL (PyTorch engine) block, bound zero-copy: it updates the block's
 * parameter tensors in place, reading the gradients libtorch wrote, in one fused step over every
 * parameter. Conv weights (2-D kernels larger than 1 x 1) are recognised with their kernel shape and
 * get their gradient scaled by {@code G}; with {@link Builder#sgs} the optimizer also owns an
 * {@link SgsCapture} that refreshes {@code G} on the papers' schedule ({@link #startEpoch}).
 *
 * <p>Semantics are {@code torch.optim.SGD}'s (SPEC.md section 2): the momentum buffer holds gradients,
 * the learning rate multiplies at the end. DJL's own {@code Sgd} keeps {@code lr} inside its buffer; the
 * two agree exactly in exact arithmetic while {@code lr} is constant, and differ when it changes.
 *
 * <p>Gradients do not exist before the first backward, so the optimizer binds at its first
 * {@link #step()}. Every step then checks that each weight and gradient is still at its bound address
 * (libtorch accumulates into a gradient in place, and DJL zeroes it in place, but a
 * {@code create_graph} backward or {@code NDArray.set(Buffer)} moves it); if one moved, the optimizer
 * rebinds to the new memory, keeping its momentum buffers and step count ({@link #rebinds()} counts
 * them). A parameter without a gradient at step time is an error. After the update the gradients are
 * zeroed in place, as DJL's {@code trainer.step()} does, so a training loop looks the same.
 *
 * <pre>{@code
 * GradshapeSgd sgd = GradshapeSgd.builder(model.getBlock()).lr(0.05f).momentum(0.9f)
 *         .sgs(SgsSchedule.defaults()).build();
 * for (int epoch = 0; epoch < epochs; epoch++) {
 *     sgd.startEpoch(epoch, trainer.iterateDataset(data));       // G refreshed when due
 *     for (Batch batch : trainer.iterateDataset(data)) {
 *         try (GradientCollector gc = trainer.newGradientCollector()) {
 *             ...forward, loss, backward...
 *         }
 *         sgd.step();                                            // instead of trainer.step()
 *         batch.close();
 *     }
 * }
 * }</pre>
 *
 * <p>Not thread-safe. {@link #nanosSpent()} is the time spent inside (steps and SGS refreshes).
 */
public final class GradshapeSgd implements AutoCloseable {
    /** The default weight-decay rule (the ImageNet recipe): tensors of 2 or more dimensions; biases and norms exempt. */
    public static final Predicate<Parameter> DECAY_MULTI_DIMENSIONAL = p -> p.getArray().getShape().dimension() > 1;

    /** One bound parameter: what the optimizer was built with, to detect a move. */
    private record Bound(String name, NDArray weights, long weightAddress, long gradAddress) {}

    private final Backend backend;
    private final List<Pair<String, Parameter>> parameters = new ArrayList<>();
    private final int[] convOf;        // per parameter: index of its conv in the capture, or -1
    private final int[][] kernelOf;    // per parameter: {kh, kw} of a scaled conv weight, or null
    private final boolean[] decay;
    private final float lr;
    private final Tracker tracker;
    private final float momentum;
    private final float dampening;
    private final float weightDecay;
    private final boolean nesterov;
    private final SgsCapture capture;
    private final float[][] g;         // per parameter: its current G, or null
    private HostBuffer[] momentumBuffers;
    private ScaledSgd sgd;
    private List<Bound> bound;
    private long steps;
    private int rebinds;
    private long nanos;
    private boolean closed;

    private GradshapeSgd(Builder b) {
        this.backend = b.backend;
        this.lr = b.lr;
        this.tracker = b.tracker;
        this.momentum = b.momentum;
        this.dampening = b.dampening;
        this.weightDecay = b.weightDecay;
        this.nesterov = b.nesterov;
        this.capture = b.schedule == null ? null : SgsCapture.of(b.block, b.schedule, b.backend, b.sgsOptions);
        for (Pair<String, Parameter> p : b.block.getParameters()) {
            if (p.getValue().requiresGradient()) {
                parameters.add(p);
            }
        }
        if (parameters.isEmpty()) {
            throw new IllegalArgumentException("block: no parameter that requires a gradient (is it initialized?)");
        }
        int n = parameters.size();
        convOf = new int[n];
        kernelOf = new int[n][];
        decay = new boolean[n];
        g = new float[n][];
        Map<Parameter, int[]> kernels = convKernels(b.block, new IdentityHashMap<>());
        for (int i = 0; i < n; i++) {
            Parameter p = parameters.get(i).getValue();
            if (!p.isInitialized()) {
                throw new IllegalArgumentException("parameter " + parameters.get(i).getKey()
                        + ": not initialized (initialize the block or trainer first)");
            }
            DjlArrays.requireFloatCpu(p.getArray(), "parameter " + parameters.get(i).getKey());
            decay[i] = b.decay.test(p);
            convOf[i] = -1;
            kernelOf[i] = kernels.get(p);
            if (capture != null) {
                for (int c = 0; c < capture.convs().size(); c++) {
                    if (capture.weight(c) == p) {
                        convOf[i] = c;
                    }
                }
            }
            if (kernelOf[i] != null) {
                g[i] = ones(kernelOf[i][0] * kernelOf[i][1]);
            }
        }
    }

    /** The weight of every scaled conv in {@code block} (by identity) and its {kh, kw}. */
    private static Map<Parameter, int[]> convKernels(Block block, Map<Parameter, int[]> out) {
        if (SgsCapture.scaled(block)) {
            Convolution c = (Convolution) block;
            out.put(c.getParameters().get("weight"),
                    new int[] {(int) c.getKernelShape().get(0), (int) c.getKernelShape().get(1)});
            return out;
        }
        for (Pair<String, Block> child : block.getChildren()) {
            convKernels(child.getValue(), out);
        }
        return out;
    }

    public static Builder builder(Block block) {
        return new Builder(block);
    }

    /** Settings; {@code torch.optim.SGD}'s defaults (lr must be given). */
    public static final class Builder {
        private final Block block;
        private Backend backend;
        private float lr = Float.NaN;
        private Tracker tracker;
        private float momentum;
        private float dampening;
        private float weightDecay;
        private boolean nesterov;
        private Predicate<Parameter> decay = DECAY_MULTI_DIMENSIONAL;
        private SgsSchedule schedule;
        private SpatialDependence.Options sgsOptions = SpatialDependence.Options.defaults();

        private Builder(Block block) {
            this.block = Objects.requireNonNull(block, "block");
        }

        /** A constant learning rate. */
        public Builder lr(float lr) {
            this.lr = lr;
            this.tracker = null;
            return this;
        }

        /** DJL's learning-rate schedule: step {@code k} (1-based, as DJL's optimizers count) uses {@code tracker.getNewValue(k)}. */
        public Builder lr(Tracker tracker) {
            this.tracker = Objects.requireNonNull(tracker, "tracker");
            this.lr = Float.NaN;
            return this;
        }

        public Builder momentum(float momentum) {
            this.momentum = momentum;
            return this;
        }

        public Builder dampening(float dampening) {
            this.dampening = dampening;
            return this;
        }

        public Builder nesterov(boolean nesterov) {
            this.nesterov = nesterov;
            return this;
        }

        /** L2 weight decay, applied to the parameters {@link #decayIf} selects (not scaled by G). */
        public Builder weightDecay(float weightDecay) {
            this.weightDecay = weightDecay;
            return this;
        }

        /** Which parameters get weight decay; default {@link #DECAY_MULTI_DIMENSIONAL}. */
        public Builder decayIf(Predicate<Parameter> rule) {
            this.decay = Objects.requireNonNull(rule, "rule");
            return this;
        }

        /** Turns SGS on: {@code G} refreshed on {@code schedule} by {@link GradshapeSgd#startEpoch}. */
        public Builder sgs(SgsSchedule schedule) {
            this.schedule = Objects.requireNonNull(schedule, "schedule");
            return this;
        }

        /** The spatial-dependence options of SGS (default: the reference mode). */
        public Builder sgsOptions(SpatialDependence.Options options) {
            this.sgsOptions = Objects.requireNonNull(options, "options");
            return this;
        }

        /** Default {@link Backends#cpu()}: DJL's tensors here live in host memory. */
        public Builder backend(Backend backend) {
            this.backend = Objects.requireNonNull(backend, "backend");
            return this;
        }

        /**
         * @throws IllegalArgumentException for a missing or bad learning rate or hyper-parameter, a block
         *                                  without trainable parameters, or a parameter that is not a
         *                                  float32 CPU tensor of the PyTorch engine
         */
        public GradshapeSgd build() {
            if (tracker == null && !(Float.isFinite(lr) && lr >= 0)) {
                throw new IllegalArgumentException("lr: expected a finite value >= 0 or a Tracker, got " + lr);
            }
            if (backend == null) {
                backend = Backends.cpu();
            }
            // Checks momentum, dampening, decay and nesterov now, with ScaledSgd's own messages, before any binding.
            ScaledSgd.builder(backend).lr(0f).momentum(momentum).dampening(dampening).weightDecay(weightDecay)
                    .nesterov(nesterov);
            return new GradshapeSgd(this);
        }
    }

    /**
     * Call at the start of every epoch (0-based). With SGS on and a refresh due, measures {@code G} from
     * the first {@code B} batches of {@code batches} (closing them) and returns true.
     */
    public boolean startEpoch(int epoch, Iterable<Batch> batches) {
        checkOpen();
        if (capture == null || !capture.dueAt(epoch)) {
            return false;
        }
        long t0 = System.nanoTime();
        capture.refresh(batches);
        applyScales();
        nanos += System.nanoTime() - t0;
        return true;
    }

    /** The SGS capture, or null when SGS is off. */
    public SgsCapture sgs() {
        return capture;
    }

    /** One fused step over every parameter, then the gradients zeroed. */
    public void step() {
        checkOpen();
        long t0 = System.nanoTime();
        if (sgd == null) {
            bind(0);
        } else if (moved()) {
            rebinds++;
            bind(sgd.stepCount());
        }
        if (tracker != null) {
            float now = tracker.getNewValue(Math.toIntExact(steps + 1));
            if (!(Float.isFinite(now) && now >= 0)) {
                throw new IllegalStateException("learning-rate tracker: step " + (steps + 1) + " gave " + now);
            }
            sgd.setLearningRate(now);
        }
        sgd.step();
        for (Bound b : bound) {
            JniUtils.zeroGrad((PtNDArray) b.weights());
        }
        steps++;
        nanos += System.nanoTime() - t0;
    }

    private boolean moved() {
        for (int i = 0; i < bound.size(); i++) {
            Bound b = bound.get(i);
            NDArray weights = parameters.get(i).getValue().getArray();
            if (weights != b.weights() || DjlArrays.currentAddress(weights) != b.weightAddress()) {
                return true;
            }
            PtNDArray grad = DjlArrays.gradientOrNull(weights);
            if (grad == null) {
                throw new IllegalStateException("parameter " + b.name() + " has no gradient: run backward before step()");
            }
            try (grad) {
                if (DjlArrays.currentAddress(grad) != b.gradAddress()) {
                    return true;
                }
            }
        }
        return false;
    }

    private void bind(long stepCount) {
        ScaledSgd.Builder b = ScaledSgd.builder(backend).lr(tracker == null ? lr : 0f).momentum(momentum)
                .dampening(dampening).weightDecay(weightDecay).nesterov(nesterov).initialStepCount(stepCount);
        List<Bound> now = new ArrayList<>(parameters.size());
        if (momentum != 0 && momentumBuffers == null) {
            momentumBuffers = new HostBuffer[parameters.size()];
            for (int i = 0; i < momentumBuffers.length; i++) {
                momentumBuffers[i] = HostBuffer.of(new float[Math.toIntExact(parameters.get(i).getValue().getArray().size())]);
            }
        }
        List<PtNDArray> grads = new ArrayList<>();
        try {
            for (int i = 0; i < parameters.size(); i++) {
                String name = parameters.get(i).getKey();
                NDArray weights = parameters.get(i).getValue().getArray();
                DjlArrays.View w = DjlArrays.bind(weights, "parameter " + name);
                PtNDArray grad = DjlArrays.gradientOrNull(weights);
                if (grad == null) {
                    throw new IllegalStateException("parameter " + name + " has no gradient: run backward before the first step()");
                }
                grads.add(grad);
                DjlArrays.View gr = DjlArrays.bind(grad, "gradient of " + name);
                if (gr.length() != w.length()) {
                    throw new IllegalStateException("gradient of " + name + ": " + gr.length() + " elements for "
                            + w.length() + " weights");
                }
                ScaledSgd.Parameter p = ScaledSgd.Parameter.of(w.memory(), gr.memory()).withWeightDecay(decay[i]);
                if (kernelOf[i] != null) {
                    p = p.withKernel(kernelOf[i][0], kernelOf[i][1]);
                }
                if (momentumBuffers != null) {
                    p = p.withMomentumBuffer(momentumBuffers[i].memory());
                }
                b.addParameter(p);
                now.add(new Bound(name, weights, w.address(), gr.address()));
            }
            ScaledSgd next = b.build();
            if (sgd != null) {
                sgd.close();
            }
            sgd = next;
            bound = now;
            applyScales();
        } finally {
            // The gradient handles only served to read addresses; libtorch keeps the gradients themselves.
            grads.forEach(PtNDArray::close);
        }
    }

    private void applyScales() {
        for (int i = 0; i < parameters.size(); i++) {
            if (capture != null && convOf[i] >= 0) {
                g[i] = capture.g(convOf[i]);
            }
            if (sgd != null && g[i] != null) {
                sgd.setScale(i, g[i]);
            }
        }
    }

    /** The bound parameters' names, in step order. */
    public List<String> parameterNames() {
        return parameters.stream().map(Pair::getKey).toList();
    }

    /** The kernel {@code {kh, kw}} of parameter {@code i} when it is a scaled conv weight, else null. */
    public int[] kernel(int i) {
        int[] k = kernelOf[Objects.checkIndex(i, parameters.size())];
        return k == null ? null : k.clone();
    }

    /** Whether parameter {@code i} gets weight decay. */
    public boolean decays(int i) {
        return decay[Objects.checkIndex(i, parameters.size())];
    }

    /** The G applied to parameter {@code i} (all ones before a refresh), or null when it has no kernel. */
    public float[] scale(int i) {
        float[] s = g[Objects.checkIndex(i, parameters.size())];
        return s == null ? null : s.clone();
    }

    /** The bound optimizer (null before the first step): for tests and checkpoints. */
    ScaledSgd optimizer() {
        return sgd;
    }

    /** Addresses bound for parameter {@code i}: {weights, gradient}; null before the first step. */
    long[] boundAddresses(int i) {
        return bound == null ? null : new long[] {bound.get(i).weightAddress(), bound.get(i).gradAddress()};
    }

    /** Steps taken. */
    public long steps() {
        return steps;
    }

    /** How often a moved weight or gradient made the optimizer rebind. */
    public int rebinds() {
        return rebinds;
    }

    /** Wall time spent in {@link #step()} and {@link #startEpoch} (SGS refreshes), in nanoseconds. */
    public long nanosSpent() {
        return nanos;
    }

    /** What the last SGS refresh did (empty before one, or without SGS). */
    public List<SgsRefresh.Update> lastRefresh() {
        return capture == null ? List.of() : capture.lastRefresh();
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (sgd != null) {
            sgd.close();
        }
        if (momentumBuffers != null) {
            for (HostBuffer m : momentumBuffers) {
                m.close();
            }
        }
        if (capture != null) {
            capture.close();
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("GradshapeSgd is closed");
        }
    }

    private static float[] ones(int n) {
        float[] a = new float[n];
        Arrays.fill(a, 1f);
        return a;
    }
}
