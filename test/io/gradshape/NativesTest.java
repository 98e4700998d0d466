package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.gradshape.natives.CoreNative;
import io.gradshape.natives.CudaNative;
import io.gradshape.natives.Natives;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

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
