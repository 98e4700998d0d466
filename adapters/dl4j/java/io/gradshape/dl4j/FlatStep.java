package io.gradshape.dl4j;

import io.gradshape.Backend;
import io.gradshape.Memory;
import io.gradshape.ScaledSgd;
import java.util.ArrayList;
import java.util.List;
import org.deeplearning4j.nn.api.Trainable;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.nn.params.ConvolutionParamInitializer;
import org.deeplearning4j.nn.updater.UpdaterBlock;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * One DL4J updater block (consecutive parameters that share one {@link GradshapeSgd}) bound to one
 * {@link ScaledSgd} over the network's flat buffers: the block's range of the flat parameters, of the
 * flat gradients and of the updater state (the momentum), zero-copy. Each parameter of the block is a
 * segment; a 2-D convolution's weight {@code W} ({@code [out, in, kh, kw]} 'c' order = OIHW) with
 * kh, kw > 1 takes a scale G. The addresses are remembered so that a moved buffer is seen.
 */
final class FlatStep implements AutoCloseable {
    /** One parameter of the block. {@code kernel} is null for a parameter without a scale. */
    record Param(String layer, int layerIndex, String name, long offset, long length, ScaledSgd.Kernel kernel,
                 boolean weightDecay, int sgdIndex) {}

    private final GradshapeSgdUpdater updater;
    private final long paramsAddress;
    private final long gradsAddress;
    private final long stateAddress;
    private final long length;
    private final List<Param> params;
    private final ScaledSgd sgd;
    private long nanos;
    private long steps;

    private FlatStep(GradshapeSgdUpdater updater, long paramsAddress, long gradsAddress, long stateAddress, long length,
            List<Param> params, ScaledSgd sgd) {
        this.updater = updater;
        this.paramsAddress = paramsAddress;
        this.gradsAddress = gradsAddress;
        this.stateAddress = stateAddress;
        this.length = length;
        this.params = params;
        this.sgd = sgd;
    }

    /**
     * Binds block {@code ub} of {@code net}. {@code initialSteps} continues the momentum buffers (a
     * rebind, or a network restored with its updater state); 0 starts them as PyTorch does.
     */
    static FlatStep bind(Backend backend, MultiLayerNetwork net, UpdaterBlock ub, GradshapeSgdUpdater updater,
            long initialSteps) {
        GradshapeSgd config = updater.getConfig();
        long start = ub.getParamOffsetStart();
        long end = ub.getParamOffsetEnd();
        long length = end - start;
        Memory flatParams = Dl4jMemory.of("network parameters", net.params(), Dl4jMemory.ANY);
        if (end > flatParams.length() || start < 0 || length < 1) {
            throw new IllegalStateException("updater block [" + start + ", " + end + ") lies outside the "
                    + flatParams.length() + " network parameters");
        }
        Memory weights = flatParams.slice(start, length);
        Memory grads = Dl4jMemory.of("gradient view of the updater block", ub.getGradientView(), Dl4jMemory.ANY);
        if (grads.length() != length) {
            throw new IllegalStateException("gradient view of the updater block: " + grads.length()
                    + " elements for " + length + " parameters");
        }
        Memory momentum = null;
        if (config.getMomentum() > 0) {
            momentum = Dl4jMemory.of("updater state (momentum) of the block", updater.state(), Dl4jMemory.ANY);
            if (momentum.length() != length) {
                throw new IllegalStateException("updater state of the block: " + momentum.length()
                        + " elements for " + length + " parameters");
            }
        }
        List<Param> params = new ArrayList<>();
        List<ScaledSgd.Segment> segments = new ArrayList<>();
        for (UpdaterBlock.ParamState ps : ub.getLayersAndVariablesInBlock()) {
            Param p = describe(ps, start, grads, segments.size());
            params.add(p);
            ScaledSgd.Segment s = ScaledSgd.Segment.of(p.offset(), p.length()).withWeightDecay(p.weightDecay());
            segments.add(p.kernel() == null ? s : s.withKernel(p.kernel()));
        }
        ScaledSgd.Builder b = ScaledSgd.builder(backend)
                .lr((float) config.getLearningRate(net.getIterationCount(), net.getEpochCount()))
                .momentum((float) config.getMomentum())
                .nesterov(config.isNesterov())
                .weightDecay((float) config.getWeightDecay());
        if (momentum != null && initialSteps > 0) {
            b.initialStepCount(initialSteps);
        }
        ScaledSgd sgd = b.addFlat(weights, grads, momentum, segments).build();
        return new FlatStep(updater, weights.address(), grads.address(), momentum == null ? 0 : momentum.address(),
                length, List.copyOf(params), sgd);
    }

