package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.gradshape.PowerGrad.Options;
import io.gradshape.PowerGrad.Reduction;
import io.gradshape.TestBackends.TestBackend;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every backend against the float64 oracle ({@link PowerGradOracle}): sizes that hit every CUDA kernel
 * (thread, warp and block per row, streamed rows; aligned and not), logits of std 1 to 30, every
 * option, in place, ignored rows, probability targets; plus finite differences, validation, error
 * reporting, determinism and workspace release.
 */
class PowerGradTest {
    static List<TestBackend> backends() {
        return TestBackends.all();
    }

    enum Targets { INDEX, ONE_HOT, SOFT }

    /** One problem: inputs drawn from {@code seed}. */
    record Case(int rows, int classes, double std, double alpha, double smoothing, Reduction reduction, Targets targets,
            double ignoredFraction, boolean inPlace, long seed) {
        Options options() {
            return Options.of(alpha).withSmoothing(smoothing).withReduction(reduction);
        }

        @Override
        public String toString() {
            return rows + "x" + classes + " std " + std + " alpha " + alpha + " eps " + smoothing + " " + reduction + " "
                    + targets + " ignored " + ignoredFraction + (inPlace ? " in place" : "") + " seed " + seed;
        }
    }

    static final class Inputs {
        final float[] logits;
        final int[] labels;
        final float[] targets;

        Inputs(float[] logits, int[] labels, float[] targets) {
            this.logits = logits;
            this.labels = labels;
            this.targets = targets;
        }
    }

    static Inputs inputs(Case c) {
        SplittableRandom random = new SplittableRandom(c.seed());
        float[] logits = new float[c.rows() * c.classes()];
        for (int i = 0; i < logits.length; i++) {
            logits[i] = (float) (gaussian(random) * c.std());
        }
        int[] labels = new int[c.rows()];
        for (int r = 0; r < c.rows(); r++) {
            labels[r] = random.nextDouble() < c.ignoredFraction() ? Options.DEFAULT_IGNORE_INDEX : random.nextInt(c.classes());
        }
        float[] targets = null;
        if (c.targets() == Targets.ONE_HOT) {
            targets = new float[logits.length];
            for (int r = 0; r < c.rows(); r++) {
                targets[r * c.classes() + random.nextInt(c.classes())] = 1.0f;
            }
        } else if (c.targets() == Targets.SOFT) {
            targets = new float[logits.length];
            for (int r = 0; r < c.rows(); r++) {
                double sum = 0;
                for (int i = 0; i < c.classes(); i++) {
                    double v = -Math.log(1.0 - random.nextDouble()); // Dirichlet(1) before normalising
                    targets[r * c.classes() + i] = (float) v;
                    sum += v;
                }
                for (int i = 0; i < c.classes(); i++) {
                    targets[r * c.classes() + i] = (float) (targets[r * c.classes() + i] / sum);
                }
            }
        }
        return new Inputs(logits, labels, targets);
    }

