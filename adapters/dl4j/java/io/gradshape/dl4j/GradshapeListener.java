package io.gradshape.dl4j;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.SgsRefresh;
import io.gradshape.SgsSchedule;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.api.Updater;
import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.InputPreProcessor;
import org.deeplearning4j.nn.conf.layers.BaseOutputLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.nn.updater.BaseMultiLayerUpdater;
import org.deeplearning4j.nn.updater.UpdaterBlock;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.DataSet;
import org.nd4j.linalg.dataset.api.iterator.DataSetIterator;

/**
 * The DL4J listener that makes gradshape work inside {@code fit()}:
 * <ul>
 * <li>binds every {@link GradshapeSgd} updater block to the network's flat parameters, gradients and
 *     updater state before each step (DL4J creates the gradients only for the first fit; a buffer
 *     that moved later, e.g. after {@code initGradientsView()}, is rebound, the momentum continuing);</li>
 * <li>with SGS ({@link #sgs}): at the start of each epoch the papers' schedule names
 *     ({@link SgsSchedule}, 0-based epochs as DL4J counts them), runs the network in inference mode
 *     ({@code feedForward(features, false)}) on the first {@code B} batches of a capture iterator,
 *     takes the input of every scaled conv (a 2-D convolution with kh, kw > 1 whose updater is
 *     {@link GradshapeSgd}), merges them exactly ({@link SgsRefresh}) and gives each conv's step its
 *     new {@code G}. A conv whose G is not finite keeps its previous G ({@link #lastUpdates()} says so).</li>
 * <li>times gradshape's share of each step ({@link #timing()}).</li>
 * </ul>
 * The capture iterator must be its own instance, not the one {@code fit()} consumes (it is reset and
 * read at each refresh). One listener serves one network. Not thread-safe (DL4J calls listeners from
 * its training thread). {@link #close()} frees the native step state.
 */
public final class GradshapeListener extends BaseTrainingListener implements AutoCloseable {
    /** gradshape's time per part, in nanoseconds, and the steps it covers. */
    public record Timing(long stepNanos, long lossNanos, long sgsNanos, long steps) {
        public long totalNanos() {
            return stepNanos + lossNanos + sgsNanos;
        }
    }

    /** One scaled conv: its layer, its step and index there, and the conv's zero padding. */
    private record ScaledConv(int layerIndex, String layer, int block, int sgdIndex, int padH, int padW) {}

    private final Backend backend = Backends.cpu(); // nd4j-native keeps everything in host memory
    private final SgsSchedule schedule;
    private final DataSetIterator capture;
    private MultiLayerNetwork network;
    private final List<FlatStep> steps = new ArrayList<>();
    private final List<ScaledConv> convs = new ArrayList<>();
    private SgsRefresh refresh;
    private PowerGradLoss loss;
    private List<SgsRefresh.Update> lastUpdates = List.of();
    private long retiredStepNanos;
    private long retiredSteps;
    private long sgsNanos;
    private int rebinds;
    private boolean closed;

    /** Binds {@link GradshapeSgd}; SGS off (every G stays 1). */
    public GradshapeListener() {
        this.schedule = null;
        this.capture = null;
    }

    private GradshapeListener(SgsSchedule schedule, DataSetIterator capture) {
        this.schedule = Objects.requireNonNull(schedule, "schedule");
        this.capture = Objects.requireNonNull(capture, "capture");
    }

    /** SGS on the papers' default schedule (E = 5, B = 2, warmup = 1), capturing from {@code capture}. */
    public static GradshapeListener sgs(DataSetIterator capture) {
        return sgs(SgsSchedule.defaults(), capture);
    }

    /** SGS on {@code schedule}, capturing its batches from the first batches of {@code capture}. */
    public static GradshapeListener sgs(SgsSchedule schedule, DataSetIterator capture) {
        return new GradshapeListener(schedule, capture);
    }

    @Override
    public void onGradientCalculation(Model model) {
        bind(model);
    }

    @Override
    public void onEpochStart(Model model) {
        MultiLayerNetwork net = bind(model);
        if (schedule != null && schedule.refreshAt(net.getEpochCount())) {
            refresh(net);
        }
    }

