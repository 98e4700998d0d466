package io.gradshape.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.DType;
import io.gradshape.HostBuffer;
import io.gradshape.PowerGrad;
import io.gradshape.RequiresCuda;
import io.gradshape.ScaledSgd;
import io.gradshape.SpatialDependence;
import io.gradshape.io.Npy;
import io.gradshape.io.NpyArray;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The kernel commands ({@code dependence}, {@code sgd-step}, {@code pgt}) end to end, in process: inputs
 * written as .npy files, the command run on the CPU backend, its outputs compared bit for bit with what
 * the Java API returns for the same inputs on the same backend; then the bad-argument paths, each with
 * its exit status and one-line message.
 */
class KernelCommandsTest {
    private static final Backend CPU = Backends.cpu();

    @TempDir
    Path dir;

    // ---- dependence ---------------------------------------------------------------------------------

    static Stream<Arguments> dependenceVariants() {
        return Stream.of(
                Arguments.of(List.of(), (UnaryOperator<SpatialDependence.Options>) o -> o),
                Arguments.of(List.of("--bins", "16", "--range", "channel"),
                        (UnaryOperator<SpatialDependence.Options>) o -> o.bins(16).range(SpatialDependence.RangeMode.CHANNEL)),
                Arguments.of(List.of("--range", "-1,1.5"),
                        (UnaryOperator<SpatialDependence.Options>) o -> o.fixedRange(-1f, 1.5f)),
                Arguments.of(List.of("--remove-zeros"), (UnaryOperator<SpatialDependence.Options>) o -> o.removeZeros(true)),
                Arguments.of(List.of("--k", "1"), (UnaryOperator<SpatialDependence.Options>) o -> o.k(1f)),
                Arguments.of(List.of("--order", "paper"),
                        (UnaryOperator<SpatialDependence.Options>) o -> o.order(SpatialDependence.Order.PAPER)),
                Arguments.of(List.of("--kernel", "5x3"),
                        (UnaryOperator<SpatialDependence.Options>) o -> o.kernel(5, 3).padding(2, 1)),
                Arguments.of(List.of("--kernel", "5x3", "--padding", "0,0"),
                        (UnaryOperator<SpatialDependence.Options>) o -> o.kernel(5, 3).padding(0, 0)));
    }

    @ParameterizedTest
    @MethodSource("dependenceVariants")
    void dependenceMatchesTheApi(List<String> options, UnaryOperator<SpatialDependence.Options> expected) throws IOException {
        int n = 2;
        int c = 3;
        int h = 9;
        int w = 7;
        Random rnd = new Random(11);
        float[] x = new float[n * c * h * w];
        for (int i = 0; i < x.length; i++) {
            // ReLU-like with a smooth trend, so that neighbours depend on each other and zeros occur.
            x[i] = Math.max(0f, (float) Math.sin(i * 0.3) + 0.5f * (rnd.nextFloat() - 0.3f));
        }
        Path input = write("fm.npy", NpyArray.of(x, n, c, h, w));
        List<String> args = new ArrayList<>(List.of("dependence", "--input", input.toString()));
        args.addAll(options);
        Path out = dir.resolve("out");
        CliRun r = run(args, out);
        assertEquals(0, r.status(), r.toString());

        SpatialDependence.Options o = expected.apply(SpatialDependence.Options.defaults());
        SpatialDependence.Result api = SpatialDependence.compute(CPU, x, n, c, h, w, o);
        int kh = o.kernelH();
        int kw = o.kernelW();
        assertBits(api.nmi(), read(out.resolve("nmi.npy"), c, kh, kw), "nmi " + options);
        assertBits(api.s(), read(out.resolve("S.npy"), kh, kw), "S " + options);
        assertBits(api.g(), read(out.resolve("G.npy"), kh, kw), "G " + options);
        assertTrue(r.out().contains("wrote " + out.resolve("G.npy") + ": float32 (" + kh + ", " + kw + ")"), r.out());
    }

