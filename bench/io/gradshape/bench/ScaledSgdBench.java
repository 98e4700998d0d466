package io.gradshape.bench;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.CudaBackend;
import io.gradshape.DType;
import io.gradshape.DeviceBuffer;
import io.gradshape.Gradshape;
import io.gradshape.HostBuffer;
import io.gradshape.OwnedBuffer;
import io.gradshape.ScaledSgd;
import io.gradshape.natives.CudaNative;
import io.gradshape.natives.Natives;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
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
 * One {@link ScaledSgd} step over a model's parameters ({@code step}), and the copy-bandwidth baseline
 * measured in the same run ({@code copy}).
 *
 * <p>Read the {@code gigabytes} counter: memory traffic in GB/s. A step with momentum moves 20 bytes per
 * parameter (reads w, g, buf; writes w, buf) and that is what it is credited with; {@code copy} copies 10
 * bytes per parameter (reads 10, writes 10: the same 20 bytes of traffic) and is credited with both
 * directions. So {@code step.gigabytes / copy.gigabytes} is the fraction of copy bandwidth the step
 * reaches (target on the CPU: 70 %; one flat tensor on the GPU: 90 %). The primary score is steps (or
 * copies) per second; one step is {@code 1 / score} seconds. On CUDA every operation ends with a
 * stream synchronization (a few microseconds, included).
 *
 * <p>{@code parameters}: {@code resnet50} is torchvision's ResNet-50 parameter list (161 tensors, 25.6 M
 * parameters, 17 convs with a 3x3 or 7x7 scale; see {@link ScaledSgdResNet50}); {@code flat} is one tensor
 * of {@code flatParameters} parameters (0: 256 M on CUDA, 16 M on the CPU). Momentum 0.9, weight decay
 * 1e-4 (not on BN and biases), nesterov off: the hyperparameters of the PyTorch baseline
 * bench/pytorch/scaled_sgd.py.
 * <pre>
 * java -cp ... org.openjdk.jmh.Main ScaledSgdBench                          # CPU, all cores
 * java -cp ... org.openjdk.jmh.Main ScaledSgdBench -p backend=cuda          # GPU: 256 M flat
 * </pre>
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@State(Scope.Benchmark)
public class ScaledSgdBench {
    @Param({"cpu"})
    public String backend;

    @Param({"resnet50", "flat"})
    public String parameters;

    /** Size of the {@code flat} case; 0: 256 M on CUDA, 16 M on the CPU. */
    @Param({"0"})
    public long flatParameters;

    /** CPU threads, 0 = one per hardware thread. */
    @Param({"0"})
    public int cpuThreads;

    /** Bytes moved, reported by JMH as a rate: GB/s. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Traffic {
        public double gigabytes;
    }

    /** Every float of the buffers starts as this byte pattern: 0x3c3c3c3c = 0.0115 (finite, normal). */
    private static final int FILL = 0x3c;
    private static final float FILL_VALUE = Float.intBitsToFloat(0x3c3c3c3c);

    private Backend target;
    private final List<OwnedBuffer> buffers = new ArrayList<>();
    private ScaledSgd sgd;
    private OwnedBuffer probe; // weights of the first tensor, checked after the run
    private long elements;
    private OwnedBuffer copySource;
    private OwnedBuffer copyTarget;
    private ExecutorService copyThreads;
    private int copyTasks;

    @Setup(Level.Trial)
    public void setUp() {
        target = Backends.select(backend).backend();
        if (cpuThreads != 0) {
            Gradshape.setCpuThreads(cpuThreads);
        }
        ScaledSgd.Builder builder = ScaledSgd.builder(target).lr(1e-3f).momentum(0.9f).weightDecay(1e-4f);
        switch (parameters) {
            case "resnet50" -> {
                for (ScaledSgdResNet50.Tensor t : ScaledSgdResNet50.parameters()) {
                    ScaledSgd.Parameter p = ScaledSgd.Parameter.of(filled(t.length()).memory(), filled(t.length()).memory())
                            .withWeightDecay(t.weightDecay());
                    builder.addParameter(t.scaled() ? p.withKernel(ScaledSgd.Kernel.ofWeightShape(ScaledSgd.Layout.OIHW, t.shape())) : p);
                }
            }
            case "flat" -> {
                long n = flatParameters > 0 ? flatParameters : target instanceof CudaBackend ? 256L << 20 : 16L << 20;
                builder.addParameter(ScaledSgd.Parameter.of(filled(n).memory(), filled(n).memory()));
            }
            default -> throw new IllegalArgumentException("parameters: resnet50 or flat, got " + parameters);
        }
        probe = buffers.get(0);
        sgd = builder.build();
        elements = sgd.elementCount();
        sgd.step(); // the first step only writes the momentum; measure the steady state
        target.synchronize(0);

        long copyBytes = 10 * elements;
        copySource = allocate(DType.INT32, (copyBytes + 3) / 4);
        copyTarget = allocate(DType.INT32, (copyBytes + 3) / 4);
        fill(copySource);
        fill(copyTarget);
        if (!(target instanceof CudaBackend)) {
            copyTasks = Gradshape.cpuThreads();
            copyThreads = Executors.newFixedThreadPool(copyTasks);
        }
    }