    /**
     * Refreshes G now (as the schedule does at an epoch start): captures the conv inputs of the first
     * {@code B} batches of the capture iterator and sets every scaled conv's G.
     */
    public List<SgsRefresh.Update> refresh(MultiLayerNetwork net) {
        if (schedule == null) {
            throw new IllegalStateException("refresh: this GradshapeListener was built without SGS (use GradshapeListener.sgs)");
        }
        bind(net);
        long t0 = System.nanoTime();
        if (capture.resetSupported()) {
            capture.reset();
        }
        LayerWorkspaceMgr noWorkspaces = LayerWorkspaceMgr.noWorkspaces();
        for (int b = 0; b < schedule.batches(); b++) {
            if (!capture.hasNext()) {
                throw new IllegalStateException("SGS capture: the capture iterator has " + b + " batches, the schedule needs "
                        + schedule.batches());
            }
            DataSet ds = capture.next();
            INDArray features = ds.getFeatures();
            List<INDArray> activations = net.feedForward(features, false); // [input, out of layer 0, ...]
            for (int i = 0; i < convs.size(); i++) {
                ScaledConv c = convs.get(i);
                INDArray in = activations.get(c.layerIndex());
                InputPreProcessor pp = net.getLayerWiseConfigurations().getInputPreProcess(c.layerIndex());
                if (pp != null) {
                    in = pp.preProcess(in, (int) features.size(0), noWorkspaces);
                }
                if (in.rank() != 4) {
                    throw new IllegalStateException("SGS capture: input of layer " + c.layerIndex() + " (" + c.layer()
                            + ") has rank " + in.rank() + ", expected NCHW");
                }
                INDArray dense = Dl4jMemory.contiguous(in, 'c') ? in : in.dup('c');
                refresh.capture(i, Dl4jMemory.of("input of " + c.layer(), dense, 'c'), (int) dense.size(0),
                        (int) dense.size(1), (int) dense.size(2), (int) dense.size(3));
            }
        }
        lastUpdates = refresh.refresh();
        for (int i = 0; i < convs.size(); i++) {
            ScaledConv c = convs.get(i);
            steps.get(c.block()).setScale(c.sgdIndex(), refresh.g(i));
        }
        sgsNanos += System.nanoTime() - t0;
        return lastUpdates;
    }

    /** What the last refresh did, per scaled conv (empty before the first). */
    public List<SgsRefresh.Update> lastUpdates() {
        return lastUpdates;
    }

    /** The current G of every scaled conv, by layer name (all ones before the first refresh). */
    public Map<String, float[]> g() {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (int i = 0; i < convs.size(); i++) {
            out.put(convs.get(i).layer(), refresh == null ? ones(steps.get(convs.get(i).block()), convs.get(i)) : refresh.g(i));
        }
        return out;
    }

    /** Layer names of the scaled convs, in forward order (known once the network is bound). */
    public List<String> scaledConvs() {
        return convs.stream().map(ScaledConv::layer).toList();
    }

    /** The bound blocks (tests of this package). */
    List<FlatStep> stepsForTest() {
        return List.copyOf(steps);
    }

    /** How many times a moved buffer made the listener rebind a block. */
    public int rebinds() {
        return rebinds;
    }

    /**
     * gradshape's time so far: the fused steps (with the zeroing of the gradient view DL4J subtracts),
     * the PowerGrad loss of the network's output layer (if it is a {@link PowerGradLoss}) and SGS
     * (inference passes of the capture, copies and refreshes).
     */
    public Timing timing() {
        long stepNanos = retiredStepNanos;
        long n = retiredSteps;
        for (FlatStep s : steps) {
            stepNanos += s.nanosSpent();
            n = Math.max(n, retiredSteps + s.steps());
        }
        return new Timing(stepNanos, loss == null ? 0 : loss.nanosSpent(), sgsNanos, n);
    }

    /** Binds (or rebinds) every GradshapeSgd block of the network; returns the network. */
    private MultiLayerNetwork bind(Model model) {
        if (closed) {
            throw new IllegalStateException("GradshapeListener is closed");
        }
        if (!(model instanceof MultiLayerNetwork net)) {
            throw new IllegalArgumentException("model: GradshapeListener supports MultiLayerNetwork, got "
                    + (model == null ? "null" : model.getClass().getName()));
        }
        if (network != null && network != net) {
            throw new IllegalStateException("GradshapeListener: already bound to another network; use one listener per network");
        }
        if (net.getFlattenedGradients() == null) {
            net.initGradientsView(); // DL4J creates the gradient buffer lazily
        }
        Updater u = net.getUpdater(true);
        if (!(u instanceof BaseMultiLayerUpdater<?> mu)) {
            throw new IllegalStateException("GradshapeListener: unexpected DL4J updater " + u);
        }
        List<UpdaterBlock> blocks = new ArrayList<>();
        for (UpdaterBlock ub : mu.getUpdaterBlocks()) {
            if (ub.getGradientUpdater() instanceof GradshapeSgdUpdater) {
                blocks.add(ub);
            }
        }
        if (network == null) {
            first(net, blocks);
            return net;
        }
        if (blocks.size() != steps.size()) {
            throw new IllegalStateException("GradshapeListener: the network's GradshapeSgd blocks changed from " + steps.size()
                    + " to " + blocks.size() + " (a new configuration needs a new listener)");
        }
        for (int b = 0; b < blocks.size(); b++) {
            UpdaterBlock ub = blocks.get(b);
            FlatStep old = steps.get(b);
            if (!old.matches(net, ub)) {
                FlatStep fresh = FlatStep.bind(backend, net, ub, (GradshapeSgdUpdater) ub.getGradientUpdater(), old.stepCount());
                retiredStepNanos += old.nanosSpent();
                retiredSteps += old.steps();
                old.close();
                steps.set(b, fresh);
                fresh.updater().bind(fresh);
                for (int i = 0; i < convs.size(); i++) {
                    if (convs.get(i).block() == b && refresh != null) {
                        fresh.setScale(convs.get(i).sgdIndex(), refresh.g(i));
                    }
                }
                rebinds++;
            }
        }
        return net;
    }