    static double gaussian(SplittableRandom random) {
        double u = 1.0 - random.nextDouble();
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.nextDouble());
    }

    /** Runs the case on the backend and checks every output against the oracle. */
    static void check(Backend backend, Case c) {
        Inputs in = inputs(c);
        boolean index = c.targets() == Targets.INDEX;
        PowerGradOracle.Out want = PowerGradOracle.compute(in.logits, c.rows(), c.classes(), index ? in.labels : null,
                index ? null : in.targets, c.alpha(), c.smoothing(), c.reduction(),
                index ? Options.DEFAULT_IGNORE_INDEX : null);
        float[] logits = in.logits.clone();
        float[] grad = c.inPlace() ? logits : new float[logits.length];
        PowerGrad.Result got;
        try (PowerGrad pgt = new PowerGrad(backend)) {
            Memory z = Memory.of(logits);
            Memory g = c.inPlace() ? z : Memory.of(grad);
            got = index ? pgt.compute(z, c.rows(), c.classes(), Memory.of(in.labels), c.options(), g)
                    : pgt.computeWithTargets(z, c.rows(), c.classes(), Memory.of(in.targets), c.options(), g);
        }
        String where = backend.kind() + " " + c;
        assertEquals(want.counted, got.countedRows(), where + ": counted rows");
        assertClose(want.loss, got.loss(), 1e-4 + 1e-5 * Math.abs(want.loss), where + ": loss");
        double gradScale = c.reduction() == Reduction.MEAN ? (want.counted > 0 ? 1.0 / want.counted : 0.0) : 1.0;
        checkGradient(want.grad, grad, gradScale, where);
        if (c.reduction() == Reduction.NONE) {
            float[] rowLosses = got.rowLosses();
            assertEquals(c.rows(), rowLosses.length, where + ": row losses");
            for (int r = 0; r < c.rows(); r++) {
                assertClose(want.rowLoss[r], rowLosses[r], 1e-4 + 2e-5 * Math.abs(want.rowLoss[r]), where + ": row loss " + r);
            }
        } else {
            assertNull(got.rowLosses(), where + ": row losses without NONE");
        }
        if (!c.inPlace()) {
            assertArrayEquals(in.logits, logits, where + ": logits modified");
        }
    }

    static void checkGradient(double[] want, float[] got, double gradScale, String where) {
        for (int i = 0; i < want.length; i++) {
            double tolerance = 3e-6 * gradScale + 1e-4 * Math.abs(want[i]);
            if (!(Math.abs(got[i] - want[i]) <= tolerance)) {
                fail(where + ": grad[" + i + "] = " + got[i] + ", expected " + want[i] + " +- " + tolerance);
            }
        }
    }

    static void assertClose(double want, double got, double tolerance, String what) {
        if (!(Math.abs(got - want) <= tolerance)) {
            fail(what + " = " + got + ", expected " + want + " +- " + tolerance);
        }
    }

    // ---- against the oracle ------------------------------------------------------------------------

    /** Class counts at and around every kernel boundary, odd ones, C not a multiple of 4, C = 1. */
    static final int[] CLASSES = {1, 2, 3, 4, 5, 7, 10, 16, 31, 32, 33, 64, 100, 127, 128, 129, 255, 256, 257, 500, 512,
        513, 1000, 1023, 1024, 1025, 2000, 2049, 4096, 4097, 8192, 8193, 16384, 16385, 32768, 32769, 50000};
    static final double[] ALPHAS = {0.0, 0.05, 0.25, 1.0};

    @ParameterizedTest
    @MethodSource("backends")
    void matchesOracleAtEverySize(TestBackend testBackend) {
        Backend backend = testBackend.get();
        SplittableRandom pick = new SplittableRandom(20240611);
        int n = 0;
        for (int classes : CLASSES) {
            for (Targets targets : Targets.values()) {
                int rows = Math.max(2, Math.min(150, 30000 / classes));
                Case c = new Case(rows, classes, pick.nextBoolean() ? 1.0 : 30.0, ALPHAS[pick.nextInt(4)],
                        pick.nextBoolean() ? 0.0 : 0.1, Reduction.values()[n++ % 3], targets,
                        targets == Targets.INDEX ? 0.2 : 0.0, pick.nextInt(4) == 0, pick.nextLong());
                check(backend, c);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void matchesOracleForEveryOption(TestBackend testBackend) {
        Backend backend = testBackend.get();
        long seed = 1;
        for (int classes : new int[] {10, 1000}) {
            for (double alpha : ALPHAS) {
                for (double smoothing : new double[] {0.0, 0.1}) {
                    for (Reduction reduction : Reduction.values()) {
                        for (Targets targets : new Targets[] {Targets.INDEX, Targets.SOFT}) {
                            for (double std : new double[] {1.0, 30.0}) {
                                check(backend, new Case(37, classes, std, alpha, smoothing, reduction, targets,
                                        targets == Targets.INDEX ? 0.25 : 0.0, seed % 5 == 0, seed++));
                            }
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void manyRowsAcrossThreadsAndBlocks(TestBackend testBackend) {
        Backend backend = testBackend.get();
        check(backend, new Case(40000, 10, 3.0, 0.25, 0.1, Reduction.MEAN, Targets.INDEX, 0.1, false, 11));
        check(backend, new Case(3000, 100, 3.0, 0.25, 0.0, Reduction.SUM, Targets.INDEX, 0.0, true, 12));
        check(backend, new Case(5, 50000, 30.0, 0.05, 0.1, Reduction.NONE, Targets.SOFT, 0.0, false, 13));
    }

    // ---- ignored rows ------------------------------------------------------------------------------

    @ParameterizedTest
    @MethodSource("backends")
    void ignoredRowsGiveZeroGradientAndMeanCountsTheRest(TestBackend testBackend) {
        Backend backend = testBackend.get();
        int rows = 6;
        int classes = 5;
        float[] logits = inputs(new Case(rows, classes, 2.0, 1, 0, Reduction.MEAN, Targets.INDEX, 0, false, 3)).logits;
        int[] labels = {1, -100, 4, -100, 0, 2};
        float[] grad = new float[rows * classes];
        Arrays.fill(grad, 7f);
        PowerGrad.Result r = PowerGrad.compute(backend, logits, rows, classes, labels, Options.of(0.25), grad);
        assertEquals(4, r.countedRows());
        PowerGradOracle.Out want = PowerGradOracle.compute(logits, rows, classes, labels, null, 0.25, 0, Reduction.MEAN, -100);
        assertClose(want.loss, r.loss(), 1e-6, "loss");
        double sum = 0;
        for (int row : new int[] {0, 2, 4, 5}) {
            sum += want.rowLoss[row];
        }
        assertClose(sum / 4, r.loss(), 1e-6, "mean over the 4 counted rows");
        for (int row : new int[] {1, 3}) {
            for (int i = 0; i < classes; i++) {
                assertEquals(0.0f, grad[row * classes + i], "ignored row " + row);
            }
        }
        checkGradient(want.grad, grad, 0.25, backend.kind() + " ignored rows");

        // A custom ignore index, and none: then -100 is a bad label.
        int[] custom = {1, 3, 4, 3, 0, 2};
        r = PowerGrad.compute(backend, logits, rows, classes, custom, Options.of(1).withIgnoreIndex(3), grad);
        assertEquals(4, r.countedRows());
        Options strict = Options.of(1).withoutIgnoreIndex();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PowerGrad.compute(backend, logits, rows, classes, labels, strict, grad));
        assertTrue(e.getMessage().startsWith("labels[1]: -100"), e.getMessage());
    }

    @ParameterizedTest
    @MethodSource("backends")
    void allRowsIgnoredGiveLossZeroAndGradientZero(TestBackend testBackend) {
        Backend backend = testBackend.get();
        for (int classes : new int[] {3, 100, 3000, 40000}) {
            int rows = 4;
            float[] logits = inputs(new Case(rows, classes, 1.0, 1, 0, Reduction.MEAN, Targets.INDEX, 0, false, 5)).logits;
            int[] labels = new int[rows];
            Arrays.fill(labels, -100);
            for (Reduction reduction : Reduction.values()) {
                float[] grad = new float[logits.length];
                Arrays.fill(grad, Float.NaN);
                PowerGrad.Result r = PowerGrad.compute(backend, logits, rows, classes, labels,
                        Options.of(0.25).withSmoothing(0.1).withReduction(reduction), grad);
                String where = backend.kind() + " C " + classes + " " + reduction;
                assertEquals(0.0, r.loss(), where);
                assertEquals(0, r.countedRows(), where);
                for (float g : grad) {
                    assertEquals(0.0f, g, where);
                }
                if (reduction == Reduction.NONE) {
                    assertArrayEquals(new float[rows], r.rowLosses(), where);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void zeroRows(TestBackend testBackend) {
        Backend backend = testBackend.get();
        PowerGrad.Result r = PowerGrad.compute(backend, new float[0], 0, 7, new int[0], Options.of(0.3), new float[0]);
        assertEquals(0.0, r.loss());
        assertEquals(0, r.countedRows());
        float[] loss = {5f};
        try (PowerGrad pgt = new PowerGrad(backend)) {
            pgt.compute(Memory.of(new float[0]), 0, 7, Memory.of(new int[0]), Options.of(0.3), Memory.of(new float[0]),
                    Memory.of(loss), Streams.DEFAULT);
            assertEquals(0.0, pgt.lastResult().loss());
        }
        assertEquals(0.0f, loss[0]);
    }

    // ---- targets, in place, the stream variant ------------------------------------------------------

    @ParameterizedTest
    @MethodSource("backends")
    void oneHotTargetsEqualClassIndices(TestBackend testBackend) {
        Backend backend = testBackend.get();
        for (int classes : new int[] {6, 300, 5000}) {
            Case c = new Case(20, classes, 5.0, 0.25, 0.1, Reduction.MEAN, Targets.INDEX, 0.0, false, classes);
            Inputs in = inputs(c);
            float[] oneHot = new float[in.logits.length];
            for (int r = 0; r < c.rows(); r++) {
                oneHot[r * classes + in.labels[r]] = 1f;
            }
            float[] gradIndex = new float[in.logits.length];
            float[] gradOneHot = new float[in.logits.length];
            PowerGrad.Result a = PowerGrad.compute(backend, in.logits, c.rows(), classes, in.labels, c.options(), gradIndex);
            PowerGrad.Result b = PowerGrad.computeWithTargets(backend, in.logits, c.rows(), classes, oneHot, c.options(), gradOneHot);
            assertClose(a.loss(), b.loss(), 1e-5 * (1 + Math.abs(a.loss())), "loss C " + classes);
            for (int i = 0; i < gradIndex.length; i++) {
                assertClose(gradIndex[i], gradOneHot[i], 2e-7 + 1e-5 * Math.abs(gradIndex[i]), "grad C " + classes + " [" + i + "]");
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void inPlaceOnNativeHostMemory(TestBackend testBackend) {
        Backend backend = testBackend.get();
        Case c = new Case(64, 1000, 4.0, 0.3, 0.0, Reduction.MEAN, Targets.INDEX, 0.1, true, 77);
        Inputs in = inputs(c);
        PowerGradOracle.Out want = PowerGradOracle.compute(in.logits, c.rows(), c.classes(), in.labels, null, c.alpha(), 0,
                Reduction.MEAN, -100);
        try (HostBuffer z = HostBuffer.of(in.logits); PowerGrad pgt = new PowerGrad(backend)) {
            PowerGrad.Result r = pgt.compute(z.memory(), c.rows(), c.classes(), Memory.of(in.labels), c.options(), z.memory());
            assertClose(want.loss, r.loss(), 1e-5, "loss");
            float[] grad = new float[in.logits.length];
            z.asByteBuffer().asFloatBuffer().get(grad);
            checkGradient(want.grad, grad, 1.0 / want.counted, backend.kind() + " in place on a HostBuffer");
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void streamVariantWritesTheLossToMemory(TestBackend testBackend) {
        Backend backend = testBackend.get();
        Case c = new Case(50, 40, 2.0, 0.25, 0.1, Reduction.SUM, Targets.INDEX, 0.1, false, 9);
        Inputs in = inputs(c);
        try (PowerGrad pgt = new PowerGrad(backend)) {
            float[] grad = new float[in.logits.length];
            float[] loss = new float[1];
            pgt.compute(Memory.of(in.logits), c.rows(), c.classes(), Memory.of(in.labels), c.options(), Memory.of(grad),
                    Memory.of(loss), Streams.DEFAULT);
            PowerGrad.Result r = pgt.lastResult();
            assertEquals((float) r.loss(), loss[0]);
            PowerGradOracle.Out want = PowerGradOracle.compute(in.logits, c.rows(), c.classes(), in.labels, null, c.alpha(),
                    c.smoothing(), Reduction.SUM, -100);
            assertClose(want.loss, r.loss(), 1e-4, "loss");

            Options none = c.options().withReduction(Reduction.NONE);
            float[] rows = new float[c.rows()];
            pgt.compute(Memory.of(in.logits), c.rows(), c.classes(), Memory.of(in.labels), none, Memory.of(grad),
                    Memory.of(rows), Streams.DEFAULT);
            for (int i = 0; i < c.rows(); i++) {
                assertClose(want.rowLoss[i], rows[i], 1e-5 * (1 + Math.abs(want.rowLoss[i])), "row " + i);
            }
            assertClose(want.loss, pgt.lastResult().loss(), 1e-4, "sum of row losses");
            assertThrows(IllegalArgumentException.class, () -> pgt.compute(Memory.of(in.logits), c.rows(), c.classes(),
                    Memory.of(in.labels), none, Memory.of(grad), Memory.of(new float[1]), Streams.DEFAULT));
        }
    }

    // ---- alpha = 1 is the true gradient ---------------------------------------------------------------

    @ParameterizedTest
    @MethodSource("backends")
    void alphaOneIsTheGradientOfTheLoss(TestBackend testBackend) {
        Backend backend = testBackend.get();
        int rows = 3;
        int classes = 5;
        for (Reduction reduction : new Reduction[] {Reduction.MEAN, Reduction.SUM}) {
            for (Targets targets : new Targets[] {Targets.INDEX, Targets.SOFT}) {
                Case c = new Case(rows, classes, 2.0, 1.0, 0.1, reduction, targets, 0.0, false, 31);
                Inputs in = inputs(c);
                int[] labels = targets == Targets.INDEX ? in.labels : null;
                float[] grad = new float[rows * classes];
                if (labels != null) {
                    PowerGrad.compute(backend, in.logits, rows, classes, labels, c.options(), grad);
                } else {
                    PowerGrad.computeWithTargets(backend, in.logits, rows, classes, in.targets, c.options(), grad);
                }
                float[] pgtGrad = new float[rows * classes];
                Options pgt = c.options().withAlpha(0.25);
                if (labels != null) {
                    PowerGrad.compute(backend, in.logits, rows, classes, labels, pgt, pgtGrad);
                } else {
                    PowerGrad.computeWithTargets(backend, in.logits, rows, classes, in.targets, pgt, pgtGrad);
                }
                double h = 1e-4;
                double largestPgtGap = 0;
                for (int i = 0; i < rows * classes; i++) {
                    double[] plus = toDouble(in.logits);
                    double[] minus = toDouble(in.logits);
                    plus[i] += h;
                    minus[i] -= h;
                    double numeric = (PowerGradOracle.compute(plus, rows, classes, labels, in.targets, 1, 0.1, reduction, null).loss
                            - PowerGradOracle.compute(minus, rows, classes, labels, in.targets, 1, 0.1, reduction, null).loss)
                            / (2 * h);
                    assertClose(numeric, grad[i], 2e-6, backend.kind() + " " + c + ": dL/dz[" + i + "]");
                    largestPgtGap = Math.max(largestPgtGap, Math.abs(numeric - pgtGrad[i]));
                }
                assertTrue(largestPgtGap > 1e-3, "alpha 0.25 must differ from the true gradient: " + largestPgtGap);
            }
        }
    }

    static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    // ---- non-finite logits ----------------------------------------------------------------------------

    @ParameterizedTest
    @MethodSource("backends")
    void nonFiniteLogitsAreReportedAndTheirRowsAreNaN(TestBackend testBackend) {
        Backend backend = testBackend.get();
        for (int classes : new int[] {10, 100, 2000, 40000}) {
            for (Targets targets : new Targets[] {Targets.INDEX, Targets.SOFT}) {
                Case c = new Case(9, classes, 1.0, 0.25, 0.1, Reduction.MEAN, targets, 0.0, false, classes);
                Inputs in = inputs(c);
                in.logits[2 * classes + classes / 2] = Float.NaN;
                in.logits[5 * classes] = Float.POSITIVE_INFINITY;
                in.logits[7 * classes + classes - 1] = Float.NEGATIVE_INFINITY;
                float[] grad = new float[in.logits.length];
                String where = backend.kind() + " " + c;
                GradshapeException e = assertThrows(GradshapeException.class, () -> {
                    if (targets == Targets.INDEX) {
                        PowerGrad.compute(backend, in.logits, c.rows(), classes, in.labels, c.options(), grad);
                    } else {
                        PowerGrad.computeWithTargets(backend, in.logits, c.rows(), classes, in.targets, c.options(), grad);
                    }
                }, where);
                assertEquals(Status.NONFINITE_INPUT, e.status(), where);
                assertTrue(e.getMessage().contains("3 row(s)") && e.getMessage().contains("row 2"), e.getMessage());
                boolean index = targets == Targets.INDEX;
                PowerGradOracle.Out want = PowerGradOracle.compute(in.logits, c.rows(), classes, index ? in.labels : null,
                        index ? null : in.targets, c.alpha(), c.smoothing(), Reduction.MEAN, null);
                for (int r = 0; r < c.rows(); r++) {
                    for (int i = 0; i < classes; i++) {
                        float g = grad[r * classes + i];
                        if (r == 2 || r == 5 || r == 7) {
                            assertTrue(Float.isNaN(g), where + ": row " + r + " must be NaN");
                        } else {
                            assertClose(want.grad[r * classes + i], g, 3e-6 / 9 + 1e-4 * Math.abs(want.grad[r * classes + i]),
                                    where + ": grad[" + r + "][" + i + "]");
                        }
                    }
                }
            }
        }
    }

    // ---- determinism ------------------------------------------------------------------------------------

    @ParameterizedTest
    @MethodSource("backends")
    void repeatedCallsAreBitIdentical(TestBackend testBackend) {
        Backend backend = testBackend.get();
        Case c = new Case(3000, 257, 5.0, 0.25, 0.1, Reduction.MEAN, Targets.INDEX, 0.1, false, 4);
        Inputs in = inputs(c);
        float[] first = new float[in.logits.length];
        float[] second = new float[in.logits.length];
        int threads = Gradshape.cpuThreads();
        PowerGrad.Result a;
        PowerGrad.Result b;
        try (PowerGrad pgt = new PowerGrad(backend)) {
            a = pgt.compute(Memory.of(in.logits), c.rows(), c.classes(), Memory.of(in.labels), c.options(), Memory.of(first));
            Gradshape.setCpuThreads(1);
            b = pgt.compute(Memory.of(in.logits), c.rows(), c.classes(), Memory.of(in.labels), c.options(), Memory.of(second));
        } finally {
            Gradshape.setCpuThreads(threads);
        }
        assertEquals(Double.doubleToRawLongBits(a.loss()), Double.doubleToRawLongBits(b.loss()), "loss bits");
        assertArrayEquals(first, second);
    }

    // ---- validation -------------------------------------------------------------------------------------

    @Test
    void optionsAreValidated() {
        assertMessage(IllegalArgumentException.class, "alpha", () -> Options.of(-0.1));
        assertMessage(IllegalArgumentException.class, "alpha", () -> Options.of(Double.NaN));
        assertMessage(IllegalArgumentException.class, "alpha", () -> Options.of(Double.POSITIVE_INFINITY));
        assertMessage(IllegalArgumentException.class, "alpha", () -> Options.of(1e300));
        assertMessage(IllegalArgumentException.class, "alpha", () -> Options.of(1).withAlpha(-1));
        assertMessage(IllegalArgumentException.class, "smoothing", () -> Options.of(1).withSmoothing(1.5));
        assertMessage(IllegalArgumentException.class, "smoothing", () -> Options.of(1).withSmoothing(-0.01));
        assertMessage(IllegalArgumentException.class, "smoothing", () -> Options.of(1).withSmoothing(Double.NaN));
        assertMessage(NullPointerException.class, "reduction", () -> Options.of(1).withReduction(null));
        Options o = Options.of(0.3).withSmoothing(0.1).withReduction(Reduction.SUM).withIgnoreIndex(7);
        assertEquals(0.3, o.alpha());
        assertEquals(0.1, o.smoothing());
        assertEquals(Reduction.SUM, o.reduction());
        assertEquals(7, o.ignoreIndex().getAsInt());
        assertTrue(o.withoutIgnoreIndex().ignoreIndex().isEmpty());
        assertEquals(-100, Options.of(1).ignoreIndex().getAsInt());
        assertEquals(Options.of(1), Options.crossEntropy());
    }

    @ParameterizedTest
    @MethodSource("backends")
    void argumentsAreValidatedBeforeAnyNativeCall(TestBackend testBackend) {
        Backend backend = testBackend.get();
        float[] z = new float[12];
        float[] g = new float[12];
        int[] y = {0, 1, 2};
        Options o = Options.of(0.25);
        assertMessage(NullPointerException.class, "backend", () -> PowerGrad.compute(null, z, 3, 4, y, o, g));
        assertMessage(NullPointerException.class, "logits", () -> PowerGrad.compute(backend, (float[]) null, 3, 4, y, o, g));
        assertMessage(NullPointerException.class, "labels", () -> PowerGrad.compute(backend, z, 3, 4, (int[]) null, o, g));
        assertMessage(NullPointerException.class, "options", () -> PowerGrad.compute(backend, z, 3, 4, y, null, g));
        assertMessage(NullPointerException.class, "gradOut", () -> PowerGrad.compute(backend, z, 3, 4, y, o, null));
        assertMessage(IllegalArgumentException.class, "rows", () -> PowerGrad.compute(backend, z, -1, 4, y, o, g));
        assertMessage(IllegalArgumentException.class, "classes", () -> PowerGrad.compute(backend, z, 3, 0, y, o, g));
        assertMessage(IllegalArgumentException.class, "logits", () -> PowerGrad.compute(backend, z, 3, 5, y, o, g));
        assertMessage(IllegalArgumentException.class, "gradOut",
                () -> PowerGrad.compute(backend, z, 3, 4, y, o, new float[11]));
        assertMessage(IllegalArgumentException.class, "labels", () -> PowerGrad.compute(backend, z, 3, 4, new int[2], o, g));
        assertMessage(IllegalArgumentException.class, "labels[2]: 4",
                () -> PowerGrad.compute(backend, z, 3, 4, new int[] {0, 1, 4}, o, g));
        assertMessage(IllegalArgumentException.class, "labels[0]: -1",
                () -> PowerGrad.compute(backend, z, 3, 4, new int[] {-1, 1, 2}, o, g));
        assertMessage(IllegalArgumentException.class, "targets",
                () -> PowerGrad.computeWithTargets(backend, z, 3, 4, new float[3], o, g));
        // Partial overlap with the logits is refused; the same memory is in place.
        float[] shared = new float[16];
        assertMessage(IllegalArgumentException.class, "gradOut",
                () -> PowerGrad.compute(backend, Memory.of(shared, 0, 12), 3, 4, Memory.of(y), o, Memory.of(shared, 4, 12)));
        float[] targets = new float[24];
        assertMessage(IllegalArgumentException.class, "gradOut",
                () -> PowerGrad.computeWithTargets(backend, Memory.of(z), 3, 4, Memory.of(targets, 0, 12), o,
                        Memory.of(targets, 6, 12)));
        try (PowerGrad pgt = new PowerGrad(backend)) {
            assertMessage(IllegalArgumentException.class, "lossOut", () -> pgt.compute(Memory.of(z), 3, 4, Memory.of(y), o,
                    Memory.of(g), Memory.of(new float[2]), Streams.DEFAULT));
            assertMessage(IllegalArgumentException.class, "lossOut", () -> pgt.compute(Memory.of(z), 3, 4, Memory.of(y), o,
                    Memory.of(g), Memory.of(g, 0, 1), Streams.DEFAULT));
            // Refused calls leave no result: lastResult says so rather than returning an older call's result.
            assertMessage(IllegalStateException.class, "refused", pgt::lastResult);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void closeReleasesTheWorkspaceAndIsIdempotent(TestBackend testBackend) {
        Backend backend = testBackend.get();
        long host = HostBuffer.liveBytes();
        long device = backend.kind() == Backend.Kind.CUDA ? DeviceBuffer.liveBytes() : 0;
        PowerGrad pgt = new PowerGrad(backend);
        float[] z = new float[40];
        pgt.compute(Memory.of(z), 4, 10, Memory.of(new int[] {1, 2, 3, 4}), Options.of(0.25).withReduction(Reduction.NONE),
                Memory.of(new float[40]));
        assertTrue(HostBuffer.liveBytes() > host);
        pgt.close();
        pgt.close();
        assertTrue(pgt.isClosed());
        assertEquals(host, HostBuffer.liveBytes());
        if (backend.kind() == Backend.Kind.CUDA) {
            assertEquals(device, DeviceBuffer.liveBytes());
        }
        assertMessage(IllegalStateException.class, "closed", () -> pgt.compute(Memory.of(z), 4, 10,
                Memory.of(new int[] {1, 2, 3, 4}), Options.of(0.25), Memory.of(new float[40])));
        assertMessage(IllegalStateException.class, "closed", pgt::lastResult);
    }

    static <T extends Throwable> void assertMessage(Class<T> type, String fragment, Executable call) {
        T e = assertThrows(type, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(fragment),
                "expected a message naming '" + fragment + "', got: " + e.getMessage());
    }

    // ---- CUDA only: device memory, device labels, unaligned rows -------------------------------------

    @Test
    @RequiresCuda
    void deviceMemoryAlignedAndNotAgreeWithTheOracle() {
        CudaBackend cuda = Backends.cuda();
        for (int classes : new int[] {12, 100, 1000, 3000, 20000, 40000}) {
            for (Targets targets : new Targets[] {Targets.INDEX, Targets.SOFT}) {
                Case c = new Case(33, classes, 4.0, 0.25, 0.1, Reduction.MEAN, targets, 0.1, false, classes + 7);
                Inputs in = inputs(c);
                boolean index = targets == Targets.INDEX;
                PowerGradOracle.Out want = PowerGradOracle.compute(in.logits, c.rows(), classes, index ? in.labels : null,
                        index ? null : in.targets, c.alpha(), c.smoothing(), Reduction.MEAN, index ? -100 : null);
                int n = in.logits.length;
                for (int offset : new int[] {0, 1}) { // offset 1: not 16-byte aligned, the scalar kernels
                    try (DeviceBuffer z = cuda.allocate(DType.FLOAT32, n + 1); DeviceBuffer g = cuda.allocate(DType.FLOAT32, n + 1);
                            DeviceBuffer y = DeviceBuffer.copyOf(cuda, Memory.of(in.labels));
                            DeviceBuffer t = cuda.allocate(DType.FLOAT32, n + 1);
                            DeviceBuffer loss = cuda.allocate(DType.FLOAT32, 1); PowerGrad pgt = new PowerGrad(cuda)) {
                        Memory zm = z.memory().slice(offset, n);
                        Memory gm = g.memory().slice(offset, n);
                        Memory tm = t.memory().slice(offset, n);
                        cuda.copy(zm, Memory.of(in.logits));
                        if (!index) {
                            cuda.copy(tm, Memory.of(in.targets));
                        }
                        if (index) {
                            pgt.compute(zm, c.rows(), classes, y.memory(), c.options(), gm, loss.memory(), Streams.DEFAULT);
                        } else {
                            pgt.computeWithTargets(zm, c.rows(), classes, tm, c.options(), gm, loss.memory(), Streams.DEFAULT);
                        }
                        PowerGrad.Result r = pgt.lastResult();
                        String where = c + " offset " + offset;
                        assertClose(want.loss, r.loss(), 1e-4 + 1e-5 * Math.abs(want.loss), where + ": loss");
                        assertEquals((float) r.loss(), loss.toFloatArray()[0], where + ": lossOut");
                        float[] grad = new float[n];
                        cuda.copy(Memory.of(grad), gm);
                        checkGradient(want.grad, grad, 1.0 / want.counted, where);
                    }
                }
            }
        }
    }

    @Test
    @RequiresCuda
    void outOfRangeDeviceLabelsAreReportedNotRead() {
        CudaBackend cuda = Backends.cuda();
        for (int classes : new int[] {10, 100, 3000, 40000}) {
            int rows = 6;
            float[] logits = inputs(new Case(rows, classes, 1.0, 1, 0, Reduction.MEAN, Targets.INDEX, 0, false, 2)).logits;
            int[] labels = {0, classes, -100, -7, 1, 2};
            try (DeviceBuffer y = DeviceBuffer.copyOf(cuda, Memory.of(labels)); PowerGrad pgt = new PowerGrad(cuda)) {
                float[] grad = new float[logits.length];
                GradshapeException e = assertThrows(GradshapeException.class,
                        () -> pgt.compute(Memory.of(logits), rows, classes, y.memory(), Options.of(0.25), Memory.of(grad)));
                assertEquals(Status.INVALID_ARGUMENT, e.status());
                assertTrue(e.getMessage().contains("2 label(s)") && e.getMessage().contains("row 1"), e.getMessage());
                for (int i = 0; i < classes; i++) {
                    assertTrue(Float.isNaN(grad[classes + i]) && Float.isNaN(grad[3 * classes + i]), "bad rows are NaN");
                    assertEquals(0f, grad[2 * classes + i], "ignored row is 0");
                }
                // The workspace is clean for the next call.
                int[] good = {0, 1, -100, 3, 1, 2};
                try (DeviceBuffer y2 = DeviceBuffer.copyOf(cuda, Memory.of(good))) {
                    PowerGrad.Result r = pgt.compute(Memory.of(logits), rows, classes, y2.memory(), Options.of(0.25), Memory.of(grad));
                    assertEquals(5, r.countedRows());
                    PowerGradOracle.Out want = PowerGradOracle.compute(logits, rows, classes, good, null, 0.25, 0, Reduction.MEAN, -100);
                    assertClose(want.loss, r.loss(), 1e-5, "loss after an error");
                }
            }
        }
    }

    @Test
    @RequiresCuda
    void badDeviceLabelsWithoutAnIgnoreIndexLeaveTheMeanOfTheValidRows() {
        CudaBackend cuda = Backends.cuda();
        int rows = 6;
        int classes = 100;
        float[] logits = inputs(new Case(rows, classes, 1.0, 1, 0, Reduction.MEAN, Targets.INDEX, 0, false, 3)).logits;
        int[] labels = {0, classes, 3, -7, 1, 2};
        int[] validRows = {0, 2, 4, 5};
        try (DeviceBuffer y = DeviceBuffer.copyOf(cuda, Memory.of(labels)); PowerGrad pgt = new PowerGrad(cuda)) {
            float[] grad = new float[logits.length];
            assertThrows(GradshapeException.class, () -> pgt.compute(Memory.of(logits), rows, classes, y.memory(),
                    Options.of(0.25).withoutIgnoreIndex(), Memory.of(grad)));
            // MEAN divides by the rows whose labels are classes (4), as the CPU backend and the header say.
            float[] valid = new float[validRows.length * classes];
            int[] validLabels = new int[validRows.length];
            for (int v = 0; v < validRows.length; v++) {
                System.arraycopy(logits, validRows[v] * classes, valid, v * classes, classes);
                validLabels[v] = labels[validRows[v]];
            }
            PowerGradOracle.Out want = PowerGradOracle.compute(valid, validRows.length, classes, validLabels, null, 0.25, 0,
                    Reduction.MEAN, null);
            for (int v = 0; v < validRows.length; v++) {
                for (int c = 0; c < classes; c++) {
                    assertClose(want.grad[v * classes + c], grad[validRows[v] * classes + c], 1e-6,
                            "row " + validRows[v] + ", class " + c);
                }
            }
        }
    }
}