    @Benchmark
    public long step(Traffic traffic) {
        sgd.step();
        target.synchronize(0);
        traffic.gigabytes += 20e-9 * elements;
        return sgd.stepCount();
    }

    /** The same traffic as a step, as a plain copy: native memcpy per thread (CPU), cudaMemcpy (GPU). */
    @Benchmark
    public long copy(Traffic traffic) throws InterruptedException, ExecutionException {
        long bytes = copySource.bytes();
        if (target instanceof CudaBackend cuda) {
            Natives.check(CudaNative.gs_cuda_set_device(cuda.device()));
            Natives.check(CudaNative.gs_cuda_memcpy(copyTarget.address(), copySource.address(), bytes, 0));
            target.synchronize(0);
        } else {
            List<Callable<Void>> tasks = new ArrayList<>(copyTasks);
            for (int t = 0; t < copyTasks; t++) {
                long begin = bytes * t / copyTasks / 64 * 64;
                long end = t == copyTasks - 1 ? bytes : bytes * (t + 1) / copyTasks / 64 * 64;
                tasks.add(() -> {
                    Pointer.memcpy(at(copyTarget.address() + begin), at(copySource.address() + begin), end - begin);
                    return null;
                });
            }
            for (Future<Void> f : copyThreads.invokeAll(tasks)) {
                f.get();
            }
        }
        traffic.gigabytes += 2e-9 * bytes;
        return bytes;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        long steps = sgd.stepCount();
        float[] w = new float[16];
        int n = (int) Math.min(w.length, probe.length());
        try (HostBuffer host = HostBuffer.allocate(DType.FLOAT32, n)) {
            if (target instanceof CudaBackend) {
                Natives.check(CudaNative.gs_cuda_memcpy(host.address(), probe.address(), host.bytes(), 0));
                target.synchronize(0);
            } else {
                Pointer.memcpy(at(host.address()), at(probe.address()), host.bytes());
            }
            host.asByteBuffer().asFloatBuffer().get(w, 0, n);
        }
        sgd.close();
        buffers.forEach(OwnedBuffer::close);
        copySource.close();
        copyTarget.close();
        if (copyThreads != null) {
            copyThreads.shutdown();
        }
        if (cpuThreads != 0) {
            Gradshape.setCpuThreads(0);
        }
        for (int i = 0; i < n; i++) {
            if (!Float.isFinite(w[i]) || w[i] == FILL_VALUE) {
                throw new IllegalStateException("after " + steps + " steps weight " + i + " is " + w[i] + " (started at " + FILL_VALUE + ")");
            }
        }
    }

    private OwnedBuffer filled(long length) {
        OwnedBuffer b = allocate(DType.FLOAT32, length);
        buffers.add(b);
        fill(b);
        return b;
    }

    private OwnedBuffer allocate(DType dtype, long length) {
        return target instanceof CudaBackend cuda ? DeviceBuffer.allocate(cuda, dtype, length) : HostBuffer.allocate(dtype, length);
    }

    private void fill(OwnedBuffer b) {
        if (target instanceof CudaBackend cuda) {
            Natives.check(CudaNative.gs_cuda_set_device(cuda.device()));
            Natives.check(CudaNative.gs_cuda_memset(b.address(), FILL, b.bytes(), 0));
            target.synchronize(0);
        } else {
            Pointer.memset(at(b.address()), FILL, b.bytes());
        }
    }

    /** A byte pointer at a raw host address, for JavaCPP's memcpy / memset. */
    private static BytePointer at(long rawAddress) {
        // Not named `address`: inside the anonymous class that name is Pointer's field.
        return new BytePointer() {
            {
                address = rawAddress;
            }
        };
    }
}
