package io.gradshape;

import io.gradshape.SpatialDependence.Options;
import io.gradshape.SpatialDependence.RangeMode;
import io.gradshape.SpatialDependence.Result;
import io.gradshape.natives.CudaNative;
import io.gradshape.natives.Natives;
import io.gradshape.natives.SpatialDependenceNative;
import java.util.Arrays;
import java.util.Objects;
import org.bytedeco.javacpp.Pointer;

/**
 * Spatial dependence accumulated over several batches and several data-parallel ranks, exactly: the
 * result equals one {@link SpatialDependence#compute} over all the batches concatenated, bit for bit.
 *
 * <p>The reference bins each (channel, displacement) pair set with ranges and a bin count taken from
 * the whole set, so two passes are needed:
 * <ol>
 *   <li><b>Observe</b>: {@link #observe} every batch: pair counts and value ranges (min / max).</li>
 *   <li>Ranks only: {@link #exportState()}, all-reduce it (sum of {@link State#counts()}, min of
 *       {@link State#minima()}, max of {@link State#maxima()}, in place), {@link #importState}.</li>
 *   <li>{@link #beginBinning()}: fixes the ranges and bin counts.</li>
 *   <li><b>Bin</b>: {@link #bin} the same batches again: integer joint histograms.</li>
 *   <li>Ranks only: export, all-reduce (sum of {@link State#histogram()}), import.</li>
 *   <li>{@link #finish}: NMI per channel, {@code S} and {@code G}; may be called more than once.</li>
 * </ol>
 * {@link #reset()} starts a new round with the same buffers. With {@link RangeMode#FIXED} the ranges
 * are known in advance, but phase 1 still counts the pairs that set the Sturges bin counts.
 *
 * <p>The state lives on the backend (device memory on CUDA), allocated once; the histograms, whose
 * size depends on the number of samples observed (Sturges), at the first {@link #beginBinning()} and
 * again only when a later round needs more bins. Calls taking a {@code stream} are queued on it (CUDA);
 * the others use the default stream. Not thread-safe: one accumulator per thread (or device), merged
 * with {@link #mergeState}.
 *
 * <p>Non-finite input values are an error: on the CPU {@link #observe} throws at once; on CUDA the
 * count is checked when state or results come to the host ({@link #exportState()}, {@link #finish()}).
 */
public final class SpatialDependenceAccumulator implements AutoCloseable {
    /** Which pass the accumulator is in. */
    public enum Phase { OBSERVING, BINNING }

    private final Backend backend;
    private final CudaBackend cuda; // null on the CPU
    private final int channels, height, width;
    private final Options options;
    private final int displacements;
    private final long maxPairsPerSample;

    private final OwnedBuffer pairCount; // int64 [channels][D]
    private final OwnedBuffer ranges;    // float [channels][D][4]
    private final OwnedBuffer nonfinite; // int64 [1]
    private final OwnedBuffer keptFlag;  // int32 [1]
    private OwnedBuffer hist;            // int64, at least [channels][D][tableBins][tableBins]
    private DeviceBuffer workspace;      // CUDA histogram workspace, grown on demand

    private Phase phase = Phase.OBSERVING;
    private long samples;
    private int tableBins;
    private boolean closed;

    /**
     * An accumulator for the input feature maps of one convolution: every batch holds samples of
     * {@code channels x height x width} (or NHWC, per the options).
     */
    public SpatialDependenceAccumulator(Backend backend, int channels, int height, int width, Options options) {
        this.backend = Objects.requireNonNull(backend, "backend");
        this.options = Objects.requireNonNull(options, "options");
        checkShape(channels, height, width, options);
        this.channels = channels;
        this.height = height;
        this.width = width;
        this.displacements = options.displacements();
        this.maxPairsPerSample = Arrays.stream(SpatialDependence.pairsPerSample(height, width, options)).max().orElse(0);
        this.cuda = backend instanceof CudaBackend c ? c : null;
        if (cuda == null) {
            CpuBackend.ensureLoaded();
        }
        long cd = (long) channels * displacements;
        OwnedBuffer[] made = new OwnedBuffer[4];
        try {
            made[0] = allocate(DType.INT64, cd);
            made[1] = allocate(DType.FLOAT32, cd * 4);
            made[2] = allocate(DType.INT64, 1);
            made[3] = allocate(DType.INT32, 1);
        } catch (RuntimeException e) {
            for (OwnedBuffer b : made) {
                if (b != null) {
                    b.close();
                }
            }
            throw e;
        }
        this.pairCount = made[0];
        this.ranges = made[1];
        this.nonfinite = made[2];
        this.keptFlag = made[3];
        clearStatistics(Streams.DEFAULT);
    }

    // ---- phase 1 ------------------------------------------------------------------------------------

