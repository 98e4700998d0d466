package io.gradshape;

import java.util.Arrays;
import java.util.Objects;

/**
 * Spatial dependence (SGS, SPEC.md section 1): for the input feature map of one convolution, the
 * normalised mutual information (NMI) between every pixel and its neighbour at each offset of the
 * kernel window, per channel; the spatial-dependence matrix {@code S} (NMI through {@code T_k},
 * averaged over channels); and the gradient scale {@code G = S / mean(S)} that a scaled SGD step
 * multiplies into the kernel's gradient.
 *
 * <pre>{@code
 * SpatialDependence.Options options = SpatialDependence.Options.defaults().kernel(3, 3).padding(1, 1);
 * SpatialDependence.Result r = SpatialDependence.compute(Backends.auto(), Memory.of(x), 32, 64, 56, 56, options);
 * float[] g = r.g(); // 3 x 3, mean 1
 * }</pre>
 *
 * For several batches or several data-parallel ranks, use a {@link SpatialDependenceAccumulator}; this
 * class is its one-batch shortcut. The default options reproduce the reference code.
 */
public final class SpatialDependence {
    private SpatialDependence() {}

    /** Which values span the bins of one (channel, displacement) table. */
    public enum RangeMode {
        /** Reference: P and Q each from min to max of their own pair set (two passes over the data). */
        PAIRS,
        /** One range per channel, min to max over the whole padded channel: one pass. */
        CHANNEL,
        /** The caller's {@code [lo, hi]}, values outside dropped: one pass. */
        FIXED
    }

    /** Where {@code T_k} is applied. */
    public enum Order {
        /** Reference code: {@code T_k} per channel, then the NaN-mean over channels. */
        REFERENCE,
        /** Paper: NaN-mean of the raw NMI over channels, then {@code T_k}. */
        PAPER
    }

    /** Memory layout of the input feature map. */
    public enum Layout { NCHW, NHWC }

    /** Largest fixed number of bins per axis. */
    public static final int MAX_BINS = 256;

    /**
     * Largest kernel size per axis. Far above any convolution trained today (large-kernel nets use up to
     * 51); it keeps the per-channel state ({@code (kh kw - 1) / 2} displacements) and the result arrays of
     * sane size, so that a mistyped size is refused instead of allocating gigabytes.
     */
    public static final int MAX_KERNEL = 1023;

    /**
     * Smallest {@code k} of {@code T_k}. Below it {@code T_k(s) = k s / ((k - 1) s + 1)} loses its
     * accuracy in float64 near {@code s = 1} (the denominator cancels to about {@code k}), and at
     * {@code k <= 1.1e-16} it divides by zero.
     */
    public static final float MIN_K = 1e-6f;

    /**
     * How the dependence is computed: immutable, every setter returns a copy. {@link #defaults()} is
     * the reference mode with a 3 x 3 kernel and padding 1: Sturges bins, {@link RangeMode#PAIRS},
     * zeros kept, {@code k = 5}, {@link Order#REFERENCE}, {@link Layout#NCHW}.
     */
    public static final class Options {
        private final int kernelH, kernelW, padH, padW, bins;
        private final RangeMode rangeMode;
        private final float rangeLo, rangeHi;
        private final boolean removeZeros;
        private final float k;
        private final Order order;
        private final Layout layout;

        private Options(int kernelH, int kernelW, int padH, int padW, int bins, RangeMode rangeMode, float rangeLo,
                float rangeHi, boolean removeZeros, float k, Order order, Layout layout) {
            this.kernelH = kernelH;
            this.kernelW = kernelW;
            this.padH = padH;
            this.padW = padW;
            this.bins = bins;
            this.rangeMode = rangeMode;
            this.rangeLo = rangeLo;
            this.rangeHi = rangeHi;
            this.removeZeros = removeZeros;
            this.k = k;
            this.order = order;
            this.layout = layout;
        }

        /** The reference mode for a 3 x 3 convolution with padding 1. */
        public static Options defaults() {
            return new Options(3, 3, 1, 1, 0, RangeMode.PAIRS, 0f, 0f, false, 5f, Order.REFERENCE, Layout.NCHW);
        }

        /** The convolution's kernel size: both odd, in 3..{@link #MAX_KERNEL} (smaller kernels get no scaling). */
        public Options kernel(int kernelH, int kernelW) {
            checkKernel("kernelH", kernelH);
            checkKernel("kernelW", kernelW);
            return new Options(kernelH, kernelW, padH, padW, bins, rangeMode, rangeLo, rangeHi, removeZeros, k, order, layout);
        }

