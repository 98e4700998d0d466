package io.gradshape.bench;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.DType;
import io.gradshape.Gradshape;
import io.gradshape.HostBuffer;
import io.gradshape.PowerGrad;
import io.gradshape.ScaledSgd;
import io.gradshape.SpatialDependence;
import io.gradshape.Streams;
import io.gradshape.io.Npy;
import io.gradshape.io.NpyArray;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The gradshape half of bench/cpu-side-by-side.sh: a process that times one case per command line
 * and answers with one JSON line, so that the Python driver can interleave it with the PyTorch and
 * NumPy runs of the same case (same inputs, read from the .npy files the driver wrote). Times are
 * per call, host native memory in and out (what a JVM trainer on JavaCPP or DJL buffers passes).
 *
 * <pre>
 * threads N                                     CPU threads for what follows
 * pgt LOGITS.npy LABELS.npy ALPHA CALLS         PGT loss + gradient, MEAN, not in place
 * sgd SHAPES.txt CALLS                          one ScaledSgd step over the tensors listed, one per
 *                                               line: "scaled decay d0 d1 ..." (scaled, decay: 0/1)
 * sgs X.npy KH PAD BINS CALLS                   SpatialDependence.compute, NCHW; BINS 0: reference
 *                                               mode, else that many bins over the channel range
 * </pre>
 * Answers: {"ms": [per-call times], ...check values}; {"error": "..."} on bad input.
 */
public final class CpuSideBySide {
    private CpuSideBySide() {}

    public static void main(String[] args) throws IOException {
        Backend cpu = Backends.select("cpu").backend();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        for (String line; (line = in.readLine()) != null; ) {
            String[] w = line.trim().split("\\s+");
            try {
                out.println(switch (w[0]) {
                    case "threads" -> {
                        Gradshape.setCpuThreads(Integer.parseInt(w[1]));
                        yield "{\"threads\": " + Gradshape.cpuThreads() + "}";
                    }
                    case "pgt" -> pgt(cpu, Path.of(w[1]), Path.of(w[2]), Double.parseDouble(w[3]), Integer.parseInt(w[4]));
                    case "sgd" -> sgd(cpu, Path.of(w[1]), Integer.parseInt(w[2]));
                    case "sgs" -> sgs(cpu, Path.of(w[1]), Integer.parseInt(w[2]), Integer.parseInt(w[3]),
                            Integer.parseInt(w[4]), Integer.parseInt(w[5]));
                    case "quit" -> {
                        yield null;
                    }
                    default -> throw new IllegalArgumentException("unknown command " + w[0]);
                });
                if (w[0].equals("quit")) {
                    return;
                }
            } catch (RuntimeException e) {
                out.println("{\"error\": \"" + String.valueOf(e.getMessage()).replace('"', '\'') + "\"}");
            }
        }
    }