    /** Phase 1: adds the pair counts and value ranges of {@code batch} ({@code batchSize} samples). */
    public void observe(Memory batch, int batchSize) {
        observe(batch, batchSize, Streams.DEFAULT);
    }

    /** As {@link #observe(Memory, int)}, queued on {@code stream}. */
    public void observe(Memory batch, int batchSize, long stream) {
        checkObserving();
        checkBatch(batch, batchSize, "batch", "batchSize");
        observeChecked(batch, batchSize, stream, "batch");
    }

    /**
     * The checks of the constructor, before anything is allocated: sizes >= 1, the padded map within
     * 2^31 - 1 positions per axis and per plane (the kernels index a plane with 32-bit integers), and
     * the per-channel results ({@code channels * kernelH * kernelW} floats) within a Java array.
     */
    static void checkShape(int channels, int height, int width, Options options) {
        checkPositive("channels", channels);
        checkPositive("height", height);
        checkPositive("width", width);
        long hp = height + 2L * options.padH(), wp = width + 2L * options.padW();
        if (hp > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("padH: the padded height " + height + " + 2 * " + options.padH()
                    + " exceeds 2^31 - 1");
        }
        if (wp > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("padW: the padded width " + width + " + 2 * " + options.padW()
                    + " exceeds 2^31 - 1");
        }
        if (hp * wp > Integer.MAX_VALUE) { // both below 2^31: the product cannot overflow a long
            throw new IllegalArgumentException("height, width: the padded map " + hp + " x " + wp
                    + " (padding " + options.padH() + ", " + options.padW() + ") exceeds 2^31 - 1 positions");
        }
        long window = (long) options.kernelH() * options.kernelW();
        if ((long) channels * window > MAX_ARRAY) {
            throw new IllegalArgumentException("channels: " + channels + " channels x a " + options.kernelH() + "x"
                    + options.kernelW() + " window exceed the " + MAX_ARRAY + " elements of a Java array (the per-channel NMI)");
        }
    }

    /** The largest Java array the results and exported state may need (HotSpot's limit). */
    static final int MAX_ARRAY = Integer.MAX_VALUE - 8;

    /** Phase 1 on a validated batch; {@code name} is the argument that non-finite values are blamed on. */
    void observeChecked(Memory batch, int batchSize, long stream, String name) {
        try (Staged in = Staged.in(backend, batch, name, stream)) {
            int status;
            if (cuda != null) {
                try (CudaBackend.Current on = cuda.activate()) {
                    status = SpatialDependenceNative.gs_sd_stats_cuda(in.address(), batchSize, channels, height, width,
                            options.layout().ordinal(), options.kernelH(), options.kernelW(), options.padH(), options.padW(),
                            options.rangeMode().ordinal(), options.removeZeros() ? 1 : 0, pairCount.address(),
                            ranges.address(), nonfinite.address(), stream);
                }
            } else {
                long before = download(nonfinite, 1, stream)[0];
                status = SpatialDependenceNative.gs_sd_stats_cpu(in.address(), batchSize, channels, height, width,
                        options.layout().ordinal(), options.kernelH(), options.kernelW(), options.padH(), options.padW(),
                        options.rangeMode().ordinal(), options.removeZeros() ? 1 : 0, pairCount.address(),
                        ranges.address(), nonfinite.address());
                Natives.check(status);
                samples += batchSize;
                checkFinite(name, download(nonfinite, 1, stream)[0] - before);
                return;
            }
            Natives.check(status);
            samples += batchSize;
        }
    }

    /** Ends phase 1: fixes the ranges and the table size. Every batch observed must be binned next. */
    public void beginBinning() {
        beginBinning(Streams.DEFAULT);
    }

    /** As {@link #beginBinning()}, with the histograms cleared on {@code stream}. */
    public void beginBinning(long stream) {
        checkOpen();
        if (phase != Phase.OBSERVING) {
            throw new IllegalStateException("beginBinning: already binning; reset() starts a new round");
        }
        if (samples == 0) {
            throw new IllegalStateException("beginBinning: no sample observed; observe() the batches first");
        }
        int bins = options.bins() > 0 ? options.bins()
                : 1 + SpatialDependence.ceilLog2(Math.multiplyExact(samples, maxPairsPerSample));
        long length = (long) channels * displacements * bins * bins;
        if (hist == null || hist.length() < length) {
            if (hist != null) {
                hist.close();
                hist = null;
            }
            hist = allocate(DType.INT64, length);
        }
        tableBins = bins;
        zero(hist, length, stream);
        phase = Phase.BINNING;
    }

    // ---- phase 2 ------------------------------------------------------------------------------------

    /** Phase 2: adds the joint histograms of {@code batch}, one of the batches observed in phase 1. */
    public void bin(Memory batch, int batchSize) {
        bin(batch, batchSize, Streams.DEFAULT);
    }

