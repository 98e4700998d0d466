package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Random;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.Test;

/**
 * Repros of the host-side CUDA defects of issue 11 on a real GPU (the emulation tests show F1, F5 and
 * F9 in the native layer; these show the Java layer's part): F1 a pending foreign error, F2 the
 * caller's current device, F3 the caller's non-blocking stream, F11 frees with the buffer's device.
 */
@RequiresCuda
class CudaHostSideTest {

    /** F1: after the host program's own failed runtime call, a step reports success and updates once. */
    @Test
    void stepAfterAForeignFailedCallUpdatesOnce() {
        CudaBackend cuda = Backends.cuda();
        int n = 4099;
        long seed = System.nanoTime();
        Random rnd = new Random(seed);
        float[] w = new float[n];
        float[] g = new float[n];
        for (int i = 0; i < n; i++) {
            w[i] = (float) rnd.nextGaussian();
            g[i] = (float) rnd.nextGaussian();
        }
        float[] expected = w.clone();
        try (ScaledSgd cpu = ScaledSgd.builder(Backends.cpu()).lr(0.1f)
                .addParameter(ScaledSgd.Parameter.of(Memory.of(expected), Memory.of(g.clone()))).build()) {
            cpu.step();
        }
        try (DeviceBuffer dw = DeviceBuffer.copyOf(cuda, Memory.of(w));
                DeviceBuffer dg = DeviceBuffer.copyOf(cuda, Memory.of(g));
                ScaledSgd sgd = ScaledSgd.builder(cuda).lr(0.1f).addParameter(ScaledSgd.Parameter.of(dw.memory(), dg.memory()))
                        .build()) {
            Pointer p = new Pointer();
            // 2^50 bytes: an out-of-memory that stays pending for cudaGetLastError.
            assertNotEquals(0, cudart.cudaMalloc(p, 1L << 50), "the huge allocation succeeded");
            sgd.step();  // must not throw: the kernel was queued
            assertArrayEquals(expected, dw.toFloatArray(), "one step (seed " + seed + ")");
        }
    }

    /** F2: gradshape calls leave the caller's current device as they found it. */
    @Test
    void callsRestoreTheCallersDevice() {
        int[] count = new int[1];
        assertEquals(0, cudart.cudaGetDeviceCount(count));
        assumeTrue(count[0] >= 2, "needs two GPUs: " + count[0] + " visible");
        CudaBackend second = Backends.cuda(1);
        assertEquals(0, cudart.cudaSetDevice(0));
        try (DeviceBuffer b = second.allocate(DType.FLOAT32, 1000)) {
            b.copyFrom(Memory.of(new float[1000]));
            int[] now = new int[1];
            cudart.cudaGetDevice(now);
            assertEquals(0, now[0], "current device after gradshape calls on cuda:1");
            // F11: freed with cuda:1 current (the emulation counts frees on another device; here it must not fail).
        }
        int[] now = new int[1];
        cudart.cudaGetDevice(now);
        assertEquals(0, now[0], "current device after closing a cuda:1 buffer");
    }

    /**
     * F3: reset on the caller's non-blocking stream is ordered after the observe queued there; on the
     * legacy default stream it could clear the state before that kernel ran, and the new round would
     * then hold the old batch's counts.
     */
    @Test
    void resetIsOrderedOnTheCallersNonBlockingStream() {
        CudaBackend cuda = Backends.cuda();
        int batch = 64, channels = 16, h = 56, w = 56;
        long seed = System.nanoTime();
        Random rnd = new Random(seed);
        float[] big = new float[batch * channels * h * w];
        for (int i = 0; i < big.length; i++) {
            big[i] = (float) rnd.nextGaussian();
        }
        float[] small = new float[channels * h * w];
        for (int i = 0; i < small.length; i++) {
            small[i] = (float) (rnd.nextGaussian() * 3);
        }
        SpatialDependence.Options o = SpatialDependence.Options.defaults().kernel(3, 3).padding(1, 1);
        SpatialDependence.Result expected;
        try (SpatialDependenceAccumulator cpu = new SpatialDependenceAccumulator(Backends.cpu(), channels, h, w, o)) {
            cpu.observe(Memory.of(small), 1);
            cpu.beginBinning();
            cpu.bin(Memory.of(small), 1);
            expected = cpu.finish();
        }
        CUstream_st stream = new CUstream_st();
        assertEquals(0, cudart.cudaStreamCreateWithFlags(stream, cudart.cudaStreamNonBlocking));
        long s = Streams.handle(stream);
        try (DeviceBuffer x = DeviceBuffer.copyOf(cuda, Memory.of(big));
                DeviceBuffer y = DeviceBuffer.copyOf(cuda, Memory.of(small));
                SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(cuda, channels, h, w, o)) {
            for (int round = 0; round < 3; round++) {
                acc.observe(x.memory(), batch, s);
                acc.reset(s);
                acc.observe(y.memory(), 1, s);
                acc.beginBinning(s);
                acc.bin(y.memory(), 1, s);
                SpatialDependence.Result r = acc.finish(null, s);
                assertArrayEquals(expected.nmi(), r.nmi(), 1e-5f, "round " + round + " (seed " + seed + ")");
                acc.reset(s);
            }
        } finally {
            cudart.cudaStreamDestroy(stream);
        }
    }
}