    private static String pgt(Backend cpu, Path logitsFile, Path labelsFile, double alpha, int calls) throws IOException {
        NpyArray z = Npy.read(logitsFile).asFloat32();
        NpyArray y = Npy.read(labelsFile).asInt32();
        int rows = z.dim(0), classes = z.dim(1);
        PowerGrad.Options options = PowerGrad.Options.of(alpha);
        try (PowerGrad pgt = new PowerGrad(cpu);
                HostBuffer logits = HostBuffer.of(z.floats());
                HostBuffer labels = HostBuffer.allocate(DType.INT32, rows);
                HostBuffer grad = HostBuffer.allocate(DType.FLOAT32, (long) rows * classes);
                HostBuffer loss = HostBuffer.allocate(DType.FLOAT32, 1)) {
            labels.asByteBuffer().asIntBuffer().put(y.ints());
            double[] ms = new double[calls];
            for (int i = 0; i < calls; i++) {
                long t0 = System.nanoTime();
                pgt.compute(logits.memory(), rows, classes, labels.memory(), options, grad.memory(), loss.memory(), Streams.DEFAULT);
                ms[i] = (System.nanoTime() - t0) / 1e6;
            }
            // Row 0 of the gradient times the rows counted: the driver compares it with PyTorch's.
            float[] g = new float[classes];
            grad.asByteBuffer().asFloatBuffer().get(g);
            StringBuilder row = new StringBuilder();
            for (int i = 0; i < Math.min(classes, 64); i++) {
                row.append(i == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%.9g", g[i] * (double) rows));
            }
            return String.format(Locale.ROOT, "{\"ms\": %s, \"loss\": %.9g, \"grad0\": [%s]}", json(ms), pgt.lastResult().loss(), row);
        }
    }

    private static String sgd(Backend cpu, Path shapesFile, int calls) throws IOException {
        List<HostBuffer> buffers = new ArrayList<>();
        ScaledSgd.Builder builder = ScaledSgd.builder(cpu).lr(0.01f).momentum(0.9f).weightDecay(1e-4f);
        try {
            for (String line : Files.readAllLines(shapesFile)) {
                String[] w = line.trim().split("\\s+");
                if (w.length < 3) {
                    continue;
                }
                long[] shape = new long[w.length - 2];
                long n = 1;
                for (int i = 0; i < shape.length; i++) {
                    shape[i] = Long.parseLong(w[i + 2]);
                    n *= shape[i];
                }
                HostBuffer weights = filled(n, 0.01f, buffers), grads = filled(n, 0.001f, buffers);
                ScaledSgd.Parameter p = ScaledSgd.Parameter.of(weights.memory(), grads.memory()).withWeightDecay(w[1].equals("1"));
                builder.addParameter(w[0].equals("1") ? p.withKernel(ScaledSgd.Kernel.ofWeightShape(ScaledSgd.Layout.OIHW, shape)) : p);
            }
            try (ScaledSgd sgd = builder.build()) {
                sgd.step(); // the first step writes the momentum buffers: time the steady state
                double[] ms = new double[calls];
                for (int i = 0; i < calls; i++) {
                    long t0 = System.nanoTime();
                    sgd.step();
                    ms[i] = (System.nanoTime() - t0) / 1e6;
                }
                return String.format(Locale.ROOT, "{\"ms\": %s, \"parameters\": %d}", json(ms), sgd.elementCount());
            }
        } finally {
            buffers.forEach(HostBuffer::close);
        }
    }

    private static HostBuffer filled(long n, float value, List<HostBuffer> buffers) {
        HostBuffer b = HostBuffer.allocate(DType.FLOAT32, n);
        buffers.add(b);
        java.nio.FloatBuffer f = b.asByteBuffer().asFloatBuffer();
        while (f.hasRemaining()) {
            f.put(value);
        }
        return b;
    }

    private static String sgs(Backend cpu, Path inputFile, int kernel, int pad, int bins, int calls) throws IOException {
        NpyArray x = Npy.read(inputFile).asFloat32();
        int[] s = x.shape();
        SpatialDependence.Options options = SpatialDependence.Options.defaults().kernel(kernel, kernel).padding(pad, pad);
        if (bins > 0) {
            options = options.bins(bins).range(SpatialDependence.RangeMode.CHANNEL);
        }
        try (HostBuffer input = HostBuffer.of(x.floats())) {
            double[] ms = new double[calls];
            SpatialDependence.Result r = null;
            for (int i = 0; i < calls; i++) {
                long t0 = System.nanoTime();
                r = SpatialDependence.compute(cpu, input.memory(), s[0], s[1], s[2], s[3], options);
                ms[i] = (System.nanoTime() - t0) / 1e6;
            }
            StringBuilder sv = new StringBuilder();
            float[] sm = r.s();
            for (int i = 0; i < sm.length; i++) {
                sv.append(i == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%.7g", sm[i]));
            }
            return String.format(Locale.ROOT, "{\"ms\": %s, \"s\": [%s]}", json(ms), sv);
        }
    }

    private static String json(double[] v) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < v.length; i++) {
            b.append(i == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%.4f", v[i]));
        }
        return b.append(']').toString();
    }
}
