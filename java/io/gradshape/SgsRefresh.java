package io.gradshape;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The trainer-neutral half of spatial gradient scaling, shared by every adapter: per convolution,
 * the captured input batches of one refresh, merged exactly (a {@link SpatialDependenceAccumulator}
 * per conv, two passes over the same batches), and the current {@code G}.
 *
 * <p>A refresh is: {@link #capture} each conv's input for {@link SgsSchedule#batches()} batches
 * (NCHW float32, in eval mode), then {@link #refresh()}. A conv whose new {@code G} is not finite
 * (e.g. constant inputs) keeps its previous {@code G}; {@link Update#keptPrevious()} says so. Captures
 * are host copies: the trainer may reuse its activation memory at once.
 *
 * <p>Not thread-safe. {@link #nanosSpent()} is the wall time spent inside, so that a trainer can
 * report gradshape's share of a step.
 */
public final class SgsRefresh implements AutoCloseable {
    /** One convolution whose gradient is scaled: its kernel and zero padding (from the conv itself). */
    public record Conv(String name, int kernelH, int kernelW, int padH, int padW) {
        public Conv {
            Objects.requireNonNull(name, "name");
            if (kernelH < 1 || kernelW < 1) {
                throw new IllegalArgumentException("kernel of " + name + ": must be >= 1 x 1, got "
                        + kernelH + " x " + kernelW);
            }
            if (padH < 0 || padW < 0) {
                throw new IllegalArgumentException("padding of " + name + ": must be >= 0, got "
                        + padH + ", " + padW);
            }
        }
    }

    /** What one refresh did to one conv. */
    public record Update(String name, float[] g, boolean keptPrevious, String reason) {}

    private final Backend backend;
    private final List<Conv> convs;
    private final SpatialDependence.Options base;
    private final SgsSchedule schedule;
    private final float[][] g;
    private final List<List<float[]>> batches = new ArrayList<>();
    private final int[][] shapes; // per conv: n of each batch is implied; c, h, w fixed per refresh
    private long nanos;
    private int refreshes;
    private boolean closed;

    /**
     * @param base the dependence options (defaults: the reference mode); kernel and padding are taken
     *             from each conv
     */
    public SgsRefresh(Backend backend, List<Conv> convs, SgsSchedule schedule, SpatialDependence.Options base) {
        this.backend = Objects.requireNonNull(backend, "backend");
        this.convs = List.copyOf(Objects.requireNonNull(convs, "convs"));
        this.schedule = Objects.requireNonNull(schedule, "schedule");
        this.base = Objects.requireNonNull(base, "base");
        g = new float[this.convs.size()][];
        shapes = new int[this.convs.size()][];
        for (int i = 0; i < g.length; i++) {
            Conv c = this.convs.get(i);
            g[i] = new float[c.kernelH() * c.kernelW()];
            Arrays.fill(g[i], 1f);
            batches.add(new ArrayList<>());
        }
    }

    public SgsRefresh(Backend backend, List<Conv> convs, SgsSchedule schedule) {
        this(backend, convs, schedule, SpatialDependence.Options.defaults());
    }

    public List<Conv> convs() {
        return convs;
    }

    public SgsSchedule schedule() {
        return schedule;
    }

    /** True when {@code G} is due for a refresh at the start of {@code epoch}. */
    public boolean dueAt(int epoch) {
        return schedule.refreshAt(epoch);
    }

    /**
     * Keeps a copy of one batch of conv {@code conv}'s input, {@code [n][c][h][w]} float32 in
     * {@code input} (host memory: an array, direct buffer or pointer).
     */
    public void capture(int conv, Memory input, int n, int c, int h, int w) {
        checkOpen();
        Objects.checkIndex(conv, convs.size());
        Objects.requireNonNull(input, "input");
        if (n < 1 || c < 1 || h < 1 || w < 1) {
            throw new IllegalArgumentException("shape: n, c, h, w must be >= 1, got "
                    + n + ", " + c + ", " + h + ", " + w);
        }
        long elements = Math.multiplyExact(Math.multiplyExact((long) n, c), Math.multiplyExact((long) h, w));
        if (elements > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("shape: " + elements + " elements do not fit one host copy");
        }
        int[] shape = shapes[conv];
        if (shape != null && (shape[0] != c || shape[1] != h || shape[2] != w)) {
            throw new IllegalArgumentException("input of " + convs.get(conv).name() + ": shape changed within a refresh ("
                    + shape[0] + "x" + shape[1] + "x" + shape[2] + " then " + c + "x" + h + "x" + w + ")");
        }
        long t0 = System.nanoTime();
        float[] copy = copyOf(input, (int) elements);
        shapes[conv] = new int[] {c, h, w};
        batches.get(conv).add(copy);
        nanos += System.nanoTime() - t0;
    }

    /** As {@link #capture(int, Memory, int, int, int, int)} for a Java array. */
    public void capture(int conv, float[] input, int n, int c, int h, int w) {
        capture(conv, Memory.of(input), n, c, h, w);
    }

    /** Number of batches captured so far for {@code conv} in this refresh. */
    public int captured(int conv) {
        return batches.get(conv).size();
    }

    /**
     * Computes every conv's {@code G} from its captured batches (exactly merged), drops the captures
     * and returns one {@link Update} per conv. A conv with no captured batch is an error.
     */
    public List<Update> refresh() {
        checkOpen();
        long t0 = System.nanoTime();
        // Every conv is measured before any G changes, so a refused input (non-finite values) leaves
        // every G as it was and the captures in place, not half the convs refreshed.
        float[][] fresh = new float[convs.size()][];
        for (int i = 0; i < convs.size(); i++) {
            Conv conv = convs.get(i);
            List<float[]> list = batches.get(i);
            if (list.isEmpty()) {
                throw new IllegalStateException("no input captured for " + conv.name() + " in this refresh");
            }
            int[] s = shapes[i];
            long sample = (long) s[0] * s[1] * s[2];
            SpatialDependence.Options options = base.kernel(conv.kernelH(), conv.kernelW())
                    .padding(conv.padH(), conv.padW());
            try (SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(backend, s[0], s[1], s[2], options)) {
                for (float[] b : list) {
                    acc.observe(Memory.of(b), (int) (b.length / sample));
                }
                acc.beginBinning();
                for (float[] b : list) {
                    acc.bin(Memory.of(b), (int) (b.length / sample));
                }
                SpatialDependence.Result r = acc.finish(g[i]);
                fresh[i] = r.gKeptPrevious() ? null : r.g();
            }
        }
        List<Update> updates = new ArrayList<>(convs.size());
        for (int i = 0; i < convs.size(); i++) {
            String name = convs.get(i).name();
            boolean kept = fresh[i] == null;
            if (!kept) {
                g[i] = fresh[i].clone();
            }
            updates.add(new Update(name, g[i].clone(), kept,
                    kept ? "G of " + name + " is not finite (inputs without spread?): kept the previous G" : null));
            batches.get(i).clear();
            shapes[i] = null;
        }
        refreshes++;
        nanos += System.nanoTime() - t0;
        return updates;
    }

    /** The current {@code G} of conv {@code conv} (a copy): all ones before the first refresh. */
    public float[] g(int conv) {
        return g[Objects.checkIndex(conv, convs.size())].clone();
    }

    /** How many refreshes have completed. */
    public int refreshes() {
        return refreshes;
    }

    /** Wall time spent in {@link #capture} and {@link #refresh}, in nanoseconds. */
    public long nanosSpent() {
        return nanos;
    }

    private static float[] copyOf(Memory input, int elements) {
        input.require("input", DType.FLOAT32, elements);
        float[] copy = new float[elements];
        switch (input.location()) {
            case HEAP -> System.arraycopy((float[]) input.array(), input.arrayOffset(), copy, 0, elements);
            case HOST -> HostCopy.nativeToArray(input.address(), Memory.of(copy));
            default -> throw new IllegalArgumentException("input: expected host memory, got " + input);
        }
        return copy;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("SgsRefresh is closed");
        }
    }

    @Override
    public void close() {
        closed = true;
        for (List<float[]> l : batches) {
            l.clear();
        }
    }
}
