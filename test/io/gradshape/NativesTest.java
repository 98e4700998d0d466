package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.gradshape.natives.CoreNative;
import io.gradshape.natives.CudaNative;
import io.gradshape.natives.Natives;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The single error funnel: native status codes and messages become one typed exception. */
class NativesTest {
    @Test
    void okDoesNotThrow() {
        assertDoesNotThrow(() -> Natives.check(0));
    }

    @Test
    void nativeFailureCarriesCodeAndMessage() {
        Natives.load();
        long[] address = new long[1];
        int status = CoreNative.gs_host_alloc(-5, address);
        GradshapeException e = assertThrows(GradshapeException.class, () -> Natives.check(status));
        assertEquals(Status.INVALID_ARGUMENT, e.status());
        assertEquals(1, e.code());
        assertEquals("gs_host_alloc: bytes = -5 < 0", e.getMessage());
    }

    @Test
    void cudaErrorsCarryCudasText() {
        assumeTrue(Gradshape.nativeBuild().contains("CUDA"), "built without nvcc");
        assumeTrue(Backends.cudaUnavailableReason(0) != null, "CUDA works here");
        Natives.load();
        long[] address = new long[1];
        int status = CudaNative.gs_cuda_malloc(1024, address);
        GradshapeException e = assertThrows(GradshapeException.class, () -> Natives.check(status));
        // No driver: the CUDA runtime reports an error of its own, recorded with the failing call.
        assertEquals(Status.CUDA_ERROR, e.status());
        assertTrue(e.getMessage().startsWith("cudaMalloc("), e.getMessage());
        assertTrue(e.getMessage().contains("cudaError"), e.getMessage());
    }

    @Test
    void messagesArePerThread() throws Exception {
        Natives.load();
        Natives.check(CoreNative.gs_cpu_thread_count(new int[1])); // succeeds, leaves nothing behind
        long[] address = new long[1];
        assertEquals(1, CoreNative.gs_host_alloc(-7, address));
        AtomicReference<String> other = new AtomicReference<>();
        Thread t = new Thread(() -> other.set(CoreNative.gs_last_error_message()));
        t.start();
        t.join();
        assertEquals("", other.get());
        assertEquals("gs_host_alloc: bytes = -7 < 0", CoreNative.gs_last_error_message());
    }

    @Test
    void statusCodesMatchTheCHeader() {
        // gs_status in gradshape.h
        assertEquals(0, Status.OK.code());
        assertEquals(1, Status.INVALID_ARGUMENT.code());
        assertEquals(2, Status.OUT_OF_MEMORY.code());
        assertEquals(3, Status.CUDA_ERROR.code());
        assertEquals(4, Status.CUDA_UNAVAILABLE.code());
        assertEquals(5, Status.NONFINITE_INPUT.code());
        assertEquals(6, Status.INTERNAL.code());
        for (Status s : Status.values()) {
            assertEquals(s, Status.of(s.code()));
        }
        assertEquals(Status.INTERNAL, Status.of(999));
        GradshapeException unknown = assertThrows(GradshapeException.class, () -> Natives.check(999));
        assertEquals(999, unknown.code());
        assertEquals(Status.INTERNAL, unknown.status());
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void threadPoolSurvivesResizesBetweenJobs() {
        // Regression: workers started by a resize took the last finished job for a new one, counted
        // themselves done twice, and the next parallel call could wait forever.
        int batch = 2, channels = 4, size = 6; // tiny: the race is in starting jobs, not in running them
        float[] x = new float[batch * channels * size * size];
        java.util.Random random = new java.util.Random(5);
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) random.nextGaussian();
        }
        SpatialDependence.Options options = SpatialDependence.Options.defaults();
        float[] expected = SpatialDependence.compute(Backends.cpu(), x, batch, channels, size, size, options).g();
        // Busy threads deschedule pool workers at random points, which is what opens the window.
        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        List<Thread> spinners = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            Thread t = new Thread(() -> {
                long n = 0;
                while (!stop.get()) {
                    n++;
                }
                assertTrue(n >= 0);
            });
            t.setDaemon(true);
            t.start();
            spinners.add(t);
        }
        try {
            for (int i = 0; i < 3000; i++) {
                int threads = 1 + i % 12;
                Gradshape.setCpuThreads(threads);
                float[] g = SpatialDependence.compute(Backends.cpu(), x, batch, channels, size, size, options).g();
                assertArrayEquals(expected, g, "round " + i + " with " + threads + " threads");
            }
        } finally {
            stop.set(true);
            Gradshape.setCpuThreads(0);
        }
    }

    @Test
    void cpuThreadsCanBeSetAndRestored() {
        int before = Gradshape.cpuThreads();
        assertTrue(before >= 1);
        try {
            Gradshape.setCpuThreads(3);
            assertEquals(3, Gradshape.cpuThreads());
        } finally {
            Gradshape.setCpuThreads(0);
        }
        assertEquals(before, Gradshape.cpuThreads(), "0 restores one thread per hardware thread");
    }
}