    /** As {@link #bin(Memory, int)}, queued on {@code stream}. */
    public void bin(Memory batch, int batchSize, long stream) {
        checkOpen();
        if (phase != Phase.BINNING) {
            throw new IllegalStateException("bin: call beginBinning() after the last observe() first");
        }
        checkBatch(batch, batchSize, "batch", "batchSize");
        binChecked(batch, batchSize, stream, "batch");
    }

    /** Phase 2 on a validated batch. */
    void binChecked(Memory batch, int batchSize, long stream, String name) {
        try (Staged in = Staged.in(backend, batch, name, stream)) {
            int layout = options.layout().ordinal(), mode = options.rangeMode().ordinal(), zeros = options.removeZeros() ? 1 : 0;
            if (cuda != null) {
                try (CudaBackend.Current on = cuda.activate()) {
                    long[] bytes = new long[1];
                    Natives.check(SpatialDependenceNative.gs_sd_histogram_workspace_cuda(batchSize, channels, height, width,
                            options.kernelH(), options.kernelW(), tableBins, bytes));
                    long words = (bytes[0] + 7) / 8;
                    if (words > 0 && (workspace == null || workspace.length() < words)) {
                        if (workspace != null) {
                            workspace.close();
                            workspace = null;
                        }
                        workspace = DeviceBuffer.allocate(cuda, DType.INT64, words);
                    }
                    Natives.check(SpatialDependenceNative.gs_sd_histogram_cuda(in.address(), batchSize, channels, height,
                            width, layout, options.kernelH(), options.kernelW(), options.padH(), options.padW(),
                            options.bins(), mode, options.rangeLo(), options.rangeHi(), zeros, pairCount.address(),
                            ranges.address(), tableBins, hist.address(), words > 0 ? workspace.address() : 0L,
                            words > 0 ? workspace.bytes() : 0L, stream));
                }
            } else {
                Natives.check(SpatialDependenceNative.gs_sd_histogram_cpu(in.address(), batchSize, channels, height,
                        width, layout, options.kernelH(), options.kernelW(), options.padH(), options.padW(),
                        options.bins(), mode, options.rangeLo(), options.rangeHi(), zeros, pairCount.address(),
                        ranges.address(), tableBins, hist.address()));
            }
        }
    }

    // ---- phase 3 ------------------------------------------------------------------------------------

    /** NMI, {@code S} and {@code G} on the host; {@code G} falls back to all ones if not finite. */
    public Result finish() {
        return finish(null, Streams.DEFAULT);
    }

    /** As {@link #finish()}, falling back to {@code previousG} ({@code kernelH * kernelW}, may be null). */
    public Result finish(float[] previousG) {
        return finish(previousG, Streams.DEFAULT);
    }

    /** As {@link #finish(float[])}, queued on {@code stream}; returns when the result is on the host. */
    public Result finish(float[] previousG, long stream) {
        checkFinishing();
        int e = options.kernelH() * options.kernelW();
        if (previousG != null) {
            if (previousG.length != e) {
                throw new IllegalArgumentException("previousG: expected " + e + " elements, got " + previousG.length);
            }
            checkPreviousG(Memory.of(previousG));
        }
        checkFinite("batch", download(nonfinite, 1, stream)[0]);
        float[] nmi = new float[channels * e];
        float[] s = new float[e];
        float[] g = new float[e];
        int[] kept = new int[1];
        finalizeInto(Memory.of(nmi), Memory.of(s), Memory.of(g), previousG == null ? null : Memory.of(previousG),
                Memory.of(kept), stream);
        return new Result(channels, options.kernelH(), options.kernelW(), nmi, s, g, kept[0] != 0);
    }

