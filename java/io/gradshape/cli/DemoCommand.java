package io.gradshape.cli;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.CudaBackend;
import io.gradshape.Gradshape;
import io.gradshape.Memory;
import io.gradshape.OwnedBuffer;
import io.gradshape.PowerGrad;
import io.gradshape.ScaledSgd;
import io.gradshape.SpatialDependence;
import io.gradshape.SpatialDependence.Options;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * {@code gradshape demo}: what a trainer does with the library, on data made here, on the best
 * backend. Feature maps with spatial structure give S and G; those G scale one SGD step over a
 * ResNet-18 parameter set; PowerGrad turns a batch of logits into a loss and a gradient. Each kernel
 * is timed, and checked against the formula it implements; with a GPU the same work also runs on the
 * CPU and the two are compared.
 */
@Command(name = "demo",
        header = "a tour on data made here: S and G, a scaled SGD step, PowerGrad, timed (the main job)",
        description = {
            "Runs on the best backend (CUDA when usable, else the CPU; --backend picks one). With a GPU the same",
            "work also runs on the CPU and the results are cross-checked. Takes seconds on a 2-core CPU."})
final class DemoCommand extends KernelCommand {
    // Feature maps: a batch of a mid-network layer, small enough for a 2-core CPU in seconds.
    private static final int N = 32, C = 32, H = 56, W = 56;
    private static final int LOGIT_ROWS = 4096, CLASSES = 1000;
    private static final float LR = 0.1f, MOMENTUM = 0.9f, WEIGHT_DECAY = 1e-4f;

    @Option(names = "--repeats", paramLabel = "N", defaultValue = "5", converter = OptionValues.Int.class,
            description = "timed runs of each kernel (the median is shown)")
    int repeats;

    /** One line of the timing table. */
    private record Timing(String kernel, String work, String backend, double seconds, double rate, String unit) {}

    /** What one backend produced, for the cross-check. */
    private record Outputs(float[] g3, float[] g5, float[] g7, float[] weights, float[] pgtGrad, double pgtLoss) {}

    @Override
    int run(Terminal terminal) throws Exception {
        check(repeats >= 1 && repeats <= 1000, "--repeats", "must be from 1 to 1000");
        Backends.Selection selection = common.backendSelection();
        Backend backend = selection.backend();
        PrintStream out = terminal.out();
        out.println("gradshape " + Gradshape.version() + " demo: spatial gradient scaling and PowerGrad on data made here");
        out.println("backend: " + backend.description() + " (" + selection.reason() + ")");

        List<Timing> timings = new ArrayList<>();
        Outputs main;
        Outputs cpu = null;
        try (Progress progress = terminal.progress()) {
            progress.update("making feature maps");
            Data data = new Data();
            main = runAll(backend, data, repeats, timings, out, progress, true);
            if (backend instanceof CudaBackend) {
                progress.update("the same on the CPU, for the cross-check");
                cpu = runAll(Backends.cpu(), data, Math.min(repeats, 3), timings, out, progress, false);
            }
            progress.done("done");
        }

        out.println();
        out.println("4. Timing (median of " + repeats + " runs; host <-> device copies excluded)");
        Table table = new Table("kernel", "work", "backend", "time", "throughput").alignLeft(0, 1, 2);
        for (Timing t : timings) {
            table.row(t.kernel(), t.work(), t.backend(), Units.duration(t.seconds()), Units.rate(t.rate(), t.unit()));
        }
        table.print(out);
        if (cpu != null) {
            out.println();
            out.println("CPU vs CUDA:");
            out.printf(Locale.ROOT, "  G (3x3, 5x5, 7x7): max |difference| %.2e (integer histograms identical)%n",
                    Math.max(maxDiff(main.g3(), cpu.g3()), Math.max(maxDiff(main.g5(), cpu.g5()), maxDiff(main.g7(), cpu.g7()))));
            out.printf(Locale.ROOT, "  weights after one scaled SGD step: max |difference| %.2e%n", maxDiff(main.weights(), cpu.weights()));
            out.printf(Locale.ROOT, "  PGT gradient: max |difference| %.2e, loss %.6f vs %.6f%n",
                    maxDiff(main.pgtGrad(), cpu.pgtGrad()), main.pgtLoss(), cpu.pgtLoss());
        }
        return Main.EXIT_OK;
    }