    private void first(MultiLayerNetwork net, List<UpdaterBlock> blocks) {
        long start = net.getIterationCount();
        try {
            for (UpdaterBlock ub : blocks) {
                GradshapeSgdUpdater gu = (GradshapeSgdUpdater) ub.getGradientUpdater();
                FlatStep s = FlatStep.bind(backend, net, ub, gu, start);
                steps.add(s);
                for (FlatStep.Param p : s.params()) {
                    if (p.kernel() != null) {
                        convs.add(scaledConv(net, p, steps.size() - 1));
                    }
                }
            }
            convs.sort((a, b) -> Integer.compare(a.layerIndex(), b.layerIndex()));
            if (schedule != null) {
                if (convs.isEmpty()) {
                    throw new IllegalArgumentException("SGS: no 2-D convolution with a kernel larger than 1 x 1 is stepped by"
                            + " GradshapeSgd: set .updater(new GradshapeSgd(...)) on the network or on its conv layers");
                }
                List<SgsRefresh.Conv> list = new ArrayList<>();
                for (ScaledConv c : convs) {
                    FlatStep.Param p = steps.get(c.block()).params().get(c.sgdIndex());
                    list.add(new SgsRefresh.Conv(c.layer(), p.kernel().height(), p.kernel().width(), c.padH(), c.padW()));
                }
                refresh = new SgsRefresh(backend, list, schedule);
            }
        } catch (RuntimeException e) {
            steps.forEach(FlatStep::close);
            steps.clear();
            convs.clear();
            throw e;
        }
        for (FlatStep s : steps) {
            s.updater().bind(s);
        }
        if (net.getOutputLayer().conf().getLayer() instanceof BaseOutputLayer out && out.getLossFn() instanceof PowerGradLoss p) {
            loss = p;
        }
        network = net;
    }

    /** A conv stepped with a scale: its zero padding, for the dependence of its input. */
    private ScaledConv scaledConv(MultiLayerNetwork net, FlatStep.Param p, int block) {
        ConvolutionLayer c = (ConvolutionLayer) net.getLayer(p.layerIndex()).conf().getLayer();
        String where = "layer " + p.layerIndex() + " (" + p.layer() + ")";
        if (schedule != null) {
            if (c.getDilation()[0] != 1 || c.getDilation()[1] != 1) {
                throw new IllegalArgumentException(where + ": SGS is defined for undilated convolutions, got dilation "
                        + c.getDilation()[0] + " x " + c.getDilation()[1]);
            }
            if (c.getCnn2dDataFormat() != CNN2DFormat.NCHW) {
                throw new IllegalArgumentException(where + ": SGS capture reads NCHW activations, got " + c.getCnn2dDataFormat());
            }
        }
        int padH = c.getPadding()[0];
        int padW = c.getPadding()[1];
        if (c.getConvolutionMode() == ConvolutionMode.Same) {
            int kh = c.getKernelSize()[0];
            int kw = c.getKernelSize()[1];
            if (kh % 2 == 0 || kw % 2 == 0 || c.getStride()[0] != 1 || c.getStride()[1] != 1) {
                if (schedule != null) {
                    throw new IllegalArgumentException(where + ": SGS with ConvolutionMode.Same needs an odd kernel and stride 1"
                            + " (symmetric padding), got kernel " + kh + " x " + kw + ", stride " + c.getStride()[0] + " x "
                            + c.getStride()[1]);
                }
            }
            padH = (kh - 1) / 2;
            padW = (kw - 1) / 2;
        } else if (c.getConvolutionMode() == ConvolutionMode.Causal && schedule != null) {
            throw new IllegalArgumentException(where + ": SGS does not support ConvolutionMode.Causal");
        }
        String name = p.layer() != null ? p.layer() : "layer" + p.layerIndex();
        return new ScaledConv(p.layerIndex(), name, block, p.sgdIndex(), padH, padW);
    }

    private static float[] ones(FlatStep s, ScaledConv c) {
        float[] g = new float[s.params().get(c.sgdIndex()).kernel().area()];
        java.util.Arrays.fill(g, 1f);
        return g;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (FlatStep s : steps) {
            s.updater().bind(null);
            s.close();
        }
        if (refresh != null) {
            refresh.close();
        }
    }
}