    /**
     * Writes the raw NMI {@code [channels][kernelH][kernelW]}, {@code S} and {@code G} (FLOAT32,
     * {@code kernelH * kernelW}) into the caller's memory, asynchronously on {@code stream} on CUDA
     * when the outputs are device memory (so that a trainer's {@code G} never leaves the GPU).
     * {@code previousG} (may be null, may be {@code g} itself) is what {@code G} keeps when the new
     * one is not finite; {@code gKeptPrevious} (INT32 x 1, may be null) receives 1 then, else 0.
     * On CUDA this call does not read the non-finite input count back; {@link #exportState()} or
     * {@link #finish()} do.
     */
    public void finish(Memory nmi, Memory s, Memory g, Memory previousG, Memory gKeptPrevious, long stream) {
        checkFinishing();
        int e = options.kernelH() * options.kernelW();
        Objects.requireNonNull(nmi, "nmi").require("nmi", DType.FLOAT32, (long) channels * e);
        Objects.requireNonNull(s, "s").require("s", DType.FLOAT32, e);
        Objects.requireNonNull(g, "g").require("g", DType.FLOAT32, e);
        nmi.requireWritable("nmi");
        s.requireWritable("s");
        g.requireWritable("g");
        if (gKeptPrevious != null) {
            gKeptPrevious.require("gKeptPrevious", DType.INT32, 1).requireWritable("gKeptPrevious");
        }
        // Outputs written through one another would silently lose a result.
        checkDisjoint("s", s, "nmi", nmi);
        checkDisjoint("g", g, "nmi", nmi);
        checkDisjoint("g", g, "s", s);
        if (gKeptPrevious != null) {
            checkDisjoint("gKeptPrevious", gKeptPrevious, "nmi", nmi);
            checkDisjoint("gKeptPrevious", gKeptPrevious, "s", s);
            checkDisjoint("gKeptPrevious", gKeptPrevious, "g", g);
        }
        if (previousG != null) {
            previousG.require("previousG", DType.FLOAT32, e);
            // previousG may be g itself (G kept in place); any other overlap with an output is an error.
            if (!Memory.sameMemory(previousG, g)) {
                checkDisjoint("previousG", previousG, "g", g);
            }
            checkDisjoint("previousG", previousG, "nmi", nmi);
            checkDisjoint("previousG", previousG, "s", s);
            if (gKeptPrevious != null) {
                checkDisjoint("previousG", previousG, "gKeptPrevious", gKeptPrevious);
            }
            if (previousG.location() != Memory.Location.DEVICE) {
                checkPreviousG(previousG);
            }
        }
        if (cuda == null) {
            checkFinite("batch", download(nonfinite, 1, stream)[0]);
        }
        finalizeInto(nmi, s, g, previousG, gKeptPrevious, stream);
    }

    private static void checkDisjoint(String name, Memory a, String otherName, Memory b) {
        if (Memory.overlaps(a, b)) {
            throw new IllegalArgumentException(name + ": overlaps " + otherName + "; each output needs its own memory");
        }
    }

    /**
     * A previous G kept in place of a non-finite new one must itself be a usable scale: finite and > 0
     * (a NaN kept would poison every later step of the optimizer). Host memory only: device memory is
     * not read back here.
     */
    private static void checkPreviousG(Memory previousG) {
        float[] values;
        int offset;
        if (previousG.location() == Memory.Location.HEAP) {
            values = (float[]) previousG.array();
            offset = previousG.arrayOffset();
        } else {
            values = new float[(int) previousG.length()];
            offset = 0;
            HostCopy.nativeToArray(previousG.address(), Memory.of(values));
        }
        for (int i = 0; i < previousG.length(); i++) {
            float v = values[offset + i];
            if (!(Float.isFinite(v) && v > 0)) {
                throw new IllegalArgumentException("previousG[" + i + "]: expected a finite scale > 0, got " + v);
            }
        }
    }

    private void finalizeInto(Memory nmi, Memory s, Memory g, Memory previousG, Memory kept, long stream) {
        try (Staged prev = previousG == null ? null : Staged.in(backend, previousG, "previousG", stream);
                Staged outNmi = Staged.out(backend, nmi, "nmi", stream);
                Staged outS = Staged.out(backend, s, "s", stream);
                Staged outG = Staged.out(backend, g, "g", stream);
                Staged outKept = kept == null ? null : Staged.out(backend, kept, "gKeptPrevious", stream)) {
            long prevAddress = prev == null ? 0L : prev.address();
            long keptAddress = outKept == null ? keptFlag.address() : outKept.address();
            int zeros = options.removeZeros() ? 1 : 0;
            if (cuda != null) {
                try (CudaBackend.Current on = cuda.activate()) {
                    Natives.check(SpatialDependenceNative.gs_sd_finalize_cuda(channels, options.kernelH(), options.kernelW(),
                            zeros, pairCount.address(), hist.address(), tableBins, options.k(), options.order().ordinal(),
                            prevAddress, outNmi.address(), outS.address(), outG.address(), keptAddress, stream));
                }
            } else {
                Natives.check(SpatialDependenceNative.gs_sd_finalize_cpu(channels, options.kernelH(), options.kernelW(),
                        zeros, pairCount.address(), hist.address(), tableBins, options.k(), options.order().ordinal(),
                        prevAddress, outNmi.address(), outS.address(), outG.address(), keptAddress));
            }
        }
    }

    // ---- state exchange -----------------------------------------------------------------------------

    /**
     * A host copy of the reducible state of the current phase, for ranks to all-reduce (in place, on
     * the state's own arrays) and {@link #importState}, or for another accumulator's {@link #mergeState}.
     */
    public State exportState() {
        return exportState(Streams.DEFAULT);
    }

