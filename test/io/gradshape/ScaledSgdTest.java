package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.gradshape.ScaledSgd.Kernel;
import io.gradshape.ScaledSgd.Layout;
import io.gradshape.ScaledSgd.Parameter;
import io.gradshape.ScaledSgd.Segment;
import io.gradshape.TestBackends.TestBackend;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * ScaledSgd on every backend (TestBackends.all(): CPU, plus CUDA, skipped when not usable) against the float64
 * oracle of SPEC.md section 2, over several steps with momentum state carried, lr changes and G
 * replacement; then the Java-side validation.
 */
class ScaledSgdTest {
    /** float32 result vs float64 oracle after a few steps: |a - e| <= ATOL + RTOL |e|. */
    private static final double RTOL = 1e-6;
    private static final double ATOL = 1e-6;

    // ---- test tensors -----------------------------------------------------------------------------

    /** A tensor to register: its length, kernel (null: no scale) and decay flag. */
    record Spec(long length, Kernel kernel, boolean decay) {
        static Spec plain(long length) {
            return new Spec(length, null, true);
        }

        static Spec oihw(int cout, int cin, int kh, int kw) {
            return new Spec((long) cout * cin * kh * kw, Kernel.ofWeightShape(Layout.OIHW, cout, cin, kh, kw), true);
        }

        static Spec hwio(int kh, int kw, int cin, int cout) {
            return new Spec((long) cout * cin * kh * kw, Kernel.of(kh, kw, Layout.HWIO, cin, cout), true);
        }

        Spec noDecay() {
            return new Spec(length, kernel, false);
        }
    }

    /** A small model: conv weights with 3x3, 5x5 and 7x7 OIHW and HWIO kernels, a 1x1 conv, biases, norms. */
    static List<Spec> model() {
        return List.of(
                Spec.oihw(4, 3, 3, 3),            // 108
                Spec.plain(4).noDecay(),          // its bias
                Spec.oihw(5, 2, 7, 7),            // 490, 7x7 stem-like
                Spec.hwio(3, 3, 3, 5),            // 135, HWIO
                Spec.oihw(3, 4, 5, 5).noDecay(),  // 300, conv without decay
                new Spec(6, Kernel.of(1, 1), true), // 1x1 conv with a (trivial) kernel
                Spec.plain(17),                   // fc
                Spec.plain(5).noDecay(),          // norm weight
                Spec.hwio(5, 3, 2, 3).noDecay()); // 90, non-square HWIO
    }

    /** Sizes that are not multiples of the vector width, and tensors spanning several CUDA chunks and CPU threads. */
    static List<Spec> oddSizes() {
        return List.of(Spec.plain(1), Spec.plain(3), Spec.plain(5), Spec.plain(17), Spec.plain(1031),
                new Spec(9 * 7779, Kernel.of(3, 3), true),             // 70011: 3 CUDA chunks, phase changes at chunk starts
                Spec.hwio(3, 3, 64, 129),                              // 74304: HWIO runs crossing chunks
                new Spec(49 * 3, Kernel.of(7, 7), true),
                Spec.plain(2 * 32768 + 1).noDecay(),
                Spec.plain(0));
    }

    /** Buffers for the tensors of one test on one backend: weights, grads and (optionally) momentum per tensor. */
    static final class Model implements AutoCloseable {
        final Backend backend;
        final List<Spec> specs;
        final List<OwnedBuffer> buffers = new ArrayList<>();
        final Memory[] w;
        final Memory[] g;
        final Memory[] m;
        final float[][] w0;

        /**
         * Each array of each tensor in its own buffer starting {@code offsets[0|1|2]} elements in (w, g, m):
         * equal odd offsets keep the three arrays mutually aligned, different ones do not.
         */
        Model(Backend backend, List<Spec> specs, Random rnd, boolean callerMomentum, int... offsets) {
            this.backend = backend;
            this.specs = specs;
            int n = specs.size();
            w = new Memory[n];
            g = new Memory[n];
            m = new Memory[n];
            w0 = new float[n][];
            int[] off = offsets.length == 0 ? new int[3] : offsets;
            for (int i = 0; i < n; i++) {
                long len = specs.get(i).length;
                w[i] = allocate(len, off[0]);
                g[i] = allocate(len, off[1]);
                if (callerMomentum) {
                    m[i] = allocate(len, off[2]);
                }
                w0[i] = random(rnd, (int) len, 1f);
                write(backend, w[i], w0[i]);
            }
        }

        private Memory allocate(long length, int offset) {
            OwnedBuffer b = backend instanceof CudaBackend c ? DeviceBuffer.allocate(c, DType.FLOAT32, length + offset)
                    : HostBuffer.allocate(DType.FLOAT32, length + offset);
            buffers.add(b);
            return b.memory().slice(offset, length);
        }

        Parameter parameter(int i) {
            Spec s = specs.get(i);
            Parameter p = Parameter.of(w[i], g[i]).withWeightDecay(s.decay);
            if (s.kernel != null) {
                p = p.withKernel(s.kernel);
            }
            return m[i] != null ? p.withMomentumBuffer(m[i]) : p;
        }