    private static Param describe(UpdaterBlock.ParamState ps, long blockStart, Memory blockGrads, int index) {
        Trainable t = ps.getLayer();
        String layer = t.getConfig().getLayerName();
        String name = ps.getParamName();
        int layerIndex = t instanceof org.deeplearning4j.nn.api.Layer l ? l.getIndex() : -1;
        String where = "parameter " + name + " of layer " + layerIndex + " (" + layer + ")";
        if (!t.getConfig().getRegularizationByParam(name).isEmpty()) {
            throw new IllegalArgumentException(where + ": DL4J regularization " + t.getConfig().getRegularizationByParam(name)
                    + " together with GradshapeSgd: set the decay on the updater instead (GradshapeSgd.weightDecay(x)):"
                    + " DL4J adds l1/l2/weightDecay to the gradient before the updater, where SGS's G would scale it");
        }
        long offset = ps.getParamOffsetStart() - blockStart;
        long length = ps.getParamOffsetEnd() - ps.getParamOffsetStart();
        // The block's gradient view and each parameter's gradient view must be one memory: checked, since
        // the whole binding rests on it.
        long expected = blockGrads.address() + 4 * offset;
        if (Dl4jMemory.address(ps.getGradView()) != expected || ps.getGradView().length() != length) {
            throw new IllegalStateException(where + ": its gradient view is not at element " + offset
                    + " of the block's gradient view");
        }
        ScaledSgd.Kernel kernel = null;
        boolean decay = true;
        if (t.getConfig() instanceof Layer conf) {
            decay = conf.initializer().isWeightParam(conf, name);
            if (conf.getClass() == ConvolutionLayer.class && ConvolutionParamInitializer.WEIGHT_KEY.equals(name)) {
                ConvolutionLayer c = (ConvolutionLayer) conf;
                int kh = c.getKernelSize()[0];
                int kw = c.getKernelSize()[1];
                if (kh > 1 && kw > 1) {
                    // DL4J's conv weight is [nOut, nIn, kh, kw] in 'c' order: OIHW
                    kernel = ScaledSgd.Kernel.of(kh, kw, ScaledSgd.Layout.OIHW, c.getNIn(), c.getNOut());
                }
            }
        }
        return new Param(layer, layerIndex, name, offset, length, kernel, decay, index);
    }

    /** True when this binding still describes {@code ub}: same updater instance, same memory. */
    boolean matches(MultiLayerNetwork net, UpdaterBlock ub) {
        if (ub.getGradientUpdater() != updater || ub.getParamOffsetEnd() - ub.getParamOffsetStart() != length) {
            return false;
        }
        long p = Dl4jMemory.address(net.params()) + 4L * ub.getParamOffsetStart();
        long g = Dl4jMemory.address(ub.getGradientView());
        long s = updater.state() == null ? 0 : Dl4jMemory.address(updater.state());
        return p == paramsAddress && g == gradsAddress && s == stateAddress;
    }

    /** DL4J's updater call: the fused step, then the gradient view zeroed (DL4J subtracts it next). */
    void step(INDArray gradient, float lr) {
        long t0 = System.nanoTime();
        if (Dl4jMemory.address(gradient) != gradsAddress || gradient.length() != length) {
            throw new IllegalStateException("GradshapeSgd: the gradient DL4J passed (" + gradient.length() + " elements at 0x"
                    + Long.toHexString(Dl4jMemory.address(gradient)) + ") is not the bound one (" + length + " at 0x"
                    + Long.toHexString(gradsAddress) + "): the network's gradients moved after GradshapeListener bound them");
        }
        sgd.setLearningRate(lr);
        sgd.step();
        gradient.assign(0);
        steps++;
        nanos += System.nanoTime() - t0;
    }

    List<Param> params() {
        return params;
    }

    GradshapeSgdUpdater updater() {
        return updater;
    }

    void setScale(int sgdIndex, float[] g) {
        sgd.setScale(sgdIndex, g);
    }

    long stepCount() {
        return sgd.stepCount();
    }

    long nanosSpent() {
        return nanos;
    }

    long steps() {
        return steps;
    }

    @Override
    public void close() {
        sgd.close();
    }
}