    /** As {@link #exportState()}, after the work queued on {@code stream}. */
    public State exportState(long stream) {
        checkOpen();
        State one = exportPhaseOne(stream);
        int cd = channels * displacements;
        long[] histogram = null;
        if (phase == Phase.BINNING) {
            long cells = (long) cd * tableBins * tableBins;
            if (cells > MAX_ARRAY) {
                throw new IllegalStateException("exportState: the histograms hold " + cells + " cells, more than a Java"
                        + " array; use fewer channels per accumulator (or fewer bins) to exchange state");
            }
            histogram = download(hist, (int) cells, stream);
        }
        checkFinite("batch", one.counts[1]);
        return new State(channels, height, width, options, phase, tableBins, one.counts, one.minima, one.maxima, histogram);
    }

    /**
     * Adds another accumulator's (or rank's) state of the same phase, shapes and options: in phase 1
     * counts add and ranges widen; in phase 2 the phase-1 parts must be equal (reduce phase 1 before
     * {@link #beginBinning()}) and the histograms add.
     */
    public void mergeState(State other) {
        mergeState(other, Streams.DEFAULT);
    }

    /**
     * As {@link #mergeState(State)}, ordered on {@code stream} (CUDA): the state is read after the work
     * queued there and written back there, so kernels still queued on a non-blocking stream are not
     * overtaken (F3). Returns when the merged state is on the device.
     */
    public void mergeState(State other, long stream) {
        checkOpen();
        checkCompatible(other);
        checkState(other, "other", stream);
        State mine = exportState(stream);
        if (phase == Phase.OBSERVING) {
            long[] counts = mine.counts();
            for (int i = 0; i < counts.length; i++) {
                counts[i] = addCounts(counts[i], other.counts[i], i);
            }
            float[] minima = mine.minima(), maxima = mine.maxima();
            for (int i = 0; i < minima.length; i++) {
                minima[i] = Math.min(minima[i], other.minima[i]);
                maxima[i] = Math.max(maxima[i], other.maxima[i]);
            }
        } else {
            if (!Arrays.equals(mine.counts, other.counts) || !Arrays.equals(mine.minima, other.minima)
                    || !Arrays.equals(mine.maxima, other.maxima)) {
                throw new IllegalArgumentException("other: its phase-1 counts and ranges differ from this accumulator's;"
                        + " merge (all-reduce) phase 1 before beginBinning()");
            }
            long[] h = mine.histogram();
            for (int i = 0; i < h.length; i++) {
                h[i] = addCounts(h[i], other.histogram[i], i);
            }
        }
        checkState(mine, "other", stream);
        load(mine, stream);
    }

    private static long addCounts(long a, long b, int index) {
        long sum = a + b;
        if (((a ^ sum) & (b ^ sum)) < 0) {
            throw new IllegalArgumentException("other: merged counts overflow a 64-bit integer (element " + index + ")");
        }
        return sum;
    }

    /** Replaces the state with {@code state} (same phase, shapes and options), e.g. after an all-reduce. */
    public void importState(State state) {
        importState(state, Streams.DEFAULT);
    }

    /** As {@link #importState(State)}, the state written on {@code stream} (CUDA); returns when it is there. */
    public void importState(State state, long stream) {
        checkOpen();
        checkCompatible(state);
        checkState(state, "state", stream);
        load(state, stream);
    }

    /** Clears the state and starts a new round in phase 1, keeping the buffers. */
    public void reset() {
        reset(Streams.DEFAULT);
    }

    /**
     * As {@link #reset()}, the state cleared on {@code stream} (CUDA), after the kernels queued there:
     * on the legacy default stream the clearing could run before them when the caller's stream is
     * non-blocking (PyTorch's pool streams are), and their counts would then land in the new round.
     */
    public void reset(long stream) {
        checkOpen();
        clearStatistics(stream);
        phase = Phase.OBSERVING;
        tableBins = 0;
    }

    // ---- accessors ----------------------------------------------------------------------------------

    public Backend backend() {
        return backend;
    }

    public Options options() {
        return options;
    }

    public int channels() {
        return channels;
    }

    public int height() {
        return height;
    }

    public int width() {
        return width;
    }

    public Phase phase() {
        checkOpen();
        return phase;
    }

    /** Samples observed in phase 1 (merged states included). */
    public long samplesObserved() {
        checkOpen();
        return samples;
    }

    /** Bins per axis of the histogram tables (0 before {@link #beginBinning()}). */
    public int tableBins() {
        checkOpen();
        return tableBins;
    }