    /** Everything the demo computes from, made once and shared by the backends. */
    private static final class Data {
        final float[][] fields = new float[3][];
        final double[] lengths = {0.5, 1.5, 4.0};
        final float[] relu;
        final List<DemoData.ParameterShape> model = DemoData.resnet18();
        final float[] weights;
        final float[] grads;
        final int[] labels = new int[LOGIT_ROWS];
        final float[] logits = DemoData.logits(LOGIT_ROWS, CLASSES, labels, 7);

        Data() {
            for (int i = 0; i < fields.length; i++) {
                fields[i] = DemoData.smoothField(N, C, H, W, lengths[i], 100 + i);
            }
            relu = DemoData.relu(fields[1], 0.5f);
            long n = model.stream().mapToLong(DemoData.ParameterShape::size).sum();
            weights = gaussian(Math.toIntExact(n), 0.05, 1);
            grads = gaussian(Math.toIntExact(n), 0.01, 2);
        }
    }

    private Outputs runAll(Backend backend, Data data, int repeats, List<Timing> timings, PrintStream out,
            Progress progress, boolean show) {
        String where = backend instanceof CudaBackend ? "CUDA" : "CPU";
        long pairs3 = SpatialDependence.pairsPerChannel(N, H, W, Options.defaults()) * C;
        Options reference3 = Options.defaults().kernel(3, 3).padding(1, 1);
        Options reference5 = Options.defaults().kernel(5, 5).padding(2, 2);
        Options reference7 = Options.defaults().kernel(7, 7).padding(3, 3);

        if (show) {
            out.println();
            out.println("1. Spatial dependence of a convolution's input -> S and G (SPEC.md section 1)");
            out.println("   Smooth random fields, " + N + " maps x " + C + " channels of " + H + "x" + W
                    + ", reference mode (Sturges bins, k = 5):");
        }
        float[] g5 = null;
        float[] g7 = null;
        for (int i = 0; i < data.fields.length; i++) {
            progress.update("spatial dependence on " + where + ", field " + (i + 1) + " of " + data.fields.length);
            try (OwnedBuffer x = BackendBuffers.upload(backend, data.fields[i])) {
                SpatialDependence.Result r3 = SpatialDependence.compute(backend, x.memory(), N, C, H, W, reference3);
                if (show) {
                    out.printf(Locale.ROOT, "   correlation length %.1f px, 3x3, padding 1%n", data.lengths[i]);
                    printMatrices(out, r3);
                }
                if (i == 1) {
                    timings.add(time("spatial dependence 3x3", mega(pairs3) + " pairs", where, pairs3, "pairs", repeats,
                            () -> SpatialDependence.compute(backend, x.memory(), N, C, H, W, reference3)));
                    Options fixed = reference3.bins(64).range(SpatialDependence.RangeMode.CHANNEL);
                    timings.add(time("  fixed 64 bins, channel range", mega(pairs3) + " pairs", where, pairs3, "pairs", repeats,
                            () -> SpatialDependence.compute(backend, x.memory(), N, C, H, W, fixed)));
                    SpatialDependence.Result r5 = SpatialDependence.compute(backend, x.memory(), N, C, H, W, reference5);
                    g5 = r5.g();
                    if (show) {
                        out.println("   the same field, 5x5, padding 2: dependence falls off with distance");
                        printMatrices(out, r5);
                    }
                    long pairs5 = SpatialDependence.pairsPerChannel(N, H, W, reference5) * C;
                    timings.add(time("spatial dependence 5x5", mega(pairs5) + " pairs", where, pairs5, "pairs", repeats,
                            () -> SpatialDependence.compute(backend, x.memory(), N, C, H, W, reference5)));
                    g7 = SpatialDependence.compute(backend, x.memory(), N, C, H, W, reference7).g();
                }
            }
        }
        progress.update("spatial dependence on " + where + ", sparse ReLU maps");
        float[] g3;
        try (OwnedBuffer x = BackendBuffers.upload(backend, data.relu)) {
            Options removal = reference3.removeZeros(true);
            SpatialDependence.Result r = SpatialDependence.compute(backend, x.memory(), N, C, H, W, removal);
            if (show) {
                out.printf(Locale.ROOT, "   ReLU maps (%.0f%% non-zero), zero pairs removed (the reference's ImageNet mode)%n",
                        100.0 * nonZero(data.relu) / data.relu.length);
                printMatrices(out, r);
            }
            // Conv inputs in a ReLU network look like these: their G scales the 3x3 convs below.
            g3 = r.g();
        }

        float[] weightsAfter = sgdStep(backend, data, g3, g7, repeats, timings, out, progress, show, where);
        double[] pgtLoss = new double[1];
        float[] pgtGrad = powerGrad(backend, data, repeats, timings, out, progress, show, where, pgtLoss);
        return new Outputs(g3, g5, g7, weightsAfter, pgtGrad, pgtLoss[0]);
    }