        ScaledSgd.Builder register(ScaledSgd.Builder b) {
            for (int i = 0; i < specs.size(); i++) {
                b.addParameter(parameter(i));
            }
            return b;
        }

        ScaledSgdOracle.Tensor[] oracleTensors() {
            ScaledSgdOracle.Tensor[] t = new ScaledSgdOracle.Tensor[specs.size()];
            for (int i = 0; i < t.length; i++) {
                Kernel k = specs.get(i).kernel;
                double[] ones = null;
                if (k != null) {
                    ones = new double[k.area()];
                    Arrays.fill(ones, 1);
                }
                long channels = k == null || k.layout() != Layout.HWIO ? 1 : k.expectedLength() / k.area();
                t[i] = new ScaledSgdOracle.Tensor(w0[i], ones, k == null ? Layout.OIHW : k.layout(), channels, specs.get(i).decay);
            }
            return t;
        }

        @Override
        public void close() {
            buffers.forEach(OwnedBuffer::close);
        }
    }

    static float[] random(Random rnd, int n, float range) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (rnd.nextFloat() * 2 - 1) * range;
        }
        return a;
    }

    /** A positive scale around 1, as SGS produces. */
    static float[] randomScale(Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = 0.25f + 1.5f * rnd.nextFloat();
        }
        return a;
    }

    static void write(Backend backend, Memory target, float[] values) {
        if (values.length == 0) {
            return;
        }
        if (target.location() == Memory.Location.DEVICE) {
            ((CudaBackend) backend).copy(target, Memory.of(values));
        } else {
            HostCopy.arrayToNative(Memory.of(values), target.address());
        }
    }

    static float[] read(Backend backend, Memory source) {
        float[] out = new float[(int) source.length()];
        if (out.length == 0) {
            return out;
        }
        if (source.location() == Memory.Location.DEVICE) {
            ((CudaBackend) backend).copy(Memory.of(out), source);
        } else {
            HostCopy.nativeToArray(source.address(), Memory.of(out));
        }
        return out;
    }

    static void assertClose(double[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(actual[i] - expected[i]);
            if (!(err <= ATOL + RTOL * Math.abs(expected[i]))) {
                fail(what + ": element " + i + " of " + expected.length + ": expected " + expected[i] + ", got " + actual[i]
                        + " (error " + err + ")");
            }
        }
    }

    // ---- the oracle runs ----------------------------------------------------------------------------

    /** Hyperparameters of one run. */
    record Hyper(float lr, float momentum, float dampening, float weightDecay, boolean nesterov, boolean maximize) {
        ScaledSgd.Builder builder(Backend backend) {
            return ScaledSgd.builder(backend).lr(lr).momentum(momentum).dampening(dampening).weightDecay(weightDecay)
                    .nesterov(nesterov).maximize(maximize);
        }

        ScaledSgdOracle oracle() {
            return new ScaledSgdOracle(lr, momentum, dampening, weightDecay, nesterov, maximize);
        }
    }

    /** Every flag combination PyTorch allows (nesterov only with momentum > 0 and no dampening). */
    static Stream<Arguments> flagCombinations() {
        List<Arguments> list = new ArrayList<>();
        for (TestBackend backend : TestBackends.all()) {
            for (float momentum : new float[] {0f, 0.9f}) {
                for (float dampening : new float[] {0f, 0.3f}) {
                    for (boolean nesterov : new boolean[] {false, true}) {
                        if (nesterov && (momentum == 0 || dampening != 0)) {
                            continue;
                        }
                        for (boolean maximize : new boolean[] {false, true}) {
                            for (float decay : new float[] {0f, 1e-2f}) {
                                list.add(Arguments.of(backend, new Hyper(0.1f, momentum, dampening, decay, nesterov, maximize)));
                            }
                        }
                    }
                }
            }
        }
        return list.stream();
    }

    /**
     * Runs {@code steps} steps with fresh random gradients, lr changed every step and every G set before
     * step 0 and replaced before step 2; compares weights and momentum with the oracle after each step.
     */
    static void runAgainstOracle(Backend backend, Hyper hyper, List<Spec> specs, long seed, int steps, float unscale,
            boolean callerMomentum, int... offsets) {
        Random rnd = new Random(seed);
        String where = backend.kind() + " seed " + seed + " " + hyper + " sizes " + specs.stream().map(s -> s.length).toList()
                + " offsets " + Arrays.toString(offsets) + " unscale " + unscale;
        try (Model model = new Model(backend, specs, rnd, callerMomentum && hyper.momentum != 0, offsets);
                ScaledSgd sgd = model.register(hyper.builder(backend)).build()) {
            ScaledSgdOracle oracle = hyper.oracle();
            ScaledSgdOracle.Tensor[] ref = model.oracleTensors();
            for (int step = 0; step < steps; step++) {
                float lr = hyper.lr * (1 + 0.25f * step);
                sgd.setLearningRate(lr);
                oracle.lr = lr;
                if (step == 0 || step == 2) {
                    for (int i = 0; i < specs.size(); i++) {
                        Kernel k = specs.get(i).kernel;
                        if (k != null) {
                            float[] scale = randomScale(rnd, k.area());
                            sgd.setScale(i, scale);
                            ref[i].scale = new double[scale.length];
                            for (int j = 0; j < scale.length; j++) {
                                ref[i].scale[j] = scale[j];
                            }
                        }
                    }
                }
                for (int i = 0; i < specs.size(); i++) {
                    float[] grad = random(rnd, (int) specs.get(i).length, 1f / unscale);
                    write(backend, model.g[i], grad);
                    oracle.step(ref[i], grad, unscale);
                }
                sgd.step(unscale, false, Streams.DEFAULT);
                backend.synchronize(Streams.DEFAULT);
                assertEquals(step + 1, sgd.stepCount(), where);
                for (int i = 0; i < specs.size(); i++) {
                    String what = where + ", step " + step + ", tensor " + i;
                    assertClose(ref[i].w, read(backend, model.w[i]), what + " weights");
                    if (hyper.momentum != 0) {
                        assertClose(ref[i].buf, read(backend, sgd.momentumBuffer(i)), what + " momentum");
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("flagCombinations")
    void everyFlagCombinationMatchesTheOracle(TestBackend testBackend, Hyper hyper) {
        Backend backend = testBackend.get();
        runAgainstOracle(backend, hyper, model(), 11, 5, 1f, false);
    }

    static Stream<TestBackend> backends() {
        return TestBackends.all().stream();
    }

    @ParameterizedTest
    @MethodSource("backends")
    void oddSizesAndMultiChunkTensors(TestBackend testBackend) {
        Backend backend = testBackend.get();
        runAgainstOracle(backend, new Hyper(0.05f, 0.9f, 0.1f, 1e-3f, false, false), oddSizes(), 12, 4, 1f, false);
        runAgainstOracle(backend, new Hyper(0.05f, 0.8f, 0f, 1e-3f, true, false), oddSizes(), 13, 3, 1f, false);
    }

    /** Thread ranges of the CPU step start inside tensors, at every kernel phase. */
    @Test
    void cpuRangesSplitInsideTensors() {
        try {
            for (int threads : new int[] {3, 5, 7, 16}) {
                Gradshape.setCpuThreads(threads);
                runAgainstOracle(CPU, new Hyper(0.05f, 0.9f, 0.1f, 1e-3f, false, false), oddSizes(), 100 + threads, 2, 1f, false);
            }
        } finally {
            Gradshape.setCpuThreads(0);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void misalignedSlices(TestBackend testBackend) {
        Backend backend = testBackend.get();
        Hyper hyper = new Hyper(0.1f, 0.9f, 0f, 1e-2f, false, false);
        // The same odd offset for w, g, m: mutually aligned, vector path after a scalar head on CUDA.
        runAgainstOracle(backend, hyper, oddSizes(), 14, 3, 1f, true, 1, 1, 1);
        runAgainstOracle(backend, hyper, model(), 15, 3, 1f, true, 3, 3, 3);
        // Different offsets: scalar path.
        runAgainstOracle(backend, hyper, oddSizes(), 16, 3, 1f, true, 1, 2, 0);
        runAgainstOracle(backend, hyper, model(), 17, 3, 1f, true, 0, 1, 0);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void unscaleFactor(TestBackend testBackend) {
        Backend backend = testBackend.get();
        runAgainstOracle(backend, new Hyper(0.1f, 0.9f, 0f, 1e-2f, true, false), model(), 18, 4, 1f / 1024, false);
        runAgainstOracle(backend, new Hyper(0.1f, 0f, 0f, 1e-2f, false, false), oddSizes(), 19, 2, 1f / 65536, false);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void callerMomentumBuffersAreUsedAndUpdated(TestBackend testBackend) {
        Backend backend = testBackend.get();
        runAgainstOracle(backend, new Hyper(0.1f, 0.9f, 0.2f, 1e-2f, false, true), model(), 20, 4, 1f, true);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void skipChangesNothingAndKeepsTheFirstStep(TestBackend testBackend) {
        Backend backend = testBackend.get();
        Random rnd = new Random(21);
        List<Spec> specs = model();
        Hyper hyper = new Hyper(0.1f, 0.9f, 0.5f, 1e-2f, false, false);
        try (Model model = new Model(backend, specs, rnd, false);
                ScaledSgd sgd = model.register(hyper.builder(backend)).build()) {
            float[][] grads = new float[specs.size()][];
            for (int i = 0; i < specs.size(); i++) {
                grads[i] = random(rnd, (int) specs.get(i).length, 1f);
                write(backend, model.g[i], grads[i]);
            }
            float[][] buf0 = new float[specs.size()][];
            for (int i = 0; i < specs.size(); i++) {
                buf0[i] = read(backend, sgd.momentumBuffer(i));
            }
            sgd.step(1f, true);
            backend.synchronize(Streams.DEFAULT);
            assertEquals(0, sgd.stepCount());
            for (int i = 0; i < specs.size(); i++) {
                assertArrayEquals(model.w0[i], read(backend, model.w[i]), "skipped step changed weights of tensor " + i);
                assertArrayEquals(buf0[i], read(backend, sgd.momentumBuffer(i)), "skipped step changed momentum of tensor " + i);
            }
            // The next step that runs is the first: buf = d (dampening would show if it were not).
            ScaledSgdOracle oracle = hyper.oracle();
            ScaledSgdOracle.Tensor[] ref = model.oracleTensors();
            sgd.step();
            backend.synchronize(Streams.DEFAULT);
            assertEquals(1, sgd.stepCount());
            for (int i = 0; i < specs.size(); i++) {
                oracle.step(ref[i], grads[i], 1);
                assertClose(ref[i].w, read(backend, model.w[i]), backend.kind() + " first step after a skip, tensor " + i);
                assertClose(ref[i].buf, read(backend, sgd.momentumBuffer(i)), backend.kind() + " first momentum after a skip, tensor " + i);
            }
            // A skip later on also leaves everything as it was.
            float[][] w1 = new float[specs.size()][];
            float[][] b1 = new float[specs.size()][];
            for (int i = 0; i < specs.size(); i++) {
                w1[i] = read(backend, model.w[i]);
                b1[i] = read(backend, sgd.momentumBuffer(i));
            }
            sgd.step(0.5f, true);
            backend.synchronize(Streams.DEFAULT);
            assertEquals(1, sgd.stepCount());
            for (int i = 0; i < specs.size(); i++) {
                assertArrayEquals(w1[i], read(backend, model.w[i]));
                assertArrayEquals(b1[i], read(backend, sgd.momentumBuffer(i)));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void resumeFromACheckpointContinuesTheMomentum(TestBackend testBackend) {
        Backend backend = testBackend.get();
        Random rnd = new Random(22);
        List<Spec> specs = model();
        Hyper hyper = new Hyper(0.1f, 0.9f, 0.1f, 1e-2f, false, false);
        try (Model model = new Model(backend, specs, rnd, true);
                ScaledSgd sgd = model.register(hyper.builder(backend)).initialStepCount(7).build()) {
            ScaledSgdOracle oracle = hyper.oracle();
            ScaledSgdOracle.Tensor[] ref = model.oracleTensors();
            for (int i = 0; i < specs.size(); i++) {
                float[] saved = random(rnd, (int) specs.get(i).length, 0.5f);
                write(backend, model.m[i], saved);
                ref[i].buf = new double[saved.length];
                for (int j = 0; j < saved.length; j++) {
                    ref[i].buf[j] = saved[j];
                }
                float[] grad = random(rnd, saved.length, 1f);
                write(backend, model.g[i], grad);
                oracle.step(ref[i], grad, 1);
            }
            sgd.step();
            backend.synchronize(Streams.DEFAULT);
            assertEquals(8, sgd.stepCount());
            for (int i = 0; i < specs.size(); i++) {
                assertClose(ref[i].w, read(backend, model.w[i]), backend.kind() + " resumed weights, tensor " + i);
                assertClose(ref[i].buf, read(backend, model.m[i]), backend.kind() + " resumed momentum, tensor " + i);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void flatBufferEqualsPerTensorRegistration(TestBackend testBackend) {
        Backend backend = testBackend.get();
        List<Spec> specs = new ArrayList<>(model());
        specs.addAll(oddSizes());
        Random rnd = new Random(23);
        Hyper hyper = new Hyper(0.1f, 0.9f, 0f, 1e-2f, true, false);
        // Segments packed with gaps of 0..3 elements, so most start at addresses not 16-byte aligned.
        long[] offsets = new long[specs.size()];
        long cursor = 5;
        for (int i = 0; i < specs.size(); i++) {
            offsets[i] = cursor;
            cursor += specs.get(i).length + i % 4;
        }
        long flatLength = cursor + 2;
        try (Model perTensor = new Model(backend, specs, rnd, false);
                Model flatModel = new Model(backend, List.of(Spec.plain(flatLength)), new Random(1), false)) {
            Memory flatW = flatModel.w[0];
            Memory flatG = flatModel.g[0];
            float[] untouched = flatModel.w0[0].clone();
            List<Segment> segments = new ArrayList<>();
            for (int i = 0; i < specs.size(); i++) {
                write(backend, flatW.slice(offsets[i], specs.get(i).length), perTensor.w0[i]);
                System.arraycopy(perTensor.w0[i], 0, untouched, (int) offsets[i], perTensor.w0[i].length);
                Segment s = Segment.of(offsets[i], specs.get(i).length).withWeightDecay(specs.get(i).decay);
                segments.add(specs.get(i).kernel == null ? s : s.withKernel(specs.get(i).kernel));
            }
            try (ScaledSgd a = perTensor.register(hyper.builder(backend)).build();
                    ScaledSgd b = hyper.builder(backend).addFlat(flatW, flatG, segments).build()) {
                assertEquals(specs.size(), b.parameterCount());
                assertEquals(a.elementCount(), b.elementCount());
                for (int step = 0; step < 3; step++) {
                    for (int i = 0; i < specs.size(); i++) {
                        float[] grad = random(rnd, (int) specs.get(i).length, 1f);
                        write(backend, perTensor.g[i], grad);
                        write(backend, flatG.slice(offsets[i], grad.length), grad);
                        Kernel k = specs.get(i).kernel;
                        if (step == 1 && k != null) {
                            float[] scale = randomScale(rnd, k.area());
                            a.setScale(i, scale);
                            b.setScale(i, Memory.of(scale));
                        }
                    }
                    a.step();
                    b.step();
                    backend.synchronize(Streams.DEFAULT);
                    float[] flat = read(backend, flatW);
                    for (int i = 0; i < specs.size(); i++) {
                        float[] expected = read(backend, perTensor.w[i]);
                        float[] actual = Arrays.copyOfRange(flat, (int) offsets[i], (int) offsets[i] + expected.length);
                        assertArrayEquals(expected, actual, backend.kind() + " step " + step + " segment " + i);
                        assertArrayEquals(read(backend, a.momentumBuffer(i)), read(backend, b.momentumBuffer(i)),
                                backend.kind() + " momentum step " + step + " segment " + i);
                    }
                    // Elements outside every segment are left alone.
                    for (int i = 0; i < specs.size(); i++) {
                        for (long j = offsets[i] + specs.get(i).length; j < (i + 1 < specs.size() ? offsets[i + 1] : flatLength); j++) {
                            assertEquals(untouched[(int) j], flat[(int) j], "gap element " + j);
                        }
                    }
                    assertEquals(untouched[0], flat[0]);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void flatBufferWithCallerMomentum(TestBackend testBackend) {
        Backend backend = testBackend.get();
        Random rnd = new Random(24);
        try (Model flat = new Model(backend, List.of(Spec.plain(1000)), rnd, true)) {
            List<Segment> segments = List.of(Segment.of(1, 27).withKernel(3, 3), Segment.of(30, 500).withWeightDecay(false),
                    Segment.of(531, 9 * 49).withKernel(Kernel.of(7, 7, Layout.OIHW, 3, 3)));
            write(backend, flat.m[0], new float[1000]);
            try (ScaledSgd sgd = ScaledSgd.builder(backend).lr(0.1f).momentum(0.5f).weightDecay(0.1f)
                    .addFlat(flat.w[0], flat.g[0], flat.m[0], segments).build()) {
                float[] grad = random(rnd, 1000, 1f);
                write(backend, flat.g[0], grad);
                sgd.step();
                backend.synchronize(Streams.DEFAULT);
                float[] m = read(backend, flat.m[0]);
                float[] view = read(backend, sgd.momentumBuffer(1));
                assertArrayEquals(Arrays.copyOfRange(m, 30, 530), view, "momentumBuffer(1) is the slice of the flat buffer");
                // First step: buf = d = g (+ decay for the decayed segments), no momentum outside segments.
                assertEquals(0f, m[0]);
                assertEquals(0f, m[28]);
                assertEquals(grad[100], m[100], 0f);
            }
        }
    }

    // ---- validation (Java side, before any native call) ---------------------------------------------

    private static final Backend CPU = Backends.cpu();

    @Test
    void nesterovRequiresMomentumAndZeroDampening() {
        try (HostBuffer w = HostBuffer.allocate(DType.FLOAT32, 4); HostBuffer g = HostBuffer.allocate(DType.FLOAT32, 4)) {
            Parameter p = Parameter.of(w.memory(), g.memory());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ScaledSgd.builder(CPU).nesterov(true).addParameter(p).build());
            assertTrue(e.getMessage().startsWith("nesterov: Nesterov momentum requires a momentum > 0 and zero dampening"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> ScaledSgd.builder(CPU).nesterov(true).momentum(0.9f).dampening(0.1f).addParameter(p).build());
            assertTrue(e.getMessage().contains("dampening = 0.1"), e.getMessage());
            ScaledSgd.builder(CPU).nesterov(true).momentum(0.9f).addParameter(p).build().close();
        }
    }

    @Test
    void hyperparametersMustBeFiniteAndNonNegative() {
        assertMessage("lr: expected a finite value >= 0, got -0.1", () -> ScaledSgd.builder(CPU).lr(-0.1f));
        assertMessage("lr: expected a finite value >= 0, got NaN", () -> ScaledSgd.builder(CPU).lr(Float.NaN));
        assertMessage("momentum: expected a finite value >= 0, got -0.5", () -> ScaledSgd.builder(CPU).momentum(-0.5f));
        assertMessage("weightDecay: expected a finite value >= 0, got Infinity",
                () -> ScaledSgd.builder(CPU).weightDecay(Float.POSITIVE_INFINITY));
        assertMessage("dampening: expected a finite value, got NaN", () -> ScaledSgd.builder(CPU).dampening(Float.NaN));
        assertMessage("initialStepCount: expected >= 0, got -1", () -> ScaledSgd.builder(CPU).initialStepCount(-1));
        assertMessage("parameters: none registered (the optimizer got an empty parameter list)", () -> ScaledSgd.builder(CPU).build());
        assertThrows(NullPointerException.class, () -> ScaledSgd.builder(null));
    }

    @Test
    void lengthsAndKernelShapesAreChecked() {
        try (HostBuffer a = HostBuffer.allocate(DType.FLOAT32, 1728); HostBuffer b = HostBuffer.allocate(DType.FLOAT32, 1728);
                HostBuffer c = HostBuffer.allocate(DType.FLOAT32, 1728)) {
            Memory w = a.memory();
            Memory g = b.memory();
            ScaledSgd.Builder builder = ScaledSgd.builder(CPU);
            for (int i = 0; i < 3; i++) {
                builder.addParameter(Parameter.of(w.slice(i, 1), c.memory().slice(i, 1)));
            }
            builder.addParameter(Parameter.of(w.slice(100, 1600), g.slice(0, 1599)));
            assertMessage("parameters[3].grads: expected 1600 elements, got 1599", builder::build);

            assertMessage("parameters[0].grads: expected 1728 elements, got 1727",
                    () -> ScaledSgd.builder(CPU).addParameter(Parameter.of(w, g.slice(0, 1727))).build());
            assertMessage("parameters[0].momentumBuffer: expected 1728 elements, got 1000",
                    () -> ScaledSgd.builder(CPU).momentum(0.9f)
                            .addParameter(Parameter.of(w, g).withMomentumBuffer(c.memory().slice(0, 1000))).build());
            assertMessage("parameters[0].momentumBuffer: given, but momentum is 0 (no momentum buffer is kept)",
                    () -> ScaledSgd.builder(CPU).addParameter(Parameter.of(w, g).withMomentumBuffer(c.memory())).build());
            assertMessage("parameters[0].weights: expected 1800 elements (kernel 3 x 3 OIHW, Cin * Cout = 200), got 1728",
                    () -> ScaledSgd.builder(CPU).addParameter(Parameter.of(w, g).withKernel(Kernel.ofWeightShape(Layout.OIHW, 10, 20, 3, 3)))
                            .build());
            // 1728 = 64 * 3 * 3 * 3 fits; 1727 is not a multiple of 9.
            ScaledSgd.builder(CPU).addParameter(Parameter.of(w, g).withKernel(Kernel.ofWeightShape(Layout.OIHW, 64, 3, 3, 3))).build().close();
            assertMessage("parameters[0].weights: 1727 elements is not a multiple of the 3 x 3 kernel (9)",
                    () -> ScaledSgd.builder(CPU).addParameter(Parameter.of(w.slice(0, 1727), g.slice(0, 1727)).withKernel(3, 3)).build());
            assertMessage("parameters[0].weights: expected 1710 elements (kernel 3 x 3 HWIO, Cin * Cout = 190), got 1728",
                    () -> ScaledSgd.builder(CPU).addParameter(Parameter.of(w, g).withKernel(Kernel.of(3, 3, Layout.HWIO, 10, 19))).build());
            assertMessage("kh: expected >= 1, got 0", () -> Kernel.of(0, 3));
            assertMessage("cin: expected >= 1, got 0", () -> Kernel.of(3, 3, Layout.HWIO, 0, 4));
            assertMessage("cin * cout: 4294967296 exceeds 2147483647 (HWIO)", () -> Kernel.of(1, 1, Layout.HWIO, 65536, 65536));
            assertMessage("shape: expected 4 dimensions (kh, kw, Cin, Cout), got [3, 3, 4]", () -> Kernel.ofWeightShape(Layout.HWIO, 3, 3, 4));
            assertMessage("offset: expected >= 0, got -1", () -> Segment.of(-1, 4));
        }
    }

    @Test
    void memoryMustBeNativeAndNotOverlap() {
        try (HostBuffer a = HostBuffer.allocate(DType.FLOAT32, 100); HostBuffer b = HostBuffer.allocate(DType.FLOAT32, 100)) {
            assertMessage("parameters[0].weights: a Java array cannot be registered (the optimizer keeps native addresses across steps);"
                    + " use native host memory (HostBuffer, a direct buffer)",
                    () -> ScaledSgd.builder(CPU).addParameter(Parameter.of(Memory.of(new float[100]), b.memory())).build());
            assertMessage("parameters[0].grads: expected FLOAT32 elements, got INT32",
                    () -> ScaledSgd.builder(CPU).addParameter(Parameter.of(a.memory(), Memory.host(b.address(), DType.INT32, 100, b)))
                            .build());
            assertMessage("parameters[1].weights: overlaps parameters[0].weights",
                    () -> ScaledSgd.builder(CPU).addParameter(Parameter.of(a.memory().slice(0, 50), b.memory().slice(0, 50)))
                            .addParameter(Parameter.of(a.memory().slice(49, 50), b.memory().slice(50, 50))).build());
            assertMessage("parameters[1] (flat[0].segments[1]).weights: overlaps parameters[0] (flat[0].segments[0]).weights",
                    () -> ScaledSgd.builder(CPU).addFlat(a.memory(), b.memory(), List.of(Segment.of(0, 10), Segment.of(5, 10))).build());
            assertMessage("parameters[1] (flat[0].segments[1]): [90, 110) lies outside the 100 elements of flat[0].weights",
                    () -> ScaledSgd.builder(CPU).addFlat(a.memory(), b.memory(), List.of(Segment.of(0, 10), Segment.of(90, 20))).build());
            assertMessage("flat[0].grads: expected 100 elements (as flat[0].weights), got 99",
                    () -> ScaledSgd.builder(CPU).addFlat(a.memory(), b.memory().slice(0, 99), List.of(Segment.of(0, 10))).build());
        }
    }

    @Test
    void cudaMemoryIsRejectedByTheCpuBackend() {
        // A fake device address: the check happens before anything touches it.
        Memory device = Memory.device(4096, DType.FLOAT32, 10, 0);
        try (HostBuffer a = HostBuffer.allocate(DType.FLOAT32, 10)) {
            assertMessage("parameters[0].grads: CUDA device memory cannot be used by the CPU backend",
                    () -> ScaledSgd.builder(CPU).addParameter(Parameter.of(a.memory(), device)).build());
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void setScaleAndStepArgumentsAreChecked(TestBackend testBackend) {
        Backend backend = testBackend.get();
        try (Model model = new Model(backend, model(), new Random(25), false);
                ScaledSgd sgd = model.register(ScaledSgd.builder(backend).momentum(0.9f)).build()) {
            assertMessage("g: expected 9 elements (the 3 x 3 kernel of parameters[0]), got 8", () -> sgd.setScale(0, new float[8]));
            assertMessage("parameterIndex: parameters[1] was registered without a kernel, so it takes no scale",
                    () -> sgd.setScale(1, new float[1]));
            assertThrows(IllegalArgumentException.class, () -> sgd.setScale(9, new float[9]));
            assertThrows(IllegalArgumentException.class, () -> sgd.momentumBuffer(-1));
            float[] bad = new float[9];
            bad[4] = Float.NaN;
            assertMessage("g[4]: expected a finite value, got NaN", () -> sgd.setScale(0, bad));
            assertMessage("g: expected 49 elements, got 9", () -> sgd.setScale(2, Memory.of(new float[9])));
            assertMessage("unscale: expected a finite value > 0, got 0.0", () -> sgd.step(0f, false));
            assertMessage("unscale: expected a finite value > 0, got NaN", () -> sgd.step(Float.NaN, true));
            assertMessage("lr: expected a finite value >= 0, got -1.0", () -> sgd.setLearningRate(-1f));
            assertEquals(0, sgd.stepCount(), "failed calls must not count as steps");

            // setScale from any memory location, read back through scale().
            float[] g = randomScale(new Random(3), 49);
            try (HostBuffer host = HostBuffer.of(g)) {
                sgd.setScale(2, host.memory());
            }
            assertArrayEquals(g, sgd.scale(2));
            float[] padded = new float[51];
            System.arraycopy(g, 0, padded, 2, 49);
            sgd.setScale(2, Memory.of(padded, 2, 49));
            assertArrayEquals(g, sgd.scale(2));
            float[] ones = new float[9];
            Arrays.fill(ones, 1f);
            assertArrayEquals(ones, sgd.scale(0), "scales start as all ones");
            if (backend instanceof CudaBackend cuda) {
                float[] h = randomScale(new Random(4), 49);
                try (DeviceBuffer device = DeviceBuffer.copyOf(cuda, Memory.of(h))) {
                    sgd.setScale(2, device.memory());
                }
                assertArrayEquals(h, sgd.scale(2));
            } else {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> sgd.setScale(2, Memory.device(4096, DType.FLOAT32, 49, 0)));
                assertTrue(e.getMessage().startsWith("g: device memory of cuda:0 given to CPU"), e.getMessage());
            }
        }
    }

    @Test
    void momentumBufferNeedsMomentum() {
        try (Model model = new Model(CPU, model(), new Random(26), false);
                ScaledSgd sgd = model.register(ScaledSgd.builder(CPU)).build()) {
            assertMessage("momentumBuffer: momentum is 0, so the optimizer keeps no momentum buffers", () -> sgd.momentumBuffer(0),
                    IllegalStateException.class);
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void closeReleasesMemoryAndUseAfterCloseThrows(TestBackend testBackend) {
        Backend backend = testBackend.get();
        try (Model model = new Model(backend, oddSizes(), new Random(27), false)) {
            long host = HostBuffer.liveBytes();
            long device = DeviceBuffer.liveBytes();
            ScaledSgd sgd = model.register(ScaledSgd.builder(backend).momentum(0.9f)).build();
            assertTrue(HostBuffer.liveBytes() + DeviceBuffer.liveBytes() > host + device, "the optimizer owns its state");
            sgd.step();
            Memory buf = sgd.momentumBuffer(4);
            sgd.close();
            sgd.close(); // idempotent
            assertEquals(host, HostBuffer.liveBytes(), "host bytes after close");
            assertEquals(device, DeviceBuffer.liveBytes(), "device bytes after close");
            assertMessage("ScaledSgd is closed", sgd::step, IllegalStateException.class);
            assertMessage("ScaledSgd is closed", () -> sgd.setLearningRate(0.1f), IllegalStateException.class);
            assertMessage("ScaledSgd is closed", () -> sgd.setScale(5, new float[9]), IllegalStateException.class);
            assertMessage("ScaledSgd is closed", () -> sgd.momentumBuffer(0), IllegalStateException.class);
            assertThrows(IllegalStateException.class, buf::address, "views of the owned momentum die with the optimizer");
        }
    }

    @Test
    void registeredMemoryClosedByItsOwnerIsRefused() {
        HostBuffer w = HostBuffer.allocate(DType.FLOAT32, 10);
        try (HostBuffer g = HostBuffer.allocate(DType.FLOAT32, 10);
                ScaledSgd sgd = ScaledSgd.builder(CPU).addParameter(Parameter.of(w.memory(), g.memory())).build()) {
            w.close();
            assertThrows(IllegalStateException.class, sgd::step);
            assertEquals(0, sgd.stepCount());
        }
    }

    /**
     * maximize against torch.optim.SGD's _single_tensor_sgd, transcribed line by line in float64 (not the
     * SPEC oracle): the gradient is negated first, then decay is added, then momentum. With maximize the
     * decay must still pull the weights towards 0 and the momentum buffer must hold -g + wd w on step 1.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void maximizeMatchesTorchOptimSgd(TestBackend testBackend) {
        Backend backend = testBackend.get();
        long seed = 20261201;
        Random rnd = new Random(seed);
        int n = 37; // odd: vector bodies and scalar tails both run
        double lr = 0.05, momentum = 0.9, dampening = 0.1, wd = 0.2;
        double[] buf = null;
        try (Model model = new Model(backend, List.of(Spec.plain(n)), rnd, false);
                ScaledSgd sgd = model.register(ScaledSgd.builder(backend).lr((float) lr).momentum((float) momentum)
                        .dampening((float) dampening).weightDecay((float) wd).maximize(true)).build()) {
            double[] param = new double[n];
            for (int i = 0; i < n; i++) {
                param[i] = model.w0[0][i];
            }
            for (int step = 0; step < 5; step++) {
                float[] grad = step == 4 ? new float[n] : random(rnd, n, 0.1f); // step 5: decay and momentum alone
                write(backend, model.g[0], grad);
                sgd.step();
                // torch/optim/sgd.py, _single_tensor_sgd:
                double[] d = new double[n];
                for (int i = 0; i < n; i++) {
                    d[i] = -grad[i];                         // grad = grad if not maximize else -grad
                    d[i] += wd * param[i];                   // grad = grad.add(param, alpha=weight_decay)
                }
                if (buf == null) {
                    buf = d.clone();                         // buf = torch.clone(grad).detach()
                } else {
                    for (int i = 0; i < n; i++) {
                        buf[i] = momentum * buf[i] + (1 - dampening) * d[i]; // buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                    }
                }
                for (int i = 0; i < n; i++) {
                    param[i] += -lr * buf[i];                // param.add_(grad, alpha=-lr), grad = buf
                }
                String where = backend.kind() + " seed " + seed + " n " + n + " step " + (step + 1);
                assertClose(param, read(backend, model.w[0]), where + ": weights");
                assertClose(buf, read(backend, sgd.momentumBuffer(0)), where + ": momentum buffer (torch's sign)");
            }
        }
    }

    @Test
    void maximizeStillDecaysTheWeights() {
        // Zero gradient, no momentum: one step is w - lr wd w whatever maximize says.
        float[] w0 = {1f, -2f, 3f};
        try (HostBuffer w = HostBuffer.of(w0); HostBuffer g = HostBuffer.of(new float[3]);
                ScaledSgd sgd = ScaledSgd.builder(CPU).lr(0.5f).weightDecay(0.1f).maximize(true)
                        .addParameter(Parameter.of(w.memory(), g.memory())).build()) {
            sgd.step();
            assertArrayEquals(new float[] {0.95f, -1.9f, 2.85f}, w.toFloatArray(), 1e-6f);
        }
    }

    // ---- helpers --------------------------------------------------------------------------------------

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
        assertMessage(expected, call, IllegalArgumentException.class);
    }

    private static <T extends Throwable> void assertMessage(String expected, org.junit.jupiter.api.function.Executable call, Class<T> type) {
        T e = assertThrows(type, call);
        assertEquals(expected, e.getMessage());
    }
}