    /** Frees the state buffers. Calling it again does nothing; any other call afterwards throws. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (OwnedBuffer b : new OwnedBuffer[] {pairCount, ranges, nonfinite, keptFlag, hist, workspace}) {
            if (b != null) {
                b.close();
            }
        }
        hist = null;
        workspace = null;
    }

    /**
     * A host snapshot of an accumulator's reducible state. Its arrays are its own and meant to be
     * all-reduced in place across ranks before {@link SpatialDependenceAccumulator#importState}:
     * <ul>
     *   <li>{@link #counts()}: sum: {@code [0]} samples observed, {@code [1]} non-finite input values,
     *       {@code [2 + c * D + u]} pairs of channel {@code c}, displacement {@code u};</li>
     *   <li>{@link #minima()}: min, {@link #maxima()}: max: {@code [(c * D + u) * 2 + side]}, side 0 = P, 1 = Q;</li>
     *   <li>{@link #histogram()} (phase 2 only, else null): sum: {@code [c][u][bP][bQ]}, {@code tableBins()}
     *       per axis.</li>
     * </ul>
     * Displacement {@code u} is {@code (dy, dx) = (u / kernelW - (kernelH-1)/2, u % kernelW - (kernelW-1)/2)}
     * for {@code u < D = (kernelH * kernelW - 1) / 2}. In phase 2 only the histogram is reduced: the
     * phase-1 parts are already equal on every rank.
     */
    public static final class State {
        private final int channels, height, width;
        private final Options options;
        private final Phase phase;
        private final int tableBins;
        private final long[] counts;
        private final float[] minima, maxima;
        private final long[] histogram;

        State(int channels, int height, int width, Options options, Phase phase, int tableBins, long[] counts,
                float[] minima, float[] maxima, long[] histogram) {
            this.channels = channels;
            this.height = height;
            this.width = width;
            this.options = options;
            this.phase = phase;
            this.tableBins = tableBins;
            this.counts = counts;
            this.minima = minima;
            this.maxima = maxima;
            this.histogram = histogram;
        }

        public Phase phase() {
            return phase;
        }

        public int channels() {
            return channels;
        }

        public int height() {
            return height;
        }

        public int width() {
            return width;
        }

        public Options options() {
            return options;
        }

        /** Bins per axis of {@link #histogram()}; 0 in phase 1. */
        public int tableBins() {
            return tableBins;
        }

        public long[] counts() {
            return counts;
        }

        public float[] minima() {
            return minima;
        }

        public float[] maxima() {
            return maxima;
        }

        public long[] histogram() {
            return histogram;
        }

        public long samples() {
            return counts[0];
        }

        /** Pairs used by channel {@code c}, displacement {@code u}. */
        public long pairCount(int c, int u) {
            if (c < 0 || c >= channels) {
                throw new IllegalArgumentException("c: expected a channel in [0, " + channels + "), got " + c);
            }
            int d = options.displacements();
            if (u < 0 || u >= d) {
                throw new IllegalArgumentException("u: expected a displacement in [0, " + d + "), got " + u);
            }
            return counts[2 + c * d + u];
        }
    }