    /** One scaled SGD step over ResNet-18's parameters, registered as one flat buffer (as DL4J keeps them). */
    private float[] sgdStep(Backend backend, Data data, float[] g3, float[] g7, int repeats, List<Timing> timings,
            PrintStream out, Progress progress, boolean show, String where) {
        progress.update("scaled SGD on " + where);
        List<ScaledSgd.Segment> segments = new ArrayList<>();
        long offset = 0;
        int scaled = 0;
        for (DemoData.ParameterShape p : data.model) {
            ScaledSgd.Segment s = ScaledSgd.Segment.of(offset, p.size()).withWeightDecay(p.decay());
            if (p.scaled()) {
                s = s.withKernel(p.kernelH(), p.kernelW());
                scaled++;
            }
            segments.add(s);
            offset += p.size();
        }
        try (OwnedBuffer w = BackendBuffers.upload(backend, data.weights);
                OwnedBuffer g = BackendBuffers.upload(backend, data.grads);
                ScaledSgd sgd = ScaledSgd.builder(backend).lr(LR).momentum(MOMENTUM).weightDecay(WEIGHT_DECAY)
                        .addFlat(w.memory(), g.memory(), segments).build()) {
            for (int i = 0; i < data.model.size(); i++) {
                DemoData.ParameterShape p = data.model.get(i);
                if (p.scaled()) {
                    sgd.setScale(i, p.kernelH() == 7 ? g7 : g3);
                }
            }
            sgd.step();
            float[] after = w.toFloatArray();
            if (show) {
                out.println();
                out.println("2. One scaled SGD step over ResNet-18's parameters (SPEC.md section 2)");
                out.printf(Locale.ROOT, "   %d tensors, %.2f M parameters in one flat buffer; %d convs scaled by G (conv1 by the 7x7 G,%n",
                        data.model.size(), offset / 1e6, scaled);
                out.printf(Locale.ROOT, "   the 3x3 convs by the ReLU maps' G); lr %.2g, momentum %.2g, weight decay %.0e, one launch%n",
                        LR, MOMENTUM, WEIGHT_DECAY);
                out.printf(Locale.ROOT, "   first step vs w - lr (G * g + wd * w), evaluated in float64: max relative error %.1e%n",
                        firstStepError(data, g3, g7, after));
                int centre = 4;
                out.printf(Locale.ROOT, "   e.g. layer1.0.conv1: centre taps move %.2fx, corner taps %.2fx as far as plain SGD moves them%n",
                        g3[centre], g3[0]);
            }
            double bytes = 20.0 * offset; // read w, g, buf; write w, buf
            timings.add(time("scaled SGD step (ResNet-18)", String.format(Locale.ROOT, "%.1f M params", offset / 1e6), where,
                    bytes, "B", repeats, () -> {
                        sgd.step();
                        backend.synchronize(0);
                    }));
            return after;
        }
    }

    /** Max relative error of the first step against SPEC.md section 2 in float64 (buf = d, w -= lr d). */
    private static double firstStepError(Data data, float[] g3, float[] g7, float[] after) {
        double worst = 0;
        int offset = 0;
        for (DemoData.ParameterShape p : data.model) {
            int area = p.kernelH() * p.kernelW();
            float[] g = p.scaled() ? (p.kernelH() == 7 ? g7 : g3) : null;
            for (int i = offset; i < offset + p.size(); i++) {
                double w0 = data.weights[i];
                double d = (g == null ? 1.0 : g[(i - offset) % area]) * data.grads[i] + (p.decay() ? WEIGHT_DECAY * w0 : 0);
                double expected = w0 - (double) LR * d;
                worst = Math.max(worst, Math.abs(after[i] - expected) / Math.max(Math.abs(expected), 1e-3));
            }
            offset += p.size();
        }
        return worst;
    }