        /** The convolution's zero padding, >= 0 on each axis. */
        public Options padding(int padH, int padW) {
            if (padH < 0) {
                throw new IllegalArgumentException("padH: expected >= 0, got " + padH);
            }
            if (padW < 0) {
                throw new IllegalArgumentException("padW: expected >= 0, got " + padW);
            }
            return new Options(kernelH, kernelW, padH, padW, bins, rangeMode, rangeLo, rangeHi, removeZeros, k, order, layout);
        }

        /** Bins per axis: 0 = Sturges' rule on each pair set (reference), else 2..256. */
        public Options bins(int bins) {
            if (bins != 0 && (bins < 2 || bins > MAX_BINS)) {
                throw new IllegalArgumentException("bins: expected 0 (Sturges) or 2.." + MAX_BINS + ", got " + bins);
            }
            return new Options(kernelH, kernelW, padH, padW, bins, rangeMode, rangeLo, rangeHi, removeZeros, k, order, layout);
        }

        /** {@link RangeMode#PAIRS} or {@link RangeMode#CHANNEL}; a fixed range is set by {@link #fixedRange}. */
        public Options range(RangeMode mode) {
            Objects.requireNonNull(mode, "mode");
            if (mode == RangeMode.FIXED) {
                throw new IllegalArgumentException("mode: FIXED needs its bounds: use fixedRange(lo, hi)");
            }
            return new Options(kernelH, kernelW, padH, padW, bins, mode, 0f, 0f, removeZeros, k, order, layout);
        }

        /** Bins spanning {@code [lo, hi]} (both finite, lo < hi); values outside are dropped. */
        public Options fixedRange(float lo, float hi) {
            if (!Float.isFinite(lo)) {
                throw new IllegalArgumentException("lo: expected a finite value, got " + lo);
            }
            if (!Float.isFinite(hi) || !(lo < hi)) {
                throw new IllegalArgumentException("hi: expected a finite value > lo = " + lo + ", got " + hi);
            }
            return new Options(kernelH, kernelW, padH, padW, bins, RangeMode.FIXED, lo, hi, removeZeros, k, order, layout);
        }

        /** Drops pairs holding a zero and ignores the diagonal of each table (the reference on ImageNet). */
        public Options removeZeros(boolean removeZeros) {
            return new Options(kernelH, kernelW, padH, padW, bins, rangeMode, rangeLo, rangeHi, removeZeros, k, order, layout);
        }

        /**
         * The strength of {@code T_k(s) = k s / ((k - 1) s + 1)}: finite and >= {@link #MIN_K} (1 = identity,
         * default 5).
         */
        public Options k(float k) {
            if (!Float.isFinite(k) || !(k >= MIN_K)) {
                throw new IllegalArgumentException("k: expected a finite value >= " + MIN_K + ", got " + k);
            }
            return new Options(kernelH, kernelW, padH, padW, bins, rangeMode, rangeLo, rangeHi, removeZeros, k, order, layout);
        }

        public Options order(Order order) {
            Objects.requireNonNull(order, "order");
            return new Options(kernelH, kernelW, padH, padW, bins, rangeMode, rangeLo, rangeHi, removeZeros, k, order, layout);
        }

        public Options layout(Layout layout) {
            Objects.requireNonNull(layout, "layout");
            return new Options(kernelH, kernelW, padH, padW, bins, rangeMode, rangeLo, rangeHi, removeZeros, k, order, layout);
        }

        public int kernelH() {
            return kernelH;
        }

        public int kernelW() {
            return kernelW;
        }

        public int padH() {
            return padH;
        }

        public int padW() {
            return padW;
        }

        /** 0 for Sturges. */
        public int bins() {
            return bins;
        }

        public RangeMode rangeMode() {
            return rangeMode;
        }

        /** The lower bound of a {@link RangeMode#FIXED} range (0 otherwise). */
        public float rangeLo() {
            return rangeLo;
        }

        /** The upper bound of a {@link RangeMode#FIXED} range (0 otherwise). */
        public float rangeHi() {
            return rangeHi;
        }

        public boolean removeZeros() {
            return removeZeros;
        }

        public float k() {
            return k;
        }

        public Order order() {
            return order;
        }

        public Layout layout() {
            return layout;
        }