    // ---- internals ----------------------------------------------------------------------------------

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("SpatialDependenceAccumulator is closed");
        }
    }

    private void checkFinishing() {
        checkOpen();
        if (phase != Phase.BINNING) {
            throw new IllegalStateException("finish: call beginBinning() and bin() every observed batch first");
        }
    }

    void checkObserving() {
        checkOpen();
        if (phase != Phase.OBSERVING) {
            throw new IllegalStateException("observe: the accumulator is binning; observe every batch before beginBinning(), or reset()");
        }
    }

    void checkBatch(Memory batch, int batchSize, String name, String sizeName) {
        checkBatch(batch, batchSize, channels, height, width, name, sizeName);
    }

    /**
     * A batch of {@code batchSize} samples of {@code channels x height x width} floats. The expected
     * length is an overflow-checked product: a wrapped product could match a short array and let the
     * kernel read far past it.
     */
    static void checkBatch(Memory batch, int batchSize, int channels, int height, int width, String name, String sizeName) {
        Objects.requireNonNull(batch, name);
        checkPositive(sizeName, batchSize);
        long sample = (long) channels * height * width; // three ints >= 1 whose padded plane was checked: < 2^62
        if (sample > Long.MAX_VALUE / batchSize) {
            throw new IllegalArgumentException(sizeName + ": " + batchSize + " samples of " + channels + " x " + height
                    + " x " + width + " floats overflow a 64-bit length");
        }
        batch.require(name, DType.FLOAT32, sample * batchSize);
    }

    /** A view of memory this backend addresses directly (a staged copy), for the *Checked methods. */
    Memory view(long address, long length) {
        return cuda != null ? Memory.device(address, DType.FLOAT32, length, cuda.device())
                : Memory.host(address, DType.FLOAT32, length, null);
    }

    private void checkCompatible(State other) {
        Objects.requireNonNull(other, "other");
        if (other.channels != channels || other.height != height || other.width != width) {
            throw new IllegalArgumentException("other: state of shape " + other.channels + " x " + other.height + " x "
                    + other.width + ", expected " + channels + " x " + height + " x " + width);
        }
        if (!other.options.equals(options)) {
            throw new IllegalArgumentException("other: state of " + other.options + ", expected " + options);
        }
        if (other.phase != phase) {
            throw new IllegalArgumentException("other: state of phase " + other.phase + ", this accumulator is " + phase);
        }
        int cd = channels * displacements;
        if (other.counts.length != 2 + cd || other.minima.length != 2 * cd || other.maxima.length != 2 * cd) {
            throw new IllegalArgumentException("other: arrays resized; expected counts of " + (2 + cd)
                    + ", minima and maxima of " + 2 * cd + " elements");
        }
        if (phase == Phase.BINNING && (other.tableBins != tableBins || other.histogram == null
                || other.histogram.length != (long) cd * tableBins * tableBins)) {
            throw new IllegalArgumentException("other: histogram of " + other.tableBins + " bins per axis, expected "
                    + tableBins + " (equal phase-1 states give equal tables)");
        }
    }

    /**
     * A state arriving from outside (an all-reduce, a file, another process) is checked before it reaches
     * the kernels, which trust it: corrupted counts would index outside the tables or give NaN results.
     * Counts are >= 0; no pair set holds more pairs than its samples allow; each range is either empty
     * ({@code +inf, -inf}, as before any pair) or finite and ordered, and finite whenever pairs were
     * counted (except with a fixed range, which leaves them empty); in phase 2 the phase-1 parts equal this accumulator's (only the histogram is reduced) and
     * no table holds more counts than its pairs.
     */
    private void checkState(State state, String name, long stream) {
        long samples = state.counts[0];
        if (samples < 0) {
            throw new IllegalArgumentException(name + ": counts[0] (samples observed) is " + samples + " < 0");
        }
        if (state.counts[1] < 0) {
            throw new IllegalArgumentException(name + ": counts[1] (non-finite input values) is " + state.counts[1] + " < 0");
        }
        if (maxPairsPerSample > 0 && samples > Long.MAX_VALUE / maxPairsPerSample) {
            throw new IllegalArgumentException(name + ": counts[0] = " + samples + " samples of " + maxPairsPerSample
                    + " pairs overflow a 64-bit count");
        }
        long[] perSample = SpatialDependence.pairsPerSample(height, width, options);
        int d = displacements;
        for (int c = 0; c < channels; c++) {
            for (int u = 0; u < d; u++) {
                int i = c * d + u;
                long pairs = state.counts[2 + i];
                long most = samples * perSample[u];
                if (pairs < 0 || pairs > most) {
                    throw new IllegalArgumentException(name + ": counts[" + (2 + i) + "] (pairs of channel " + c
                            + ", displacement " + u + ") is " + pairs + ", expected 0.." + most + " for " + samples + " samples");
                }
                for (int side = 0; side < 2; side++) {
                    int r = 2 * i + side;
                    float lo = state.minima[r], hi = state.maxima[r];
                    boolean empty = lo == Float.POSITIVE_INFINITY && hi == Float.NEGATIVE_INFINITY;
                    boolean finite = Float.isFinite(lo) && Float.isFinite(hi) && lo <= hi;
                    // A fixed range never reads these (they stay empty), so there pairs need no range.
                    boolean fixed = options.rangeMode() == RangeMode.FIXED;
                    if (!(finite || (empty && (pairs == 0 || fixed)))) {
                        throw new IllegalArgumentException(name + ": minima[" + r + "], maxima[" + r + "] = [" + lo + ", "
                                + hi + "] (channel " + c + ", displacement " + u + ", " + (side == 0 ? "P" : "Q") + ") is "
                                + (pairs == 0 ? "neither empty (+inf, -inf) nor" : "not") + " a finite ordered range");
                    }
                }
            }
        }
        if (state.phase != Phase.BINNING) {
            return;
        }
        State mine = exportPhaseOne(stream);
        if (!Arrays.equals(mine.counts, state.counts) || !Arrays.equals(mine.minima, state.minima)
                || !Arrays.equals(mine.maxima, state.maxima)) {
            throw new IllegalArgumentException(name + ": its phase-1 counts and ranges differ from this accumulator's;"
                    + " in phase 2 only the histogram is reduced (reduce phase 1 before beginBinning())");
        }
        long cells = (long) tableBins * tableBins;
        for (int i = 0; i < channels * d; i++) {
            long sum = 0;
            for (long j = i * cells; j < (i + 1) * cells; j++) {
                long v = state.histogram[(int) j];
                if (v < 0) {
                    throw new IllegalArgumentException(name + ": histogram[" + j + "] is " + v + " < 0");
                }
                sum += v; // a wrap to negative is caught below with the excess
                if (sum < 0 || sum > state.counts[2 + i]) {
                    throw new IllegalArgumentException(name + ": the table of channel " + i / d + ", displacement " + i % d
                            + " holds more counts than its " + state.counts[2 + i] + " pairs");
                }
            }
        }
    }

    /** The phase-1 parts of this accumulator's state (no histogram). */
    private State exportPhaseOne(long stream) {
        int cd = channels * displacements;
        long[] counts = new long[2 + cd];
        counts[0] = samples;
        counts[1] = download(nonfinite, 1, stream)[0];
        System.arraycopy(download(pairCount, cd, stream), 0, counts, 2, cd);
        float[] r = downloadFloats(ranges, cd * 4L, stream);
        float[] minima = new float[2 * cd];
        float[] maxima = new float[2 * cd];
        for (int i = 0; i < cd; i++) {
            minima[2 * i] = r[4 * i];
            maxima[2 * i] = r[4 * i + 1];
            minima[2 * i + 1] = r[4 * i + 2];
            maxima[2 * i + 1] = r[4 * i + 3];
        }
        return new State(channels, height, width, options, phase, tableBins, counts, minima, maxima, null);
    }

    private void load(State state, long stream) {
        int cd = channels * displacements;
        float[] r = new float[4 * cd];
        for (int i = 0; i < cd; i++) {
            r[4 * i] = state.minima[2 * i];
            r[4 * i + 1] = state.maxima[2 * i];
            r[4 * i + 2] = state.minima[2 * i + 1];
            r[4 * i + 3] = state.maxima[2 * i + 1];
        }
        upload(Memory.of(Arrays.copyOfRange(state.counts, 2, 2 + cd)), pairCount, stream);
        upload(Memory.of(new long[] {state.counts[1]}), nonfinite, stream);
        upload(Memory.of(r), ranges, stream);
        if (phase == Phase.BINNING) {
            upload(Memory.of(state.histogram), hist, stream);
        }
        samples = state.counts[0];
    }

    /** Empty phase-1 state: no pairs, no non-finite values, ranges {+inf, -inf, +inf, -inf}. */
    private void clearStatistics(long stream) {
        zero(pairCount, pairCount.length(), stream);
        zero(nonfinite, 1, stream);
        float[] r = new float[Math.toIntExact(ranges.length())];
        for (int i = 0; i < r.length; i += 2) {
            r[i] = Float.POSITIVE_INFINITY;
            r[i + 1] = Float.NEGATIVE_INFINITY;
        }
        upload(Memory.of(r), ranges, stream);
        samples = 0;
    }

    private OwnedBuffer allocate(DType dtype, long length) {
        return cuda != null ? DeviceBuffer.allocate(cuda, dtype, length) : HostBuffer.allocate(dtype, length);
    }

    private void zero(OwnedBuffer buffer, long length, long stream) {
        long bytes = length * buffer.dtype().bytes();
        if (cuda != null) {
            try (CudaBackend.Current on = cuda.activate()) {
                Natives.check(CudaNative.gs_cuda_memset(buffer.address(), 0, bytes, stream));
            }
        } else {
            Pointer.memset(HostBuffer.rawPointer(buffer.address(), bytes), 0, bytes);
        }
    }

    /** Copies a host array into the start of {@code buffer}, ordered on {@code stream}; returns when done. */
    private void upload(Memory array, OwnedBuffer buffer, long stream) {
        if (cuda != null) {
            cuda.copy(buffer.memory().slice(0, array.length()), array, stream);
        } else {
            HostCopy.arrayToNative(array, buffer.address());
        }
    }

    private long[] download(OwnedBuffer buffer, int length, long stream) {
        long[] out = new long[length];
        copyOut(buffer, Memory.of(out), stream);
        return out;
    }

    private float[] downloadFloats(OwnedBuffer buffer, long length, long stream) {
        float[] out = new float[Math.toIntExact(length)];
        copyOut(buffer, Memory.of(out), stream);
        return out;
    }

    private void copyOut(OwnedBuffer buffer, Memory array, long stream) {
        if (cuda != null) {
            cuda.copy(array, buffer.memory().slice(0, array.length()), stream);
        } else {
            HostCopy.nativeToArray(buffer.address(), array);
        }
    }

    private static void checkFinite(String name, long nonfiniteValues) {
        if (nonfiniteValues > 0) {
            throw new GradshapeException(Status.NONFINITE_INPUT, name + ": " + nonfiniteValues
                    + " non-finite values (NaN or infinity) in the feature maps; spatial dependence needs finite input");
        }
    }

    private static void checkPositive(String name, int value) {
        if (value < 1) {
            throw new IllegalArgumentException(name + ": expected >= 1, got " + value);
        }
    }
}
