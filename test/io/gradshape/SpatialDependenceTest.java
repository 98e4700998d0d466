package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.gradshape.SpatialDependence.Layout;
import io.gradshape.SpatialDependence.Options;
import io.gradshape.SpatialDependence.Order;
import io.gradshape.SpatialDependence.RangeMode;
import io.gradshape.SpatialDependence.Result;
import io.gradshape.SpatialDependenceAccumulator.Phase;
import io.gradshape.SpatialDependenceAccumulator.State;
import io.gradshape.TestBackends.TestBackend;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class SpatialDependenceTest {
    private static final double TOL = 1e-6;
    private static final Options REF = Options.defaults();

    static Stream<TestBackend> backends() {
        return TestBackends.all().stream();
    }

    // ---- inputs -------------------------------------------------------------------------------------

    static float[] gaussian(long seed, int n) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }

    /** Spatially correlated, ReLU-like: smoothed noise with about half the values exactly zero. */
    static float[] reluMaps(long seed, int batch, int channels, int height, int width) {
        float[] noise = gaussian(seed, batch * channels * height * width);
        float[] x = new float[noise.length];
        for (int p = 0; p < batch * channels; p++) {
            int base = p * height * width;
            for (int i = 0; i < height; i++) {
                for (int j = 0; j < width; j++) {
                    float sum = 0;
                    for (int a = -1; a <= 1; a++) {
                        for (int b = -1; b <= 1; b++) {
                            int y = Math.min(height - 1, Math.max(0, i + a)), z = Math.min(width - 1, Math.max(0, j + b));
                            sum += noise[base + y * width + z];
                        }
                    }
                    x[base + i * width + j] = Math.max(0f, sum / 3);
                }
            }
        }
        return x;
    }

    static float[] toNhwc(float[] x, int batch, int channels, int height, int width) {
        float[] y = new float[x.length];
        for (int n = 0; n < batch; n++) {
            for (int c = 0; c < channels; c++) {
                for (int i = 0; i < height; i++) {
                    for (int j = 0; j < width; j++) {
                        y[((n * height + i) * width + j) * channels + c] = x[((n * channels + c) * height + i) * width + j];
                    }
                }
            }
        }
        return y;
    }

    // ---- the comparison -----------------------------------------------------------------------------

    /** Runs the accumulator on one batch, compares every output with the oracle; returns the result. */
    static Result checkAgainstOracle(String label, Backend backend, float[] x, int batch, int channels, int height,
            int width, Options o, float[] previousG) {
        String what = label + " on " + backend.kind() + " (" + batch + "x" + channels + "x" + height + "x" + width
                + ", " + o + ")";
        SpatialDependenceOracle.Output ref = SpatialDependenceOracle.compute(x, batch, channels, height, width, o, previousG);
        Result result;
        State state;
        try (SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(backend, channels, height, width, o)) {
            acc.observe(Memory.of(x), batch);
            acc.beginBinning();
            acc.bin(Memory.of(x), batch);
            state = acc.exportState();
            result = acc.finish(previousG);
        }
        int d = o.displacements();
        int tb = state.tableBins();
        assertEquals(batch, state.samples(), what + ": samples");
        assertEquals(0, state.counts()[1], what + ": non-finite count");
        for (int c = 0; c < channels; c++) {
            for (int u = 0; u < d; u++) {
                int cu = c * d + u;
                String at = what + ": channel " + c + ", displacement " + u;
                assertEquals(ref.pairCount[cu], state.pairCount(c, u), at + ": pair count");
                if (o.rangeMode() != RangeMode.FIXED) {
                    assertEquals(ref.minP[cu], state.minima()[2 * cu], at + ": min P");
                    assertEquals(ref.minQ[cu], state.minima()[2 * cu + 1], at + ": min Q");
                    assertEquals(ref.maxP[cu], state.maxima()[2 * cu], at + ": max P");
                    assertEquals(ref.maxQ[cu], state.maxima()[2 * cu + 1], at + ": max Q");
                }
                int bins = ref.bins[cu];
                if (ref.pairCount[cu] > 0 && bins > tb) {
                    fail(at + ": " + bins + " bins exceed the table's " + tb);
                }
                long[] table = ref.table[cu];
                for (int i = 0; i < tb; i++) {
                    for (int j = 0; j < tb; j++) {
                        long expected = ref.pairCount[cu] > 0 && i < bins && j < bins ? table[i * bins + j] : 0;
                        long actual = state.histogram()[(int) ((long) cu * tb * tb + (long) i * tb + j)];
                        if (expected != actual) {
                            fail(at + ": histogram cell [" + i + "][" + j + "] = " + actual + ", expected " + expected);
                        }
                    }
                }
            }
        }
        assertClose(what + ": nmi", ref.nmi, result.nmi());
        assertClose(what + ": S", ref.s, result.s());
        assertClose(what + ": G", ref.g, result.g());
        assertEquals(ref.gKeptPrevious, result.gKeptPrevious(), what + ": gKeptPrevious");
        if (previousG == null) { // the one-call shortcut computes the same thing
            assertEquals(result, SpatialDependence.compute(backend, x, batch, channels, height, width, o), what + ": compute()");
        }
        return result;
    }

    static void assertClose(String what, double[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i], a = actual[i];
            if (Double.isNaN(e) || Double.isNaN(a)) {
                if (Double.isNaN(e) != Double.isNaN(a)) {
                    fail(what + "[" + i + "] = " + a + ", expected " + e);
                }
                continue;
            }
            if (Math.abs(a - e) > TOL + TOL * Math.abs(e)) {
                fail(what + "[" + i + "] = " + a + ", expected " + e + " (diff " + Math.abs(a - e) + ")");
            }
        }
    }

    // ---- parity with the oracle ---------------------------------------------------------------------

    static Stream<Arguments> cases() {
        return Stream.of(
                // label, batch, channels, height, width, options
                Arguments.of("reference 3x3", 2, 3, 9, 11, REF),
                Arguments.of("reference 5x5 pad 2", 2, 2, 8, 7, REF.kernel(5, 5).padding(2, 2)),
                Arguments.of("reference 7x7 pad 3", 1, 2, 10, 9, REF.kernel(7, 7).padding(3, 3)),
                Arguments.of("non-square 3x5", 2, 2, 7, 9, REF.kernel(3, 5).padding(1, 2)),
                Arguments.of("non-square 5x3 pad 0", 3, 2, 6, 5, REF.kernel(5, 3).padding(0, 0)),
                Arguments.of("non-square 7x5 pad (1, 4)", 2, 2, 5, 6, REF.kernel(7, 5).padding(1, 4)),
                Arguments.of("9x3 wider than padding", 1, 2, 12, 4, REF.kernel(9, 3).padding(0, 1)),
                Arguments.of("one sample", 1, 1, 5, 5, REF),
                Arguments.of("1x1 map, 5x5 pad 0", 2, 2, 1, 1, REF.kernel(5, 5).padding(0, 0)),
                Arguments.of("1x1 map, 5x5 pad 1", 2, 2, 1, 1, REF.kernel(5, 5).padding(1, 1)),
                Arguments.of("2x2 map, 7x5 pad 0", 3, 2, 2, 2, REF.kernel(7, 5).padding(0, 0)),
                Arguments.of("2x2 map, 7x5 pad 2", 3, 2, 2, 2, REF.kernel(7, 5).padding(2, 2)),
                Arguments.of("fixed 64 bins, channel range", 2, 3, 9, 10, REF.bins(64).range(RangeMode.CHANNEL)),
                Arguments.of("fixed 256 bins", 2, 2, 12, 13, REF.bins(256)),
                Arguments.of("256 bins, channel range", 2, 2, 12, 13, REF.bins(256).range(RangeMode.CHANNEL)),
                Arguments.of("2 bins", 2, 2, 6, 6, REF.bins(2)),
                Arguments.of("Sturges, channel range", 2, 2, 8, 9, REF.range(RangeMode.CHANNEL)),
                Arguments.of("fixed range, values outside", 2, 2, 9, 8, REF.bins(16).fixedRange(-1f, 1.5f)),
                Arguments.of("fixed range, Sturges", 2, 2, 9, 8, REF.fixedRange(-0.5f, 0.5f)),
                Arguments.of("paper order", 2, 3, 8, 8, REF.order(Order.PAPER)),
                Arguments.of("k = 1", 2, 2, 8, 8, REF.k(1f)),
                Arguments.of("k = 2.5, paper", 2, 2, 8, 8, REF.k(2.5f).order(Order.PAPER)),
                Arguments.of("NHWC", 2, 3, 7, 6, REF.layout(Layout.NHWC)),
                Arguments.of("NHWC 3x5, 32 bins, channel range", 2, 5, 6, 7,
                        REF.kernel(3, 5).padding(1, 2).layout(Layout.NHWC).bins(32).range(RangeMode.CHANNEL)));
    }

    static Stream<Arguments> backendsAndCases() {
        return backends().flatMap(b -> cases().map(a -> {
            Object[] v = a.get();
            return Arguments.of(b, v[0], v[1], v[2], v[3], v[4], v[5]);
        }));
    }

    @ParameterizedTest(name = "{1} on {0}")
    @MethodSource("backendsAndCases")
    void gaussianInputsMatchTheOracle(TestBackend testBackend, String label, int batch, int channels, int height,
            int width, Options o) {
        Backend backend = testBackend.get();
        long seed = 1000 + label.hashCode();
        float[] x = gaussian(seed, batch * channels * height * width);
        checkAgainstOracle(label + ", seed " + seed, backend, x, batch, channels, height, width, o, null);
    }

    @ParameterizedTest(name = "{1} on {0}")
    @MethodSource("backendsAndCases")
    void sparseReluInputsWithZeroRemovalMatchTheOracle(TestBackend testBackend, String label, int batch, int channels,
            int height, int width, Options o) {
        Backend backend = testBackend.get();
        long seed = 2000 + label.hashCode();
        float[] x = reluMaps(seed, batch, channels, height, width);
        if (o.layout() == Layout.NHWC) {
            x = toNhwc(x, batch, channels, height, width);
        }
        checkAgainstOracle(label + " + zeros removed, seed " + seed, backend, x, batch, channels, height, width,
                o.removeZeros(true), null);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void constantAndDeadChannels(TestBackend testBackend) {
        Backend backend = testBackend.get();
        int batch = 2, channels = 3, h = 6, w = 7;
        float[] x = gaussian(7, batch * channels * h * w);
        for (int n = 0; n < batch; n++) {
            for (int p = 0; p < h * w; p++) {
                x[(n * channels) * h * w + p] = 3.25f;     // constant channel 0
                x[(n * channels + 1) * h * w + p] = 0f;    // dead channel 1
            }
        }
        Options noPad = REF.padding(0, 0);
        Result r = checkAgainstOracle("constant / dead, pad 0", backend, x, batch, channels, h, w, noPad, null);
        for (int c = 0; c < 2; c++) {
            assertTrue(Float.isNaN(r.nmi(c, 0, 1)), "channel " + c + " NMI should be NaN");
        }
        assertFalse(Float.isNaN(r.nmi(2, 0, 1)));
        // NaN channels are skipped in the mean: S is the live channel's.
        assertEquals(SpatialDependenceOracle.transform(r.nmi(2, 1, 0), 5), r.s(1, 0), 1e-6);
        checkAgainstOracle("constant / dead, pad 1", backend, x, batch, channels, h, w, REF, null);
        Result zr = checkAgainstOracle("constant / dead, zeros removed", backend, x, batch, channels, h, w,
                REF.removeZeros(true), null);
        assertEquals(0f, zr.nmi(1, 1, 1 - 1), "a dead channel with zero removal gives 0");
    }

    @ParameterizedTest
    @MethodSource("backends")
    void noPairsAnywhereKeepsThePreviousG(TestBackend testBackend) {
        Backend backend = testBackend.get();
        float[] x = gaussian(11, 2 * 2);
        float[] previous = new float[9];
        for (int i = 0; i < 9; i++) {
            previous[i] = 0.5f + i * 0.125f;
        }
        Result r = checkAgainstOracle("1x1 map, 3x3 pad 0", backend, x, 2, 2, 1, 1, REF.padding(0, 0), previous);
        assertTrue(r.gKeptPrevious());
        assertArrayEquals(previous, r.g());
        Result ones = checkAgainstOracle("1x1 map, no previous", backend, x, 2, 2, 1, 1, REF.padding(0, 0), null);
        float[] expected = new float[9];
        Arrays.fill(expected, 1f);
        assertArrayEquals(expected, ones.g());
    }

    @ParameterizedTest
    @MethodSource("backends")
    void largeValuesDropTheMaximumLikeTheReference(TestBackend testBackend) {
        Backend backend = testBackend.get();
        int batch = 2, channels = 2, h = 7, w = 6;
        float[] x = gaussian(13, batch * channels * h * w);
        for (int i = 0; i < x.length; i++) {
            x[i] = 20000f + 3000f * x[i];
        }
        // (double) max + 1e-12 == max for max >= 16384: the maximum falls outside [lo, hi).
        assertEquals(25000.0, (double) 25000f + 1e-12);
        checkAgainstOracle("values >= 16384, pad 0", backend, x, batch, channels, h, w, REF.padding(0, 0), null);
        checkAgainstOracle("values >= 16384, channel range", backend, x, batch, channels, h, w,
                REF.range(RangeMode.CHANNEL).bins(16), null);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void nhwcEqualsNchwOnTheTransposedInput(TestBackend testBackend) {
        Backend backend = testBackend.get();
        int batch = 3, channels = 4, h = 9, w = 7;
        float[] x = reluMaps(17, batch, channels, h, w);
        float[] y = toNhwc(x, batch, channels, h, w);
        for (Options o : List.of(REF, REF.kernel(5, 3).padding(2, 1).bins(48).range(RangeMode.CHANNEL).removeZeros(true))) {
            Result nchw = SpatialDependence.compute(backend, x, batch, channels, h, w, o);
            Result nhwc = SpatialDependence.compute(backend, y, batch, channels, h, w, o.layout(Layout.NHWC));
            assertEquals(nchw, nhwc, o.toString());
        }
    }

    // ---- accumulation, merging ----------------------------------------------------------------------

    static Stream<Arguments> backendsAndModes() {
        List<Options> modes = List.of(REF, REF.removeZeros(true), REF.bins(64).range(RangeMode.CHANNEL),
                REF.kernel(5, 3).padding(2, 1).range(RangeMode.CHANNEL).removeZeros(true), REF.fixedRange(-1, 1));
        return backends().flatMap(b -> modes.stream().map(o -> Arguments.of(b, o)));
    }

    @ParameterizedTest(name = "{1} on {0}")
    @MethodSource("backendsAndModes")
    void splitBatchesMergedAcrossAccumulatorsEqualOnePass(TestBackend testBackend, Options o) {
        Backend backend = testBackend.get();
        int batch = 5, channels = 3, h = 10, w = 9, sample = channels * h * w;
        float[] x = reluMaps(19, batch, channels, h, w);
        Memory first = Memory.of(x, 0, 2 * sample), second = Memory.of(x, 2 * sample, 3 * sample);

        State whole;
        Result expected;
        try (SpatialDependenceAccumulator one = new SpatialDependenceAccumulator(backend, channels, h, w, o)) {
            one.observe(Memory.of(x), batch);
            one.beginBinning();
            one.bin(Memory.of(x), batch);
            whole = one.exportState();
            expected = one.finish();
        }
        assertEquals(expected, SpatialDependence.compute(backend, x, batch, channels, h, w, o));

        // One accumulator, two batches.
        try (SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(backend, channels, h, w, o)) {
            acc.observe(first, 2);
            acc.observe(second, 3);
            acc.beginBinning();
            acc.bin(second, 3);
            acc.bin(first, 2);
            assertStatesEqual(whole, acc.exportState());
            assertEquals(expected, acc.finish());
        }

        // Two "ranks", merged with mergeState.
        try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(backend, channels, h, w, o);
                SpatialDependenceAccumulator b = new SpatialDependenceAccumulator(backend, channels, h, w, o)) {
            a.observe(first, 2);
            b.observe(second, 3);
            State sa = a.exportState(), sb = b.exportState();
            a.mergeState(sb);
            b.mergeState(sa);
            assertEquals(5, a.samplesObserved());
            a.beginBinning();
            b.beginBinning();
            assertEquals(a.tableBins(), b.tableBins());
            a.bin(first, 2);
            b.bin(second, 3);
            a.mergeState(b.exportState());
            assertStatesEqual(whole, a.exportState());
            assertEquals(expected, a.finish());
        }

        // Two ranks, all-reduced in place on the exported arrays, then imported.
        try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(backend, channels, h, w, o);
                SpatialDependenceAccumulator b = new SpatialDependenceAccumulator(backend, channels, h, w, o)) {
            a.observe(first, 2);
            b.observe(second, 3);
            State sa = a.exportState(), sb = b.exportState();
            assertNull(sa.histogram());
            for (int i = 0; i < sa.counts().length; i++) {
                sa.counts()[i] += sb.counts()[i];
            }
            for (int i = 0; i < sa.minima().length; i++) {
                sa.minima()[i] = Math.min(sa.minima()[i], sb.minima()[i]);
                sa.maxima()[i] = Math.max(sa.maxima()[i], sb.maxima()[i]);
            }
            a.importState(sa);
            b.importState(sa);
            a.beginBinning();
            b.beginBinning();
            a.bin(first, 2);
            b.bin(second, 3);
            State ha = a.exportState(), hb = b.exportState();
            for (int i = 0; i < ha.histogram().length; i++) {
                ha.histogram()[i] += hb.histogram()[i];
            }
            b.importState(ha);
            assertStatesEqual(whole, b.exportState());
            assertEquals(expected, b.finish());
        }
    }

    static void assertStatesEqual(State expected, State actual) {
        assertEquals(expected.phase(), actual.phase());
        assertEquals(expected.tableBins(), actual.tableBins());
        assertArrayEquals(expected.counts(), actual.counts(), "counts");
        assertArrayEquals(expected.minima(), actual.minima(), "minima");
        assertArrayEquals(expected.maxima(), actual.maxima(), "maxima");
        assertArrayEquals(expected.histogram(), actual.histogram(), "histogram");
    }

    @ParameterizedTest
    @MethodSource("backends")
    void resetStartsANewRoundWithTheSameBuffers(TestBackend testBackend) {
        Backend backend = testBackend.get();
        int batch = 3, channels = 2, h = 8, w = 8;
        float[] x = gaussian(23, batch * channels * h * w);
        float[] y = reluMaps(29, batch, channels, h, w);
        try (SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(backend, channels, h, w, REF)) {
            for (float[] input : List.of(x, y, x)) {
                acc.observe(Memory.of(input), batch);
                acc.beginBinning();
                acc.bin(Memory.of(input), batch);
                assertEquals(SpatialDependence.compute(backend, input, batch, channels, h, w, REF), acc.finish());
                acc.reset();
                assertEquals(Phase.OBSERVING, acc.phase());
            }
        }
    }

    @Test
    void cpuThreadCountDoesNotChangeTheCounts() {
        int batch = 3, channels = 2, h = 11, w = 10;
        float[] x = reluMaps(31, batch, channels, h, w);
        Options o = REF.bins(32).range(RangeMode.CHANNEL);
        Result many = SpatialDependence.compute(Backends.cpu(), x, batch, channels, h, w, o);
        int before = Gradshape.cpuThreads();
        try {
            Gradshape.setCpuThreads(1);
            assertEquals(many, SpatialDependence.compute(Backends.cpu(), x, batch, channels, h, w, o));
            Gradshape.setCpuThreads(7);
            assertEquals(many, SpatialDependence.compute(Backends.cpu(), x, batch, channels, h, w, o));
        } finally {
            Gradshape.setCpuThreads(before);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void finishIntoMemoryMatchesTheHostResult(TestBackend testBackend) {
        Backend backend = testBackend.get();
        int batch = 2, channels = 3, h = 7, w = 7;
        float[] x = gaussian(37, batch * channels * h * w);
        Options o = REF.kernel(5, 5).padding(2, 2);
        try (SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(backend, channels, h, w, o)) {
            acc.observe(Memory.of(x), batch);
            acc.beginBinning();
            acc.bin(Memory.of(x), batch);
            Result r = acc.finish();
            float[] nmi = new float[channels * 25], s = new float[25], g = new float[25];
            int[] kept = {7};
            acc.finish(Memory.of(nmi), Memory.of(s), Memory.of(g), null, Memory.of(kept), Streams.DEFAULT);
            assertArrayEquals(r.nmi(), nmi);
            assertArrayEquals(r.s(), s);
            assertArrayEquals(r.g(), g);
            assertEquals(0, kept[0]);
        }
    }

    @Test
    void previousGMayBeTheOutputItself() {
        float[] x = gaussian(41, 2 * 2); // 1x1 maps, pad 0: no pairs, so G keeps the previous one
        Options o = REF.padding(0, 0);
        try (SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(Backends.cpu(), 2, 1, 1, o);
                HostBuffer g = HostBuffer.of(new float[] {1, 2, 3, 4, 5, 6, 7, 8, 9})) {
            acc.observe(Memory.of(x), 2);
            acc.beginBinning();
            acc.bin(Memory.of(x), 2);
            int[] kept = new int[1];
            acc.finish(Memory.of(new float[18]), Memory.of(new float[9]), g.memory(), g.memory(), Memory.of(kept),
                    Streams.DEFAULT);
            assertEquals(1, kept[0]);
            float[] out = new float[9];
            g.asByteBuffer().asFloatBuffer().get(out);
            assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6, 7, 8, 9}, out);
        }
    }

    @Test
    void resultPrintsSAndGAsMatrices() {
        Result r = SpatialDependence.compute(Backends.cpu(), gaussian(43, 2 * 2 * 6 * 6), 2, 2, 6, 6, REF);
        String text = r.toString();
        assertTrue(text.contains("S = ") && text.contains("G = "), text);
        assertEquals(1 + 3 + 3, text.split("\n").length, text);
        assertEquals(r.g()[4], r.g(0, 0));
        assertThrows(IllegalArgumentException.class, () -> r.g(2, 0));
    }

    // ---- errors -------------------------------------------------------------------------------------

    @ParameterizedTest
    @MethodSource("backends")
    void nonFiniteInputIsAnErrorNamingTheInput(TestBackend testBackend) {
        Backend backend = testBackend.get();
        float[] x = gaussian(47, 2 * 2 * 5 * 5);
        x[17] = Float.NaN;
        x[30] = Float.POSITIVE_INFINITY;
        GradshapeException e = assertThrows(GradshapeException.class,
                () -> SpatialDependence.compute(backend, x, 2, 2, 5, 5, REF));
        assertEquals(Status.NONFINITE_INPUT, e.status());
        assertTrue(e.getMessage().startsWith("input: 2 non-finite"), e.getMessage());
        try (SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(backend, 2, 5, 5, REF)) {
            GradshapeException a = assertThrows(GradshapeException.class, () -> {
                acc.observe(Memory.of(x), 2);
                acc.beginBinning();
                acc.bin(Memory.of(x), 2);
                acc.finish();
            });
            assertTrue(a.getMessage().startsWith("batch: 2 non-finite"), a.getMessage());
        }
    }

    @Test
    void optionsAreValidatedNamingTheArgument() {
        expectIllegal("kernelH", () -> REF.kernel(4, 3));
        expectIllegal("kernelW", () -> REF.kernel(3, 1));
        expectIllegal("kernelH", () -> REF.kernel(1, 3));
        expectIllegal("padH", () -> REF.padding(-1, 0));
        expectIllegal("padW", () -> REF.padding(0, -2));
        expectIllegal("bins", () -> REF.bins(1));
        expectIllegal("bins", () -> REF.bins(257));
        expectIllegal("bins", () -> REF.bins(-3));
        expectIllegal("hi", () -> REF.fixedRange(1f, 1f));
        expectIllegal("hi", () -> REF.fixedRange(2f, 1f));
        expectIllegal("lo", () -> REF.fixedRange(Float.NaN, 1f));
        expectIllegal("hi", () -> REF.fixedRange(0f, Float.POSITIVE_INFINITY));
        expectIllegal("mode", () -> REF.range(RangeMode.FIXED));
        expectIllegal("k", () -> REF.k(Float.NaN));
        expectIllegal("k", () -> REF.k(Float.POSITIVE_INFINITY));
        expectIllegal("k", () -> REF.k(0f));
        assertThrows(NullPointerException.class, () -> REF.order(null));
        assertEquals(REF.bins(256).bins(), 256);
        assertEquals(REF.kernel(7, 3), Options.defaults().kernel(7, 3));
    }

    @ParameterizedTest
    @MethodSource("backends")
    void shapesAndBuffersAreValidatedNamingTheArgument(TestBackend testBackend) {
        Backend backend = testBackend.get();
        float[] x = new float[2 * 3 * 4 * 5];
        expectIllegal("batch", () -> SpatialDependence.compute(backend, x, 0, 3, 4, 5, REF));
        expectIllegal("channels", () -> SpatialDependence.compute(backend, x, 2, 0, 4, 5, REF));
        expectIllegal("height", () -> SpatialDependence.compute(backend, x, 2, 3, 0, 5, REF));
        expectIllegal("width", () -> SpatialDependence.compute(backend, x, 2, 3, 4, 0, REF));
        expectIllegal("input", () -> SpatialDependence.compute(backend, x, 3, 3, 4, 5, REF));
        expectIllegal("input", () -> SpatialDependence.compute(backend, Memory.of(new int[120]), 2, 3, 4, 5, REF));
        expectIllegal("height, width", () -> new SpatialDependenceAccumulator(backend, 1, 50000, 50000, REF));
        assertThrows(NullPointerException.class, () -> SpatialDependence.compute(backend, (float[]) null, 2, 3, 4, 5, REF));
        assertThrows(NullPointerException.class, () -> SpatialDependence.compute(null, x, 2, 3, 4, 5, REF));
        try (SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(backend, 3, 4, 5, REF)) {
            expectIllegal("batch", () -> acc.observe(Memory.of(new float[59]), 1));
            expectIllegal("batchSize", () -> acc.observe(Memory.of(x), 0));
            acc.observe(Memory.of(x), 2);
            acc.beginBinning();
            acc.bin(Memory.of(x), 2);
            expectIllegal("previousG", () -> acc.finish(new float[8]));
            expectIllegal("nmi", () -> acc.finish(Memory.of(new float[5]), Memory.of(new float[9]),
                    Memory.of(new float[9]), null, null, 0));
            expectIllegal("s", () -> acc.finish(Memory.of(new float[27]), Memory.of(new float[8]),
                    Memory.of(new float[9]), null, null, 0));
            expectIllegal("gKeptPrevious", () -> acc.finish(Memory.of(new float[27]), Memory.of(new float[9]),
                    Memory.of(new float[9]), null, Memory.of(new float[1]), 0));
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void misuseOfThePhasesIsAnIllegalState(TestBackend testBackend) {
        Backend backend = testBackend.get();
        float[] x = gaussian(53, 2 * 5 * 5);
        try (SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(backend, 1, 5, 5, REF)) {
            expectState("bin", () -> acc.bin(Memory.of(x), 2));
            expectState("finish", acc::finish);
            expectState("beginBinning", acc::beginBinning); // nothing observed
            acc.observe(Memory.of(x), 2);
            acc.beginBinning();
            expectState("observe", () -> acc.observe(Memory.of(x), 2));
            expectState("beginBinning", acc::beginBinning);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void mismatchedStatesAreRejected(TestBackend testBackend) {
        Backend backend = testBackend.get();
        float[] x = gaussian(59, 2 * 5 * 5);
        try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(backend, 1, 5, 5, REF);
                SpatialDependenceAccumulator otherShape = new SpatialDependenceAccumulator(backend, 1, 5, 6, REF);
                SpatialDependenceAccumulator otherOptions = new SpatialDependenceAccumulator(backend, 1, 5, 5, REF.bins(8));
                SpatialDependenceAccumulator b = new SpatialDependenceAccumulator(backend, 1, 5, 5, REF)) {
            a.observe(Memory.of(x), 2);
            expectIllegal("other", () -> a.mergeState(otherShape.exportState()));
            expectIllegal("other", () -> a.mergeState(otherOptions.exportState()));
            b.observe(Memory.of(x, 0, 25), 1);
            b.beginBinning();
            expectIllegal("other", () -> a.mergeState(b.exportState())); // phase differs
            a.beginBinning();
            b.bin(Memory.of(x, 0, 25), 1);
            expectIllegal("other", () -> a.mergeState(b.exportState())); // phase 1 not reduced
            assertThrows(NullPointerException.class, () -> a.importState(null));
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void closeReleasesTheStateAndUseAfterCloseThrows(TestBackend testBackend) {
        Backend backend = testBackend.get();
        float[] x = gaussian(61, 4 * 3 * 9 * 9);
        long host = HostBuffer.liveBytes(), device = DeviceBuffer.liveBytes();
        SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(backend, 3, 9, 9, REF.bins(128));
        acc.observe(Memory.of(x), 4);
        acc.beginBinning();
        acc.bin(Memory.of(x), 4);
        acc.finish();
        assertTrue(HostBuffer.liveBytes() + DeviceBuffer.liveBytes() > host + device);
        acc.close();
        acc.close();
        assertEquals(host, HostBuffer.liveBytes());
        assertEquals(device, DeviceBuffer.liveBytes());
        expectState("closed", () -> acc.observe(Memory.of(x), 4));
        expectState("closed", () -> acc.bin(Memory.of(x), 4));
        expectState("closed", acc::finish);
        expectState("closed", acc::exportState);
        expectState("closed", acc::reset);
        SpatialDependence.compute(backend, x, 4, 3, 9, 9, REF);
        assertEquals(host, HostBuffer.liveBytes());
        assertEquals(device, DeviceBuffer.liveBytes());
    }

    static void expectIllegal(String argument, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().startsWith(argument + ":"), "expected a message naming " + argument + ": " + e.getMessage());
    }

    static void expectState(String word, Executable call) {
        IllegalStateException e = assertThrows(IllegalStateException.class, call::run);
        assertTrue(e.getMessage().contains(word), "expected a message with '" + word + "': " + e.getMessage());
    }

    @FunctionalInterface
    interface Executable {
        void run() throws Throwable;
    }
}
