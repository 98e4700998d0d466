package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.Test;

/** Device memory: owned buffers, caller-owned memory from the CUDA presets, release. GPU only. */
@RequiresCuda
class CudaMemoryTest {
    private static float[] random(int n, long seed) {
        Random r = new Random(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian();
        }
        return a;
    }

    @Test
    void roundTripThroughOwnedDeviceMemory() {
        CudaBackend cuda = Backends.cuda();
        long before = DeviceBuffer.liveBytes();
        for (int n : new int[] {0, 1, 3, 1025, 1 << 20}) {
            float[] data = random(n, n);
            try (DeviceBuffer d = DeviceBuffer.copyOf(cuda, Memory.of(data));
                    DeviceBuffer e = cuda.allocate(DType.FLOAT32, n);
                    HostBuffer h = HostBuffer.allocate(DType.FLOAT32, n)) {
                e.copyFrom(d.memory());              // device -> device
                e.copyTo(h.memory());                // device -> host
                float[] back = new float[n];
                DeviceBuffer.copyOf(cuda, h.memory()).close();
                d.copyFrom(h.memory());              // host -> device
                d.copyTo(Memory.of(back));           // device -> array
                assertArrayEquals(data, back, "n=" + n);
            }
        }
        assertEquals(before, DeviceBuffer.liveBytes());
    }

    @Test
    void interoperatesWithMemoryAndStreamsOfTheCudaPresets() {
        CudaBackend cuda = Backends.cuda();
        int n = 4099;
        float[] data = random(n, 7);
        Pointer presetsMemory = new Pointer();
        assertEquals(0, cudart.cudaMalloc(presetsMemory, 4L * n));
        CUstream_st stream = new CUstream_st();
        assertEquals(0, cudart.cudaStreamCreate(stream));
        try (DeviceBuffer ours = DeviceBuffer.copyOf(cuda, Memory.of(data))) {
            Memory theirs = Memory.device(presetsMemory, DType.FLOAT32, n, 0);
            ours.copyTo(theirs);                                   // our memory -> memory the presets own
            FloatPointer host = new FloatPointer(n);
            assertEquals(0, cudart.cudaMemcpy(host, presetsMemory, 4L * n, cudart.cudaMemcpyDeviceToHost));
            float[] back = new float[n];
            host.get(back);
            assertArrayEquals(data, back);

            // and back the other way, queued on a stream the presets created
            try (DeviceBuffer copy = cuda.allocate(DType.FLOAT32, n)) {
                cuda.copy(copy.memory(), theirs, Streams.handle(stream));
                cuda.synchronize(Streams.handle(stream));
                assertArrayEquals(data, copy.toFloatArray());
            }
        } finally {
            cudart.cudaStreamDestroy(stream);
            cudart.cudaFree(presetsMemory);
        }
    }

    @Test
    void closingReleasesDeviceMemory() {
        CudaBackend cuda = Backends.cuda();
        long bytes = 512L << 20;
        long freeBefore = cuda.memoryInfo()[0];
        DeviceBuffer big = cuda.allocate(DType.FLOAT32, bytes / 4);
        long freeDuring = cuda.memoryInfo()[0];
        assertTrue(freeBefore - freeDuring >= bytes, "allocation visible to cudaMemGetInfo");
        Memory view = big.memory();
        big.close();
        big.close();
        long freeAfter = cuda.memoryInfo()[0];
        assertTrue(freeAfter >= freeBefore - (64L << 20), "freed: before " + freeBefore + ", after " + freeAfter);
        assertThrows(IllegalStateException.class, big::address);
        assertThrows(IllegalStateException.class, view::address);
        assertThrows(IllegalStateException.class, () -> big.copyFrom(Memory.of(new float[(int) (bytes / 4)])));
    }

    @Test
    void stagingRejectsMemoryOfAnotherDevice() {
        CudaBackend cuda = Backends.cuda();
        Memory other = Memory.device(0x1000, DType.FLOAT32, 4, cuda.device() + 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Staged.in(cuda, other, "grads", Streams.DEFAULT));
        assertTrue(e.getMessage().startsWith("grads: device memory of cuda:"), e.getMessage());
    }
}