    private float[] powerGrad(Backend backend, Data data, int repeats, List<Timing> timings, PrintStream out,
            Progress progress, boolean show, String where, double[] lossOut) {
        progress.update("PowerGrad on " + where);
        int n = LOGIT_ROWS * CLASSES;
        try (OwnedBuffer z = BackendBuffers.upload(backend, data.logits);
                OwnedBuffer grad = BackendBuffers.allocate(backend, n);
                PowerGrad plan = new PowerGrad(backend)) {
            Memory labels = Memory.of(data.labels);
            if (show) {
                out.println();
                out.println("3. PowerGrad on " + LOGIT_ROWS + " x " + CLASSES + " logits (SPEC.md section 3): dL/dz = softmax(alpha z) - onehot(y)");
                out.println("   alpha    loss (CE)   true-class grad   largest other grad   max |grad - oracle|");
            }
            float[] kept = null;
            for (double alpha : new double[] {1.0, 0.25}) {
                PowerGrad.Options options = PowerGrad.Options.of(alpha).withReduction(PowerGrad.Reduction.SUM);
                PowerGrad.Result r = plan.compute(z.memory(), LOGIT_ROWS, CLASSES, labels, options, grad.memory());
                float[] g = grad.toFloatArray();
                if (show) {
                    double trueClass = 0;
                    double otherMax = 0;
                    for (int i = 0; i < LOGIT_ROWS; i++) {
                        for (int c = 0; c < CLASSES; c++) {
                            float v = g[i * CLASSES + c];
                            if (c == data.labels[i]) {
                                trueClass += v;
                            } else {
                                otherMax = Math.max(otherMax, v);
                            }
                        }
                    }
                    out.printf(Locale.ROOT, "   %5.2f   %9.4f   %15.4f   %18.4f   %19.1e%n", alpha, r.loss() / LOGIT_ROWS,
                            trueClass / LOGIT_ROWS, otherMax, pgtError(data, alpha, g));
                }
                if (alpha != 1.0) {
                    kept = g;
                    lossOut[0] = r.loss();
                    timings.add(time("PGT loss + gradient", LOGIT_ROWS + " x " + CLASSES, where, 8.0 * n, "B", repeats,
                            () -> plan.compute(z.memory(), LOGIT_ROWS, CLASSES, labels, options, grad.memory())));
                }
            }
            if (show) {
                out.println("   (loss: mean cross entropy, unchanged by PGT; alpha < 1 spreads the gradient over the other classes)");
            }
            return kept;
        }
    }

    /** Max |grad - (softmax(alpha z) - onehot)| over the first rows, the oracle in float64. */
    private static double pgtError(Data data, double alpha, float[] grad) {
        double worst = 0;
        for (int i = 0; i < 64; i++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < CLASSES; c++) {
                max = Math.max(max, data.logits[i * CLASSES + c]);
            }
            double sum = 0;
            for (int c = 0; c < CLASSES; c++) {
                sum += Math.exp(alpha * (data.logits[i * CLASSES + c] - max));
            }
            for (int c = 0; c < CLASSES; c++) {
                double p = Math.exp(alpha * (data.logits[i * CLASSES + c] - max)) / sum;
                double expected = p - (c == data.labels[i] ? 1 : 0);
                worst = Math.max(worst, Math.abs(grad[i * CLASSES + c] - expected));
            }
        }
        return worst;
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private static Timing time(String kernel, String work, String backend, double amount, String unit, int repeats, Runnable run) {
        run.run(); // warm-up: caches, lazily sized workspaces
        double[] seconds = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            long t0 = System.nanoTime();
            run.run();
            seconds[i] = (System.nanoTime() - t0) / 1e9;
        }
        java.util.Arrays.sort(seconds);
        double median = seconds[repeats / 2];
        return new Timing(kernel, work, backend, median, amount / median, unit);
    }

    private static void printMatrices(PrintStream out, SpatialDependence.Result r) {
        int kh = r.kernelH();
        int kw = r.kernelW();
        int width = kw * 7;
        out.printf(Locale.ROOT, "     %-" + width + "s    %s%n", "S", "G");
        for (int i = 0; i < kh; i++) {
            StringBuilder line = new StringBuilder("    ");
            for (int j = 0; j < kw; j++) {
                line.append(String.format(Locale.ROOT, " %6.3f", r.s(i - kh / 2, j - kw / 2)));
            }
            line.append("    ");
            for (int j = 0; j < kw; j++) {
                line.append(String.format(Locale.ROOT, " %6.3f", r.g(i - kh / 2, j - kw / 2)));
            }
            out.println(line);
        }
    }

    private static float[] gaussian(int n, double std, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (std * random.nextGaussian());
        }
        return a;
    }

    private static long nonZero(float[] a) {
        long n = 0;
        for (float v : a) {
            if (v != 0) {
                n++;
            }
        }
        return n;
    }

    private static double maxDiff(float[] a, float[] b) {
        double worst = 0;
        for (int i = 0; i < a.length; i++) {
            worst = Math.max(worst, Math.abs(a[i] - b[i]));
        }
        return worst;
    }

    private static String mega(long n) {
        return String.format(Locale.ROOT, "%.1f M", n / 1e6);
    }
}
