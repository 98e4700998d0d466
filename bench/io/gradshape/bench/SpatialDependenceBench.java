package io.gradshape.bench;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.CudaBackend;
import io.gradshape.DeviceBuffer;
import io.gradshape.Gradshape;
import io.gradshape.HostBuffer;
import io.gradshape.Memory;
import io.gradshape.OwnedBuffer;
import io.gradshape.SpatialDependence;
import io.gradshape.SpatialDependence.Options;
import io.gradshape.SpatialDependence.RangeMode;
import io.gradshape.SpatialDependence.Result;
import io.gradshape.SpatialDependenceAccumulator;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Spatial dependence of one convolution's input feature map, the three phases end to end
 * ({@code compute}) and the histogram pass alone ({@code histogram}).
 *
 * <p>The figure to read is the {@code pairs} counter: pixel pairs per second, where one call covers
 * {@code channels * sum over the (kh kw - 1) / 2 computed displacements of N (Hp - |dy|)(Wp - |dx|)}
 * pairs ({@link SpatialDependence#pairsPerChannel}). The ResNet-18 layer N=512, C=64, 56x56, 3x3, pad 1
 * is 0.43 G pairs per call; the CPU default uses N=16 so that a run takes seconds:
 * <pre>
 * java -cp ... org.openjdk.jmh.Main SpatialDependenceBench                              # CPU, all cores
 * java -cp ... org.openjdk.jmh.Main SpatialDependenceBench -p cpuThreads=1              # per core
 * java -cp ... org.openjdk.jmh.Main SpatialDependenceBench -p backend=cuda -p shape=512x64x56x56
 * </pre>
 * Modes: {@code reference} (Sturges, per-pair-set ranges: two binnings per displacement),
 * {@code fixed64} (64 bins, channel range: one binning per value), {@code bins256} (256 bins, per-pair-set
 * ranges: the largest tables). The input is ReLU-like (half zeros, spatially correlated).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@State(Scope.Benchmark)
public class SpatialDependenceBench {
    @Param({"cpu"})
    public String backend;

    /** N x C x H x W, kernel 3x3 with padding 1 unless {@code kernel} says otherwise. */
    @Param({"16x64x56x56"})
    public String shape;

    @Param({"3"})
    public int kernel;

    @Param({"reference", "fixed64", "bins256"})
    public String mode;

    /** CPU threads, 0 = one per hardware thread. */
    @Param({"0"})
    public int cpuThreads;

    private Backend target;
    private OwnedBuffer input;
    private SpatialDependenceAccumulator accumulator;
    private int batch;
    private long pairsPerCall;
    private Result last;

    /** Pairs processed, reported as a rate by JMH. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Pairs {
        public long pairs;
    }

    @Setup(Level.Trial)
    public void setUp() {
        target = Backends.select(backend).backend();
        if (cpuThreads != 0) {
            Gradshape.setCpuThreads(cpuThreads);
        }
        String[] dims = shape.split("x");
        batch = Integer.parseInt(dims[0]);
        int channels = Integer.parseInt(dims[1]), height = Integer.parseInt(dims[2]), width = Integer.parseInt(dims[3]);
        Options options = Options.defaults().kernel(kernel, kernel).padding(kernel / 2, kernel / 2);
        options = switch (mode) {
            case "reference" -> options;
            case "fixed64" -> options.bins(64).range(RangeMode.CHANNEL);
            case "bins256" -> options.bins(256);
            default -> throw new IllegalArgumentException("mode: reference, fixed64 or bins256, got " + mode);
        };
        float[] x = reluMaps(batch, channels, height, width);
        input = target instanceof CudaBackend cuda ? DeviceBuffer.copyOf(cuda, Memory.of(x)) : HostBuffer.of(x);
        accumulator = new SpatialDependenceAccumulator(target, channels, height, width, options);
        pairsPerCall = SpatialDependence.pairsPerChannel(batch, height, width, options) * channels;
        // The histogram benchmark bins again and again into the tables of one observed batch.
        accumulator.observe(input.memory(), batch);
        accumulator.beginBinning();
    }

    @Benchmark
    public Result compute(Pairs counter) {
        accumulator.reset();
        accumulator.observe(input.memory(), batch);
        accumulator.beginBinning();
        accumulator.bin(input.memory(), batch);
        last = accumulator.finish();
        counter.pairs += pairsPerCall;
        return last;
    }

    @Benchmark
    public void histogram(Pairs counter) {
        accumulator.bin(input.memory(), batch);
        target.synchronize(0);
        counter.pairs += pairsPerCall;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (last != null) {
            float[] g = last.g();
            double mean = 0;
            for (float v : g) {
                if (!Float.isFinite(v) || v <= 0) {
                    throw new IllegalStateException("G not finite and positive: " + last);
                }
                mean += v;
            }
            mean /= g.length;
            if (last.gKeptPrevious() || Math.abs(mean - 1) > 1e-5) {
                throw new IllegalStateException("G does not have mean 1: " + last);
            }
        }
        accumulator.close();
        input.close();
        if (cpuThreads != 0) {
            Gradshape.setCpuThreads(0);
        }
    }

    /** ReLU of 3x3-smoothed Gaussian noise: about half zeros, neighbours correlated like real features. */
    static float[] reluMaps(int batch, int channels, int height, int width) {
        SplittableRandom random = new SplittableRandom(42);
        int plane = height * width;
        float[] noise = new float[plane];
        float[] x = new float[Math.multiplyExact(batch * channels, plane)];
        for (int p = 0; p < batch * channels; p++) {
            for (int i = 0; i < plane; i++) {
                noise[i] = (float) random.nextGaussian();
            }
            for (int i = 0; i < height; i++) {
                for (int j = 0; j < width; j++) {
                    float sum = 0;
                    for (int a = Math.max(0, i - 1); a <= Math.min(height - 1, i + 1); a++) {
                        for (int b = Math.max(0, j - 1); b <= Math.min(width - 1, j + 1); b++) {
                            sum += noise[a * width + b];
                        }
                    }
                    x[p * plane + i * width + j] = Math.max(0f, sum / 3);
                }
            }
        }
        return x;
    }
}