    @Test
    void dependenceReadsNhwcAndFloat64() throws IOException {
        int n = 2;
        int c = 4;
        int h = 6;
        int w = 8;
        Random rnd = new Random(12);
        double[] x = new double[n * h * w * c];
        for (int i = 0; i < x.length; i++) {
            x[i] = Math.cos(i / 4 * 0.2) + 0.3 * rnd.nextGaussian();
        }
        Path input = write("fm64.npy", NpyArray.of(x, n, h, w, c));
        Path out = dir.resolve("out");
        CliRun r = run(List.of("dependence", "--input", input.toString(), "--layout", "nhwc"), out);
        assertEquals(0, r.status(), r.toString());

        float[] rounded = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            rounded[i] = (float) x[i];
        }
        SpatialDependence.Result api = SpatialDependence.compute(CPU, rounded, n, c, h, w,
                SpatialDependence.Options.defaults().layout(SpatialDependence.Layout.NHWC));
        assertBits(api.nmi(), read(out.resolve("nmi.npy"), c, 3, 3), "nmi");
        assertBits(api.g(), read(out.resolve("G.npy"), 3, 3), "G");
    }

    // ---- sgd-step -----------------------------------------------------------------------------------

    /** One tensor's step through the Java API: weights, then the momentum buffer (null without momentum). */
    private static float[][] sgdApi(UnaryOperator<ScaledSgd.Builder> hyper, float[] w0, float[] buffer0, ScaledSgd.Kernel kernel,
            float[] scale, boolean momentum, float[]... gradsPerStep) {
        try (HostBuffer w = HostBuffer.of(w0); HostBuffer g = HostBuffer.allocate(DType.FLOAT32, w0.length);
                HostBuffer m = HostBuffer.of(buffer0 != null ? buffer0 : new float[w0.length])) {
            ScaledSgd.Parameter p = ScaledSgd.Parameter.of(w.memory(), g.memory());
            if (momentum) {
                p = p.withMomentumBuffer(m.memory());
            }
            if (kernel != null) {
                p = p.withKernel(kernel);
            }
            ScaledSgd.Builder b = hyper.apply(ScaledSgd.builder(CPU)).initialStepCount(buffer0 != null ? 1 : 0).addParameter(p);
            try (ScaledSgd sgd = b.build()) {
                if (scale != null) {
                    sgd.setScale(0, scale);
                }
                for (float[] grads : gradsPerStep) {
                    g.asByteBuffer().asFloatBuffer().put(grads);
                    sgd.step();
                }
            }
            return new float[][] {contents(w), momentum ? contents(m) : null};
        }
    }

    private static float[] contents(HostBuffer b) {
        float[] values = new float[(int) b.length()];
        b.asByteBuffer().asFloatBuffer().get(values);
        return values;
    }

    static Stream<Arguments> sgdVariants() {
        return Stream.of(
                Arguments.of(List.of("--lr", "0.1"), (UnaryOperator<ScaledSgd.Builder>) b -> b.lr(0.1f)),
                Arguments.of(List.of("--lr", "0.1", "--momentum", "0.9"),
                        (UnaryOperator<ScaledSgd.Builder>) b -> b.lr(0.1f).momentum(0.9f)),
                Arguments.of(List.of("--lr", "0.05", "--momentum", "0.9", "--nesterov"),
                        (UnaryOperator<ScaledSgd.Builder>) b -> b.lr(0.05f).momentum(0.9f).nesterov(true)),
                Arguments.of(List.of("--lr", "0.1", "--momentum", "0.8", "--dampening", "0.3", "--weight-decay", "1e-2"),
                        (UnaryOperator<ScaledSgd.Builder>) b -> b.lr(0.1f).momentum(0.8f).dampening(0.3f).weightDecay(1e-2f)),
                Arguments.of(List.of("--lr=0.2", "--weight-decay", "0.001", "--maximize"),
                        (UnaryOperator<ScaledSgd.Builder>) b -> b.lr(0.2f).weightDecay(0.001f).maximize(true)),
                Arguments.of(List.of("--lr", "0.1", "--momentum", "0.9", "--dampening", "-0.5"),
                        (UnaryOperator<ScaledSgd.Builder>) b -> b.lr(0.1f).momentum(0.9f).dampening(-0.5f)));
    }

    @ParameterizedTest
    @MethodSource("sgdVariants")
    void sgdStepMatchesTheApi(List<String> options, UnaryOperator<ScaledSgd.Builder> hyper) throws IOException {
        Random rnd = new Random(21);
        int[] shape = {5, 3, 3, 3};
        float[] w = random(rnd, 135, 1f);
        float[] g = random(rnd, 135, 0.5f);
        float[] scale = scale(rnd, 9);
        boolean momentum = options.contains("--momentum");
        for (boolean scaled : new boolean[] {false, true}) {
            List<String> args = new ArrayList<>(List.of("sgd-step",
                    "--weights", write("w.npy", NpyArray.of(w, shape)).toString(),
                    "--grads", write("g.npy", NpyArray.of(g, shape)).toString()));
            if (scaled) {
                args.addAll(List.of("--scale", write("G.npy", NpyArray.of(scale, 3, 3)).toString()));
            }
            args.addAll(options);
            Path out = dir.resolve(scaled ? "scaled" : "plain");
            CliRun r = run(args, out);
            assertEquals(0, r.status(), r.toString());

            float[][] api = sgdApi(hyper, w, null, scaled ? ScaledSgd.Kernel.of(3, 3) : null, scaled ? scale : null, momentum, g);
            String what = options + (scaled ? " with --scale" : "");
            assertBits(api[0], read(out.resolve("weights.npy"), shape), "weights " + what);
            if (momentum) {
                assertBits(api[1], read(out.resolve("momentum.npy"), shape), "momentum " + what);
            } else {
                assertFalse(Files.exists(out.resolve("momentum.npy")), "momentum.npy without --momentum: " + what);
            }
            assertFalse(Arrays.equals(w, read(out.resolve("weights.npy"), shape)), "the step moved the weights: " + what);
        }
    }

    @Test
    void sgdStepHwioWithScale() throws IOException {
        Random rnd = new Random(22);
        int[] shape = {3, 5, 4, 2}; // kh, kw, Cin, Cout
        float[] w = random(rnd, 120, 1f);
        float[] g = random(rnd, 120, 0.5f);
        float[] scale = scale(rnd, 15);
        Path out = dir.resolve("out");
        CliRun r = run(List.of("sgd-step", "--weights", write("w.npy", NpyArray.of(w, shape)).toString(),
                "--grads", write("g.npy", NpyArray.of(g, shape)).toString(),
                "--scale", write("G.npy", NpyArray.of(scale, 3, 5)).toString(), "--layout", "hwio",
                "--lr", "0.1", "--momentum", "0.9", "--weight-decay", "1e-3"), out);
        assertEquals(0, r.status(), r.toString());

        float[][] api = sgdApi(b -> b.lr(0.1f).momentum(0.9f).weightDecay(1e-3f), w, null,
                ScaledSgd.Kernel.ofWeightShape(ScaledSgd.Layout.HWIO, 3, 5, 4, 2), scale, true, g);
        assertBits(api[0], read(out.resolve("weights.npy"), shape), "weights");
        assertBits(api[1], read(out.resolve("momentum.npy"), shape), "momentum");
        // The same data read as OIHW scales other elements: the layout matters.
        float[][] oihw = sgdApi(b -> b.lr(0.1f).momentum(0.9f).weightDecay(1e-3f), w, null,
                ScaledSgd.Kernel.of(4, 2), scale(new Random(1), 8), true, g);
        assertFalse(Arrays.equals(oihw[0], api[0]));
    }

    @Test
    void sgdStepContinuingFromTheBufferEqualsTwoStepsOfOneOptimizer() throws IOException {
        Random rnd = new Random(23);
        int[] shape = {4, 2, 3, 3};
        float[] w = random(rnd, 72, 1f);
        float[] g1 = random(rnd, 72, 0.5f);
        float[] g2 = random(rnd, 72, 0.5f);
        float[] scale = scale(rnd, 9);
        String gFile = write("G.npy", NpyArray.of(scale, 3, 3)).toString();
        List<String> hyper = List.of("--lr", "0.1", "--momentum", "0.9", "--dampening", "0.2", "--weight-decay", "1e-3");
        Path first = dir.resolve("first");
        List<String> args = new ArrayList<>(List.of("sgd-step", "--weights", write("w.npy", NpyArray.of(w, shape)).toString(),
                "--grads", write("g1.npy", NpyArray.of(g1, shape)).toString(), "--scale", gFile));
        args.addAll(hyper);
        CliRun r1 = run(args, first);
        assertEquals(0, r1.status(), r1.toString());
        assertTrue(r1.out().contains("first step (buffer = d)"), r1.out());

        args = new ArrayList<>(List.of("sgd-step", "--weights", first.resolve("weights.npy").toString(),
                "--grads", write("g2.npy", NpyArray.of(g2, shape)).toString(),
                "--momentum-buffer", first.resolve("momentum.npy").toString(), "--scale", gFile));
        args.addAll(hyper);
        Path second = dir.resolve("second");
        CliRun r2 = run(args, second);
        assertEquals(0, r2.status(), r2.toString());
        assertTrue(r2.out().contains("continuing the momentum buffer"), r2.out());

        UnaryOperator<ScaledSgd.Builder> h = b -> b.lr(0.1f).momentum(0.9f).dampening(0.2f).weightDecay(1e-3f);
        float[][] twoSteps = sgdApi(h, w, null, ScaledSgd.Kernel.of(3, 3), scale, true, g1, g2);
        assertBits(twoSteps[0], read(second.resolve("weights.npy"), shape), "weights after two steps");
        assertBits(twoSteps[1], read(second.resolve("momentum.npy"), shape), "momentum after two steps");
        // Treated as a first step, the given buffer would be ignored (buffer = d): a different result.
        float[][] restarted = sgdApi(h, read(first.resolve("weights.npy"), shape), null, ScaledSgd.Kernel.of(3, 3), scale, true, g2);
        assertFalse(Arrays.equals(restarted[0], twoSteps[0]), "a continued step differs from a first one");
    }

    @Test
    void sgdStepResumesAnyBufferOfAnyShapeAndConvertsFloat64() throws IOException {
        Random rnd = new Random(24);
        float[] w = random(rnd, 10, 1f);
        double[] g = new double[10];
        for (int i = 0; i < g.length; i++) {
            g[i] = rnd.nextGaussian() * 0.1;
        }
        float[] buffer = random(rnd, 10, 0.2f);
        Path out = dir.resolve("out");
        CliRun r = run(List.of("sgd-step", "--weights", write("bias.npy", NpyArray.of(w, 10)).toString(),
                "--grads", write("g64.npy", NpyArray.of(g, 10)).toString(),
                "--momentum-buffer", write("m.npy", NpyArray.of(buffer, 10)).toString(),
                "--lr", "0.01", "--momentum", "0.95", "--nesterov"), out);
        assertEquals(0, r.status(), r.toString());

        float[] rounded = new float[g.length];
        for (int i = 0; i < g.length; i++) {
            rounded[i] = (float) g[i];
        }
        float[][] api = sgdApi(b -> b.lr(0.01f).momentum(0.95f).nesterov(true), w, buffer, null, null, true, rounded);
        assertBits(api[0], read(out.resolve("weights.npy"), 10), "weights");
        assertBits(api[1], read(out.resolve("momentum.npy"), 10), "momentum");
    }

    // ---- pgt ----------------------------------------------------------------------------------------

    @ParameterizedTest
    @CsvSource({
            "int32, mean, 0.25, 0",
            "int64, mean, 0.25, 0",
            "int64, sum,  0.3,  0.1",
            "int32, none, 1,    0",
            "int64, none, 0.5,  0.2",
            "int32, mean, 0,    0"})
    void pgtWithLabelsMatchesTheApi(String labelType, String reduction, double alpha, double smoothing) throws IOException {
        int b = 7;
        int c = 5;
        Random rnd = new Random(31);
        float[] z = random(rnd, b * c, 4f);
        int[] y = new int[b];
        for (int i = 0; i < b; i++) {
            y[i] = rnd.nextInt(c);
        }
        y[3] = -100; // PyTorch's default ignore index
        NpyArray labels = labelType.equals("int32") ? NpyArray.of(y, b) : NpyArray.of(Arrays.stream(y).asLongStream().toArray(), b);
        Path out = dir.resolve("out");
        CliRun r = run(List.of("pgt", "--logits", write("z.npy", NpyArray.of(z, b, c)).toString(),
                "--labels", write("y.npy", labels).toString(), "--alpha", Double.toString(alpha),
                "--smoothing", Double.toString(smoothing), "--reduction", reduction), out);
        assertEquals(0, r.status(), r.toString());

        PowerGrad.Options o = PowerGrad.Options.of(alpha).withSmoothing(smoothing).withReduction(reduction(reduction));
        float[] grad = new float[b * c];
        PowerGrad.Result api = PowerGrad.compute(CPU, z, b, c, y, o, grad);
        assertBits(grad, read(out.resolve("grad.npy"), b, c), "grad");
        assertLoss(api, reduction, out.resolve("loss.npy"), b);
        assertEquals(b - 1, api.countedRows());
        assertTrue(r.out().contains("6 of 7 rows counted"), r.out());
        for (int j = 0; j < c; j++) {
            assertEquals(0f, read(out.resolve("grad.npy"), b, c)[3 * c + j], "ignored row 3 has a zero gradient");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"mean", "sum", "none"})
    void pgtWithTargetsMatchesTheApi(String reduction) throws IOException {
        int b = 6;
        int c = 9;
        Random rnd = new Random(32);
        double[] z = new double[b * c]; // float64 logits, rounded by the command
        float[] rounded = new float[b * c];
        for (int i = 0; i < z.length; i++) {
            z[i] = rnd.nextGaussian() * 3;
            rounded[i] = (float) z[i];
        }
        float[] q = new float[b * c];
        for (int row = 0; row < b; row++) {
            float sum = 0;
            for (int j = 0; j < c; j++) {
                q[row * c + j] = rnd.nextFloat();
                sum += q[row * c + j];
            }
            for (int j = 0; j < c; j++) {
                q[row * c + j] /= sum;
            }
        }
        Path out = dir.resolve("out");
        CliRun r = run(List.of("pgt", "--logits", write("z64.npy", NpyArray.of(z, b, c)).toString(),
                "--targets", write("q.npy", NpyArray.of(q, b, c)).toString(), "--alpha", "0.25", "--smoothing", "0.05",
                "--reduction", reduction), out);
        assertEquals(0, r.status(), r.toString());

        PowerGrad.Options o = PowerGrad.Options.of(0.25f).withSmoothing(0.05f).withReduction(reduction(reduction));
        float[] grad = new float[b * c];
        PowerGrad.Result api = PowerGrad.computeWithTargets(CPU, rounded, b, c, q, o, grad);
        assertBits(grad, read(out.resolve("grad.npy"), b, c), "grad");
        assertLoss(api, reduction, out.resolve("loss.npy"), b);
    }

    @Test
    void pgtIgnoreIndex() throws IOException {
        int b = 5;
        int c = 4;
        float[] z = random(new Random(33), b * c, 2f);
        int[] y = {0, 2, 3, 2, 1};
        Path logits = write("z.npy", NpyArray.of(z, b, c));
        Path labels = write("y.npy", NpyArray.of(y, b));
        Path out = dir.resolve("out");
        // A real class may be the ignore index: the rows labelled 2 drop out.
        CliRun r = run(List.of("pgt", "--logits", logits.toString(), "--labels", labels.toString(), "--alpha", "0.25",
                "--ignore-index", "2"), out);
        assertEquals(0, r.status(), r.toString());
        float[] grad = new float[b * c];
        PowerGrad.Result api = PowerGrad.compute(CPU, z, b, c, y, PowerGrad.Options.of(0.25).withIgnoreIndex(2), grad);
        assertEquals(3, api.countedRows());
        assertBits(grad, read(out.resolve("grad.npy"), b, c), "grad");
        assertLoss(api, "mean", out.resolve("loss.npy"), b);

        int[] negative = {0, -1, 3, -1, 1};
        r = run(List.of("pgt", "--logits", logits.toString(), "--labels", write("yn.npy", NpyArray.of(negative, b)).toString(),
                "--alpha", "0.25", "--ignore-index", "-1", "--reduction", "sum"), out);
        assertEquals(0, r.status(), r.toString());
        api = PowerGrad.compute(CPU, z, b, c, negative,
                PowerGrad.Options.of(0.25).withIgnoreIndex(-1).withReduction(PowerGrad.Reduction.SUM), grad);
        assertBits(grad, read(out.resolve("grad.npy"), b, c), "grad, --ignore-index -1");
        assertLoss(api, "sum", out.resolve("loss.npy"), b);
    }

    // ---- bad arguments ------------------------------------------------------------------------------

    @Test
    void badSgdArguments() throws IOException {
        Random rnd = new Random(41);
        String w = write("w.npy", NpyArray.of(random(rnd, 54, 1f), 2, 3, 3, 3)).toString();
        String g = write("g.npy", NpyArray.of(random(rnd, 54, 1f), 2, 3, 3, 3)).toString();
        String flat = write("flat.npy", NpyArray.of(random(rnd, 54, 1f), 54)).toString();
        String out = dir.resolve("out").toString();

        assertFails(2, "missing required option --lr (see 'gradshape sgd-step --help')",
                "sgd-step", "--weights", w, "--grads", g, "--out", out);
        assertFails(2, "--lr: '-1' must be >= 0", "sgd-step", "--weights", w, "--grads", g, "--lr", "-1", "--out", out);
        assertFails(2, "--nesterov needs --momentum > 0", "sgd-step", "--weights", w, "--grads", g, "--lr", "0.1",
                "--nesterov", "--out", out);
        assertFails(2, "--dampening: '0.1' must be 0 with --nesterov", "sgd-step", "--weights", w, "--grads", g,
                "--lr", "0.1", "--momentum", "0.9", "--dampening", "0.1", "--nesterov", "--out", out);
        assertFails(2, "--momentum-buffer needs --momentum > 0", "sgd-step", "--weights", w, "--grads", g,
                "--momentum-buffer", g, "--lr", "0.1", "--out", out);
        assertFails(2, "--layout applies only with --scale", "sgd-step", "--weights", w, "--grads", g, "--layout", "hwio",
                "--lr", "0.1", "--out", out);
        assertFails(2, "--momentum: '-0.5' must be >= 0", "sgd-step", "--weights", w, "--grads", g, "--lr", "0.1",
                "--momentum", "-0.5", "--out", out);

        String wrongG = write("G32.npy", NpyArray.of(new float[6], 3, 2)).toString();
        assertFails(1, wrongG + ": expected shape (3, 3) (the 3x3 kernel of " + w + " in oihw), got (3, 2)",
                "sgd-step", "--weights", w, "--grads", g, "--scale", wrongG, "--lr", "0.1", "--out", out);
        // The same file as HWIO [kh][kw][Cin][Cout]: its kernel is 2x3.
        assertFails(1, wrongG + ": expected shape (2, 3) (the 2x3 kernel of " + w + " in hwio), got (3, 2)",
                "sgd-step", "--weights", w, "--grads", g, "--scale", wrongG, "--layout", "hwio", "--lr", "0.1", "--out", out);
        float[] nan = new float[9];
        nan[5] = Float.NaN;
        String nanG = write("Gnan.npy", NpyArray.of(nan, 3, 3)).toString();
        assertFails(1, nanG + ": G[1][2] is NaN; the scale must be finite",
                "sgd-step", "--weights", w, "--grads", g, "--scale", nanG, "--lr", "0.1", "--out", out);
        assertFails(1, flat + ": expected a 4-D array [Cout][Cin][kh][kw], got float32 (54,)",
                "sgd-step", "--weights", flat, "--grads", flat, "--scale", nanG, "--lr", "0.1", "--out", out);
        assertFails(1, flat + ": expected shape (2, 3, 3, 3) (the shape of " + w + "), got (54,)",
                "sgd-step", "--weights", w, "--grads", flat, "--lr", "0.1", "--out", out);
        assertFails(1, flat + ": expected shape (2, 3, 3, 3) (the shape of " + w + "), got (54,)",
                "sgd-step", "--weights", w, "--grads", g, "--momentum-buffer", flat, "--momentum", "0.9", "--lr", "0.1", "--out", out);
        String empty = write("empty.npy", NpyArray.of(new float[0], 0, 3)).toString();
        assertFails(1, empty + ": no elements to update (0, 3)",
                "sgd-step", "--weights", empty, "--grads", empty, "--lr", "0.1", "--out", out);

        Path text = dir.resolve("w.txt");
        Files.writeString(text, "1 2 3\n");
        assertFails(1, text + ": not a .npy file", "sgd-step", "--weights", text.toString(), "--grads", g, "--lr", "0.1", "--out", out);
        assertFails(1, dir.resolve("missing.npy") + ": no such file or directory",
                "sgd-step", "--weights", dir.resolve("missing.npy").toString(), "--grads", g, "--lr", "0.1", "--out", out);
        assertFalse(Files.exists(dir.resolve("out")), "no output after a failure");
    }

    @Test
    void badPgtArguments() throws IOException {
        Random rnd = new Random(42);
        String z = write("z.npy", NpyArray.of(random(rnd, 12, 1f), 3, 4)).toString();
        String y = write("y.npy", NpyArray.of(new int[] {0, 1, 3}, 3)).toString();
        String q = write("q.npy", NpyArray.of(new float[12], 3, 4)).toString();
        String out = dir.resolve("out").toString();

        assertFails(2, "missing required option --alpha", "pgt", "--logits", z, "--labels", y, "--out", out);
        assertFails(2, "--labels and --targets cannot be combined", "pgt", "--logits", z, "--labels", y, "--targets", q,
                "--alpha", "0.25", "--out", out);
        assertFails(2, "give --labels (class indices) or --targets (probability rows)", "pgt", "--logits", z,
                "--alpha", "0.25", "--out", out);
        assertFails(2, "--alpha: '-1' must be >= 0 (see 'gradshape pgt --help')", "pgt", "--logits", z, "--labels", y,
                "--alpha", "-1", "--out", out);
        assertFails(2, "--smoothing: '1.5' must be in [0, 1]", "pgt", "--logits", z, "--labels", y, "--alpha", "1",
                "--smoothing", "1.5", "--out", out);
        assertFails(2, "--ignore-index applies only with --labels", "pgt", "--logits", z, "--targets", q, "--alpha", "1",
                "--ignore-index", "0", "--out", out);
        assertFails(2, "--reduction: 'avg' is not one of mean, sum, none", "pgt", "--logits", z, "--labels", y,
                "--alpha", "1", "--reduction", "avg", "--out", out);

        String outOfRange = write("y9.npy", NpyArray.of(new long[] {0, 9, 1}, 3)).toString();
        assertFails(1, outOfRange + ": y[1] = 9 is outside [0, 4) and is not the ignore index -100",
                "pgt", "--logits", z, "--labels", outOfRange, "--alpha", "0.25", "--out", out);
        String huge = write("yhuge.npy", NpyArray.of(new long[] {0, 1L << 40, 1}, 3)).toString();
        assertFails(1, huge + ": y[1] = 1099511627776 is outside [0, 4)",
                "pgt", "--logits", z, "--labels", huge, "--alpha", "0.25", "--out", out);
        String floatLabels = write("yf.npy", NpyArray.of(new float[] {0, 1, 2}, 3)).toString();
        assertFails(1, floatLabels + ": expected integers (int32 or int64), got float32",
                "pgt", "--logits", z, "--labels", floatLabels, "--alpha", "0.25", "--out", out);
        String short_ = write("y2.npy", NpyArray.of(new int[] {0, 1}, 2)).toString();
        assertFails(1, short_ + ": expected shape (3,) (one label per row of " + z + "), got (2,)",
                "pgt", "--logits", z, "--labels", short_, "--alpha", "0.25", "--out", out);
        String wrongTargets = write("q43.npy", NpyArray.of(new float[12], 4, 3)).toString();
        assertFails(1, wrongTargets + ": expected shape (3, 4) (the shape of " + z + "), got (4, 3)",
                "pgt", "--logits", z, "--targets", wrongTargets, "--alpha", "0.25", "--out", out);
        String flat = write("zflat.npy", NpyArray.of(new float[12], 12)).toString();
        assertFails(1, flat + ": expected a 2-D array [B][C], got float32 (12,)",
                "pgt", "--logits", flat, "--labels", y, "--alpha", "0.25", "--out", out);
        float[] inf = random(rnd, 12, 1f);
        inf[6] = Float.POSITIVE_INFINITY;
        String zInf = write("zinf.npy", NpyArray.of(inf, 3, 4)).toString();
        assertFails(1, zInf + ": z[1][2] is Infinity; logits must be finite",
                "pgt", "--logits", zInf, "--labels", y, "--alpha", "0.25", "--out", out);
        assertFalse(Files.exists(dir.resolve("out")), "no output after a failure");
    }

    @Test
    void badDependenceArguments() throws IOException {
        String x = write("fm.npy", NpyArray.of(new float[2 * 3 * 5 * 5], 2, 3, 5, 5)).toString();
        String out = dir.resolve("out").toString();
        assertFails(2, "missing required option --input", "dependence", "--out", out);
        assertFails(2, "--kernel: '4x3' must have both sizes odd and >= 3", "dependence", "--input", x, "--kernel", "4x3", "--out", out);
        assertFails(2, "--bins: '1' must be 'sturges' or an integer from 2 to 256", "dependence", "--input", x, "--bins", "1",
                "--out", out);
        String threeD = write("fm3.npy", NpyArray.of(new float[27], 3, 3, 3)).toString();
        assertFails(1, threeD + ": expected a 4-D array [N][C][H][W], got float32 (3, 3, 3)", "dependence", "--input", threeD,
                "--out", out);
    }

    @Test
    void helpDescribesTheOutputs() {
        CliRun sgd = CliRun.of("sgd-step", "--help");
        assertEquals(0, sgd.status(), sgd.toString());
        assertTrue(sgd.out().startsWith("usage: gradshape sgd-step --weights FILE --grads FILE --lr X --out DIR [options]\n"),
                sgd.out());
        assertTrue(sgd.out().contains("momentum.npy is not written"), sgd.out());
        CliRun pgt = CliRun.of("help", "pgt");
        assertEquals(0, pgt.status(), pgt.toString());
        assertTrue(pgt.out().startsWith("usage: gradshape pgt --logits FILE --alpha X --out DIR [options]\n"), pgt.out());
        assertTrue(pgt.out().contains("--ignore-index N"), pgt.out());
        List<String> names = MainTest.commandNames();
        assertEquals(List.of("info", "dependence", "sgd-step", "pgt"), names.subList(0, 4));
    }

    @Test
    @RequiresCuda
    void sgdStepAndPgtOnCuda() throws IOException {
        Random rnd = new Random(51);
        int[] shape = {6, 4, 3, 3};
        float[] w = random(rnd, 216, 1f);
        float[] g = random(rnd, 216, 0.5f);
        float[] m = random(rnd, 216, 0.2f);
        float[] scale = scale(rnd, 9);
        Path out = dir.resolve("sgd");
        CliRun r = run(List.of("sgd-step", "--weights", write("w.npy", NpyArray.of(w, shape)).toString(),
                "--grads", write("g.npy", NpyArray.of(g, shape)).toString(),
                "--momentum-buffer", write("m.npy", NpyArray.of(m, shape)).toString(),
                "--scale", write("G.npy", NpyArray.of(scale, 3, 3)).toString(),
                "--lr", "0.1", "--momentum", "0.9", "--weight-decay", "1e-3"), out, "cuda");
        assertEquals(0, r.status(), r.toString());
        // The device fuses multiply-adds the CPU may not: close, not identical.
        float[][] cpu = sgdApi(b -> b.lr(0.1f).momentum(0.9f).weightDecay(1e-3f), w, m, ScaledSgd.Kernel.of(3, 3), scale, true, g);
        assertClose(cpu[0], read(out.resolve("weights.npy"), shape), "weights");
        assertClose(cpu[1], read(out.resolve("momentum.npy"), shape), "momentum");

        int b = 33;
        int c = 10;
        float[] z = random(rnd, b * c, 5f);
        int[] y = new int[b];
        for (int i = 0; i < b; i++) {
            y[i] = rnd.nextInt(c);
        }
        out = dir.resolve("pgt");
        r = run(List.of("pgt", "--logits", write("z.npy", NpyArray.of(z, b, c)).toString(),
                "--labels", write("y.npy", NpyArray.of(y, b)).toString(), "--alpha", "0.3", "--reduction", "none"), out, "cuda");
        assertEquals(0, r.status(), r.toString());
        float[] grad = new float[b * c];
        PowerGrad.Result api = PowerGrad.compute(CPU, z, b, c, y, PowerGrad.Options.of(0.3).withReduction(PowerGrad.Reduction.NONE), grad);
        assertClose(grad, read(out.resolve("grad.npy"), b, c), "grad");
        assertClose(api.rowLosses(), read(out.resolve("loss.npy"), b), "row losses");
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private Path write(String name, NpyArray array) throws IOException {
        Path file = dir.resolve(name);
        Npy.write(file, array);
        return file;
    }

    /** Runs the command on the CPU backend, writing to {@code out}. */
    private static CliRun run(List<String> args, Path out) {
        return run(args, out, "cpu");
    }

    private static CliRun run(List<String> args, Path out, String backend) {
        List<String> all = new ArrayList<>(args);
        all.addAll(List.of("--out", out.toString(), "--backend", backend));
        return CliRun.of(all.toArray(new String[0]));
    }

    /** Runs {@code args} on the CPU backend and expects {@code status} with one error line containing {@code message}. */
    private static void assertFails(int status, String message, String... args) {
        List<String> all = new ArrayList<>(List.of(args));
        all.addAll(List.of("--backend", "cpu"));
        CliRun r = CliRun.of(all.toArray(new String[0]));
        assertEquals(status, r.status(), r.toString());
        assertTrue(r.err().startsWith("gradshape: "), r.toString());
        assertEquals(1, r.err().lines().count(), "one line: " + r);
        assertTrue(r.err().contains(message), "expected '" + message + "' in\n" + r);
    }

    private static float[] read(Path file, int... shape) throws IOException {
        NpyArray a = Npy.read(file);
        assertEquals(DType.FLOAT32, a.dtype(), file.toString());
        assertArrayEquals(shape, a.shape(), file + " shape");
        return a.floats();
    }

    private static void assertLoss(PowerGrad.Result api, String reduction, Path file, int rows) throws IOException {
        if (reduction.equals("none")) {
            assertBits(api.rowLosses(), read(file, rows), "row losses");
        } else {
            assertBits(new float[] {(float) api.loss()}, read(file), "loss (" + reduction + ")");
        }
    }

    private static void assertBits(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                throw new AssertionError(what + ": element " + i + ": expected " + expected[i] + ", got " + actual[i]);
            }
        }
    }

    private static void assertClose(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            if (!(Math.abs(expected[i] - actual[i]) <= 1e-6 + 1e-5 * Math.abs(expected[i]))) {
                throw new AssertionError(what + ": element " + i + ": expected " + expected[i] + ", got " + actual[i]);
            }
        }
    }

    private static PowerGrad.Reduction reduction(String name) {
        return PowerGrad.Reduction.valueOf(name.toUpperCase(java.util.Locale.ROOT));
    }

    private static float[] random(Random rnd, int n, float range) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (rnd.nextFloat() * 2 - 1) * range;
        }
        return a;
    }

    /** A positive scale around 1, as SGS produces. */
    private static float[] scale(Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = 0.25f + 1.5f * rnd.nextFloat();
        }
        return a;
    }
}