        /** Displacements computed per channel: the first half of the window, {@code (kh kw - 1) / 2}. */
        public int displacements() {
            return (kernelH * kernelW - 1) / 2;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Options p && kernelH == p.kernelH && kernelW == p.kernelW && padH == p.padH
                    && padW == p.padW && bins == p.bins && rangeMode == p.rangeMode
                    && Float.compare(rangeLo, p.rangeLo) == 0 && Float.compare(rangeHi, p.rangeHi) == 0
                    && removeZeros == p.removeZeros && Float.compare(k, p.k) == 0 && order == p.order
                    && layout == p.layout;
        }

        @Override
        public int hashCode() {
            return Objects.hash(kernelH, kernelW, padH, padW, bins, rangeMode, rangeLo, rangeHi, removeZeros, k, order, layout);
        }

        @Override
        public String toString() {
            return "Options[kernel " + kernelH + "x" + kernelW + ", padding " + padH + "," + padW + ", bins "
                    + (bins == 0 ? "Sturges" : Integer.toString(bins)) + ", range "
                    + (rangeMode == RangeMode.FIXED ? "FIXED [" + rangeLo + ", " + rangeHi + "]" : rangeMode.name())
                    + (removeZeros ? ", zeros removed" : "") + ", k " + k + ", order " + order + ", " + layout + "]";
        }

        private static void checkKernel(String name, int size) {
            if (size < 3 || size % 2 == 0 || size > MAX_KERNEL) {
                throw new IllegalArgumentException(name + ": expected an odd size in 3.." + MAX_KERNEL + ", got " + size);
            }
        }
    }

    /** The per-channel NMI, {@code S} and {@code G} of one computation, on the host. */
    public static final class Result {
        private final int channels, kernelH, kernelW;
        private final float[] nmi, s, g;
        private final boolean gKeptPrevious;

        Result(int channels, int kernelH, int kernelW, float[] nmi, float[] s, float[] g, boolean gKeptPrevious) {
            this.channels = channels;
            this.kernelH = kernelH;
            this.kernelW = kernelW;
            this.nmi = nmi;
            this.s = s;
            this.g = g;
            this.gKeptPrevious = gKeptPrevious;
        }

        public int channels() {
            return channels;
        }

        public int kernelH() {
            return kernelH;
        }

        public int kernelW() {
            return kernelW;
        }

        /** Raw NMI (before {@code T_k}), {@code [channels][kernelH][kernelW]}, centre 1, NaN for dead channels. */
        public float[] nmi() {
            return nmi.clone();
        }

        /** Raw NMI of channel {@code c} at vertical offset {@code dy} and horizontal offset {@code dx}. */
        public float nmi(int c, int dy, int dx) {
            if (c < 0 || c >= channels) {
                throw new IllegalArgumentException("c: expected a channel in [0, " + channels + "), got " + c);
            }
            return nmi[c * kernelH * kernelW + index(dy, dx)];
        }

        /** The spatial-dependence matrix {@code [kernelH][kernelW]}. */
        public float[] s() {
            return s.clone();
        }

        /** The gradient scale {@code [kernelH][kernelW]}, mean 1. */
        public float[] g() {
            return g.clone();
        }

        public float s(int dy, int dx) {
            return s[index(dy, dx)];
        }

        public float g(int dy, int dx) {
            return g[index(dy, dx)];
        }

        /** Whether {@code G} came out non-finite and the previous one (or all ones) was kept instead. */
        public boolean gKeptPrevious() {
            return gKeptPrevious;
        }

        private int index(int dy, int dx) {
            int ry = (kernelH - 1) / 2, rx = (kernelW - 1) / 2;
            if (dy < -ry || dy > ry) {
                throw new IllegalArgumentException("dy: expected -" + ry + ".." + ry + " (a " + kernelH + "x" + kernelW
                        + " window), got " + dy);
            }
            if (dx < -rx || dx > rx) {
                throw new IllegalArgumentException("dx: expected -" + rx + ".." + rx + " (a " + kernelH + "x" + kernelW
                        + " window), got " + dx);
            }
            return (dy + ry) * kernelW + dx + rx;
        }

        @Override
        public String toString() {
            StringBuilder out = new StringBuilder();
            out.append("SpatialDependence.Result[").append(channels).append(" channels, ").append(kernelH).append('x')
                    .append(kernelW).append(gKeptPrevious ? ", G kept previous" : "").append("]\n");
            matrix(out, "S", s);
            matrix(out, "G", g);
            return out.toString();
        }

