package io.gradshape.bench;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.CudaBackend;
import io.gradshape.DType;
import io.gradshape.DeviceBuffer;
import io.gradshape.HostBuffer;
import io.gradshape.Memory;
import io.gradshape.OwnedBuffer;
import io.gradshape.PowerGrad;
import io.gradshape.Streams;
import io.gradshape.natives.CudaNative;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The fused PGT loss + gradient against the floor it is bound by: reading the logits once and
 * writing the gradient once, 8 bytes per element ({@code copyFloor} moves the same bytes).
 * Labels are class indices with the default ignore index, reduction MEAN (so the CUDA path includes
 * its label-count launch), gradient not in place. Every invocation queues {@value #LAUNCHES} calls and
 * waits once, so that the per-call time excludes the host synchronisation.
 *
 * <p>Score: calls per second (1e6 / score = microseconds per call). {@code :floorGBps}: the 8 bytes
 * per element of the floor moved per second, in GB/s; compare {@code powerGrad} with {@code copyFloor}.
 * Shapes are {@code classes x rows}; the CPU defaults are small so that a run takes seconds; the GPU
 * runner passes the real ones: {@code -p backend=cuda -p shape=1000x65536,32000x8192,10x1048576}.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@State(Scope.Benchmark)
public class PowerGradBench {
    static final int LAUNCHES = 10;

    @Param({"cpu"})
    public String backend;

    @Param({"1000x4096", "32000x128", "10x65536"})
    public String shape;

    @Param({"0.25"})
    public double alpha;

    private Backend device;
    private PowerGrad pgt;
    private PowerGrad.Options options;
    private OwnedBuffer logits;
    private OwnedBuffer labels;
    private OwnedBuffer grad;
    private OwnedBuffer loss;
    private int rows;
    private int classes;
    private boolean ran;

    /** Floor traffic (8 bytes per element per call) in GB; JMH reports it per second: GB/s. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Traffic {
        public double floorGBps;

        @Setup(Level.Iteration)
        public void reset() {
            floorGBps = 0;
        }
    }

    @Setup(Level.Trial)
    public void setup() {
        String[] parts = shape.split("x");
        classes = Integer.parseInt(parts[0]);
        rows = Integer.parseInt(parts[1]);
        device = Backends.select(backend).backend();
        pgt = new PowerGrad(device);
        options = PowerGrad.Options.of(alpha);
        long n = (long) rows * classes;
        SplittableRandom random = new SplittableRandom(42);
        float[] z = new float[Math.toIntExact(n)];
        for (int i = 0; i < z.length; i++) {
            z[i] = (float) (random.nextDouble() * 8 - 4);
        }
        int[] y = new int[rows];
        for (int r = 0; r < rows; r++) {
            y[r] = random.nextInt(classes);
        }
        logits = allocate(DType.FLOAT32, n);
        labels = allocate(DType.INT32, rows);
        grad = allocate(DType.FLOAT32, n);
        loss = allocate(DType.FLOAT32, 1);
        if (logits instanceof DeviceBuffer d) {
            d.copyFrom(Memory.of(z));
            ((DeviceBuffer) labels).copyFrom(Memory.of(y));
        } else {
            ((HostBuffer) logits).asByteBuffer().asFloatBuffer().put(z);
            ((HostBuffer) labels).asByteBuffer().asIntBuffer().put(y);
        }
    }

    private OwnedBuffer allocate(DType dtype, long length) {
        return device instanceof CudaBackend cuda ? DeviceBuffer.allocate(cuda, dtype, length) : HostBuffer.allocate(dtype, length);
    }

    @Benchmark
    @OperationsPerInvocation(LAUNCHES)
    public void powerGrad(Traffic traffic) {
        for (int i = 0; i < LAUNCHES; i++) {
            pgt.compute(logits.memory(), rows, classes, labels.memory(), options, grad.memory(), loss.memory(), Streams.DEFAULT);
        }
        device.synchronize(Streams.DEFAULT);
        traffic.floorGBps += LAUNCHES * 8.0 * rows * classes / 1e9;
        ran = true;
    }

    /** The floor: the same bytes read and written by a plain copy. */
    @Benchmark
    @OperationsPerInvocation(LAUNCHES)
    public void copyFloor(Traffic traffic) {
        if (device instanceof CudaBackend cuda) {
            CudaNative.gs_cuda_set_device(cuda.device());
            for (int i = 0; i < LAUNCHES; i++) {
                CudaNative.gs_cuda_memcpy(grad.address(), logits.address(), logits.bytes(), Streams.DEFAULT);
            }
        } else {
            for (int i = 0; i < LAUNCHES; i++) {
                ((HostBuffer) grad).asByteBuffer().put(((HostBuffer) logits).asByteBuffer());
            }
        }
        device.synchronize(Streams.DEFAULT);
        traffic.floorGBps += LAUNCHES * 8.0 * rows * classes / 1e9;
    }

    @TearDown(Level.Trial)
    public void check() {
        try {
            if (!ran) {
                return;
            }
            PowerGrad.Result r = pgt.lastResult();
            // Uniform logits in [-4, 4]: the mean loss is near log(classes) plus a little.
            if (!(r.loss() > 0 && r.loss() < Math.log(classes) + 8) || r.countedRows() != rows) {
                throw new IllegalStateException("unexpected result " + r + " for " + shape);
            }
        } finally {
            pgt.close();
            logits.close();
            labels.close();
            grad.close();
            loss.close();
        }
    }
}
