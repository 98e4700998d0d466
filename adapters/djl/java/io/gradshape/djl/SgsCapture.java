package io.gradshape.djl;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Convolution;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.ParameterStore;
import ai.djl.training.dataset.Batch;
import ai.djl.util.Pair;
import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.SgsRefresh;
import io.gradshape.SgsSchedule;
import io.gradshape.SpatialDependence;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Spatial gradient scaling for a DJL block: the input of every 2-D convolution with a kernel larger
 * than 1 x 1 in both directions, captured over a few batches in eval mode, merged exactly, and the
 * {@code G} of each such conv (all ones until the first refresh).
 *
 * <p>DJL has no forward hooks, so the capture runs the block's forward itself, child by child, through
 * {@link SequentialBlock}s (nested ones included), and copies each conv's input as it passes; it stops
 * after the last conv. A conv inside any other kind of composite block (a residual or parallel block)
 * cannot be reached that way and is refused when the capture is made, with its name.
 *
 * <p>Not thread-safe; {@link #nanosSpent()} is the time spent here (forwards included).
 */
public final class SgsCapture implements AutoCloseable {
    private final Block root;
    private final List<Convolution> convBlocks;
    private final Map<Convolution, Integer> index = new IdentityHashMap<>();
    private final SgsRefresh refresh;
    private List<SgsRefresh.Update> lastRefresh = List.of();
    private long nanos;
    private boolean closed;

    private SgsCapture(Block root, List<Convolution> convBlocks, List<SgsRefresh.Conv> convs, SgsRefresh refresh) {
        this.root = root;
        this.convBlocks = convBlocks;
        for (int i = 0; i < convBlocks.size(); i++) {
            index.put(convBlocks.get(i), i);
        }
        this.refresh = refresh;
    }

    /** The papers' defaults for everything: CPU backend, reference-mode dependence. */
    public static SgsCapture of(Block block, SgsSchedule schedule) {
        return of(block, schedule, Backends.cpu(), SpatialDependence.Options.defaults());
    }

    /**
     * @param block    the model's block, initialized
     * @param options  the dependence options (kernel and padding are taken from each conv)
     * @throws IllegalArgumentException when the block has no conv to scale, or one that a sequential
     *                                  forward cannot reach
     */
    public static SgsCapture of(Block block, SgsSchedule schedule, Backend backend, SpatialDependence.Options options) {
        Objects.requireNonNull(block, "block");
        Objects.requireNonNull(schedule, "schedule");
        Objects.requireNonNull(backend, "backend");
        Objects.requireNonNull(options, "options");
        List<Convolution> blocks = new ArrayList<>();
        List<SgsRefresh.Conv> convs = new ArrayList<>();
        find(block, "", true, blocks, convs);
        if (blocks.isEmpty()) {
            throw new IllegalArgumentException("block: no 2-D convolution with a kernel larger than 1 x 1 to scale");
        }
        return new SgsCapture(block, List.copyOf(blocks), convs, new SgsRefresh(backend, convs, schedule, options));
    }

    /** A conv that SGS scales: 2-D, kh > 1 and kw > 1 (1 x k, k x 1 and 1 x 1 convs get no scaling). */
    static boolean scaled(Block block) {
        if (!(block instanceof Convolution c)) {
            return false;
        }
        Shape k = c.getKernelShape();
        return k.dimension() == 2 && k.get(0) > 1 && k.get(1) > 1;
    }

    private static void find(Block block, String path, boolean reachable, List<Convolution> blocks,
            List<SgsRefresh.Conv> convs) {
        if (scaled(block)) {
            Convolution c = (Convolution) block;
            String name = path.isEmpty() ? c.getClass().getSimpleName() : path;
            if (!reachable) {
                throw new IllegalArgumentException("conv " + name + " sits inside a block that is not a SequentialBlock: "
                        + "the SGS capture runs the forward child by child and cannot reach it");
            }
            Shape k = c.getKernelShape();
            Shape pad = c.getPadding();
            blocks.add(c);
            convs.add(new SgsRefresh.Conv(name, (int) k.get(0), (int) k.get(1), (int) pad.get(0), (int) pad.get(1)));
            return;
        }
        boolean sequential = block instanceof SequentialBlock s && !s.isReturnIntermediate();
        for (Pair<String, Block> child : block.getChildren()) {
            String childPath = path.isEmpty() ? child.getKey() : path + "/" + child.getKey();
            find(child.getValue(), childPath, reachable && sequential, blocks, convs);
        }
    }

    /** The scaled convs, in forward order: name, kernel, padding. */
    public List<SgsRefresh.Conv> convs() {
        return refresh.convs();
    }

    /** The weight parameter of conv {@code i}. */
    Parameter weight(int i) {
        return convBlocks.get(i).getParameters().get("weight");
    }

    /** Index of {@code block} among the scaled convs, or -1. */
    int indexOf(Block block) {
        Integer i = index.get(block);
        return i == null ? -1 : i;
    }

    public SgsSchedule schedule() {
        return refresh.schedule();
    }

    /** True when {@code G} is due for a refresh at the start of {@code epoch} (0-based). */
    public boolean dueAt(int epoch) {
        return refresh.dueAt(epoch);
    }

    /**
     * Runs one batch through the block in eval mode (no gradient recorded) and keeps a copy of every
     * scaled conv's input. {@code inputs} is what the block's forward takes (e.g. {@code batch.getData()});
     * it is left as it was.
     */
    public void observe(NDList inputs) {
        checkOpen();
        Objects.requireNonNull(inputs, "inputs");
        if (inputs.isEmpty()) {
            throw new IllegalArgumentException("inputs: empty NDList");
        }
        long t0 = System.nanoTime();
        boolean gradMode = JniUtils.isGradMode();
        JniUtils.setGradMode(false);
        // Every array the forward makes attaches to this scope and is freed with it; the inputs go back
        // to their own manager.
        try (NDManager scope = NDManager.subManagerOf(inputs.head())) {
            inputs.tempAttach(scope);
            ParameterStore store = new ParameterStore(scope, false);
            int[] seen = new int[1];
            forward(root, inputs, store, seen);
            if (seen[0] != convBlocks.size()) {
                throw new IllegalStateException("the forward reached " + seen[0] + " of " + convBlocks.size() + " scaled convs");
            }
        } finally {
            JniUtils.setGradMode(gradMode);
        }
        nanos += System.nanoTime() - t0;
    }

    /** Observes the first {@link SgsSchedule#batches()} batches of {@code batches} (closing each), then {@link #refresh()}. */
    public List<SgsRefresh.Update> refresh(Iterable<Batch> batches) {
        checkOpen();
        Iterator<Batch> it = batches.iterator();
        int taken = 0;
        for (; taken < refresh.schedule().batches() && it.hasNext(); taken++) {
            try (Batch b = it.next()) {
                observe(b.getData());
            }
        }
        if (taken == 0) {
            throw new IllegalArgumentException("batches: empty, nothing to measure G from");
        }
        return refresh();
    }

    /**
     * Computes every conv's {@code G} from the batches observed since the last refresh. A conv whose
     * {@code G} is not finite keeps its previous one; its {@link SgsRefresh.Update#reason()} says why.
     */
    public List<SgsRefresh.Update> refresh() {
        checkOpen();
        long t0 = System.nanoTime();
        lastRefresh = refresh.refresh();
        nanos += System.nanoTime() - t0;
        return lastRefresh;
    }

    /** What the last refresh did, per conv (empty before the first). */
    public List<SgsRefresh.Update> lastRefresh() {
        return lastRefresh;
    }

    /** The current {@code G} of conv {@code i}, {@code [kh][kw]} row-major (a copy). */
    public float[] g(int i) {
        return refresh.g(i);
    }

    /** Refreshes done so far. */
    public int refreshes() {
        return refresh.refreshes();
    }

    /** Wall time spent in {@link #observe} (the eval forwards included) and {@link #refresh}, in nanoseconds. */
    public long nanosSpent() {
        return nanos;
    }

    private NDList forward(Block block, NDList x, ParameterStore store, int[] seen) {
        int i = indexOf(block);
        if (i >= 0) {
            NDArray in = x.head();
            Shape s = in.getShape();
            if (s.dimension() != 4) {
                throw new IllegalArgumentException("input of " + convs().get(i).name() + ": expected NCHW, got shape " + s);
            }
            refresh.capture(i, DjlArrays.read(in, "input of " + convs().get(i).name()),
                    Math.toIntExact(s.get(0)), Math.toIntExact(s.get(1)), Math.toIntExact(s.get(2)), Math.toIntExact(s.get(3)));
            seen[0]++;
            // null: the last scaled conv is captured, the rest of the forward is not needed
            return seen[0] == convBlocks.size() ? null : block.forward(store, x, false);
        }
        if (block instanceof SequentialBlock s && !s.isReturnIntermediate() && containsScaled(block)) {
            NDList current = x;
            for (Pair<String, Block> child : block.getChildren()) {
                current = forward(child.getValue(), current, store, seen);
                if (current == null) {
                    return null;
                }
            }
            return current;
        }
        return block.forward(store, x, false);
    }

    private boolean containsScaled(Block block) {
        if (indexOf(block) >= 0) {
            return true;
        }
        for (Pair<String, Block> child : block.getChildren()) {
            if (containsScaled(child.getValue())) {
                return true;
            }
        }
        return false;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            refresh.close();
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("SgsCapture is closed");
        }
    }

}