        private void matrix(StringBuilder out, String name, float[] m) {
            for (int i = 0; i < kernelH; i++) {
                out.append(i == 0 ? name + " = " : "    ");
                for (int j = 0; j < kernelW; j++) {
                    out.append(String.format(" %8.5f", m[i * kernelW + j]));
                }
                out.append('\n');
            }
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Result r && channels == r.channels && kernelH == r.kernelH && kernelW == r.kernelW
                    && gKeptPrevious == r.gKeptPrevious && Arrays.equals(nmi, r.nmi) && Arrays.equals(s, r.s)
                    && Arrays.equals(g, r.g);
        }

        @Override
        public int hashCode() {
            return Objects.hash(channels, kernelH, kernelW, gKeptPrevious, Arrays.hashCode(nmi), Arrays.hashCode(s),
                    Arrays.hashCode(g));
        }
    }

    /**
     * Computes the dependence of one input feature map {@code input}: FLOAT32, {@code batch x channels x
     * height x width} (or NHWC, per the options), unpadded. Equivalent to an accumulator that observes
     * and bins this one batch. Blocks until the result is on the host.
     *
     * @throws GradshapeException with {@link Status#NONFINITE_INPUT} when the input holds NaN or infinity
     */
    public static Result compute(Backend backend, Memory input, int batch, int channels, int height, int width,
            Options options) {
        return compute(backend, input, batch, channels, height, width, options, Streams.DEFAULT);
    }

    /** As {@link #compute(Backend, Memory, int, int, int, int, Options)}, queued after the work on {@code stream}. */
    public static Result compute(Backend backend, Memory input, int batch, int channels, int height, int width,
            Options options, long stream) {
        Objects.requireNonNull(backend, "backend");
        Objects.requireNonNull(options, "options");
        // Everything is validated before the accumulator allocates its state: a wrong input length must
        // not cost an allocation sized by the (possibly absurd) channel count first.
        SpatialDependenceAccumulator.checkShape(channels, height, width, options);
        SpatialDependenceAccumulator.checkBatch(input, batch, channels, height, width, "input", "batch");
        try (SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(backend, channels, height, width, options)) {
            // Staged once for both passes: a Java array is copied to native (or device) memory one time.
            try (Staged in = Staged.in(backend, input, "input", stream)) {
                Memory view = in.inPlace() ? input : acc.view(in.address(), input.length());
                acc.observeChecked(view, batch, stream, "input");
                acc.beginBinning(stream);
                acc.binChecked(view, batch, stream, "input");
            }
            return acc.finish(null, stream);
        }
    }

    /** Convenience for a Java array input. */
    public static Result compute(Backend backend, float[] input, int batch, int channels, int height, int width,
            Options options) {
        return compute(backend, Memory.of(Objects.requireNonNull(input, "input")), batch, channels, height, width, options);
    }

    /**
     * Pairs per channel over the computed displacements, before zero removal:
     * {@code sum over the first half of the window of batch (Hp - |dy|)(Wp - |dx|)}, the work unit of the
     * throughput figures (pairs/s).
     */
    public static long pairsPerChannel(int batch, int height, int width, Options options) {
        Objects.requireNonNull(options, "options");
        if (batch < 1) {
            throw new IllegalArgumentException("batch: expected >= 1, got " + batch);
        }
        SpatialDependenceAccumulator.checkShape(1, height, width, options);
        long total = 0;
        for (long p : pairsPerSample(height, width, options)) {
            total += p;
        }
        // total < 2^31 pairs per displacement x 2^19 displacements, times batch < 2^31: below 2^81, so check.
        if (total > Long.MAX_VALUE / batch) {
            throw new IllegalArgumentException("batch: " + batch + " samples of " + total + " pairs exceed 2^63 - 1 pairs");
        }
        return total * batch;
    }

    /** Pairs of one sample per computed displacement. */
    static long[] pairsPerSample(int height, int width, Options options) {
        int d = options.displacements();
        long hp = height + 2L * options.padH(), wp = width + 2L * options.padW();
        int ry = (options.kernelH() - 1) / 2, rx = (options.kernelW() - 1) / 2;
        long[] pairs = new long[d];
        for (int u = 0; u < d; u++) {
            int dy = u / options.kernelW() - ry, dx = u % options.kernelW() - rx;
            pairs[u] = Math.max(0, hp - Math.abs(dy)) * Math.max(0, wp - Math.abs(dx));
        }
        return pairs;
    }

    /** Smallest k with 2^k >= n (0 for n <= 1). */
    static int ceilLog2(long n) {
        return n <= 1 ? 0 : 64 - Long.numberOfLeadingZeros(n - 1);
    }
}
