package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

class BackendsTest {
    private static boolean cudaUsable() {
        return Backends.cudaUnavailableReason(0) == null;
    }

    @Test
    void autoFallsBackToCpuWithTheReason() {
        assumeTrue(!cudaUsable(), "a CUDA device is usable here: the fallback cannot be observed");
        Backends.Selection s = Backends.select("auto");
        assertInstanceOf(CpuBackend.class, s.backend());
        String why = Backends.cudaUnavailableReason(0);
        assertFalse(why.isBlank());
        assertEquals("CUDA not usable: " + why, s.reason());
    }

    @Test
    void missingDriverIsNamed() {
        assumeTrue(Gradshape.nativeBuild().contains("CUDA"), "built without nvcc");
        assumeTrue(!new java.io.File("/usr/lib/x86_64-linux-gnu/libcuda.so.1").exists()
                && !new java.io.File("/usr/lib64/libcuda.so.1").exists(), "a CUDA driver is installed");
        assertEquals("no CUDA driver (libcuda.so.1 not found)", Backends.cudaUnavailableReason(0));
    }

    @Test
    void autoPicksCudaWhenUsable() {
        assumeTrue(cudaUsable(), "no usable CUDA device");
        Backends.Selection s = Backends.select("auto");
        assertInstanceOf(CudaBackend.class, s.backend());
        assertEquals(0, ((CudaBackend) s.backend()).device());
    }

    @Test
    void overrideSelectsTheCpu() {
        Backends.Selection s = Backends.select(" CPU ");
        assertInstanceOf(CpuBackend.class, s.backend());
        assertEquals("CPU backend requested", s.reason());
        assertTrue(s.backend().description().startsWith("CPU ("));
    }

    @Test
    void forcedCudaWithoutDeviceIsAnErrorNotAFallback() {
        assumeTrue(!cudaUsable(), "a CUDA device is usable here");
        GradshapeException e = assertThrows(GradshapeException.class, () -> Backends.select("cuda"));
        assertEquals(Status.CUDA_UNAVAILABLE, e.status());
        assertEquals(Backends.cudaUnavailableReason(0), e.getMessage());
        assertThrows(GradshapeException.class, () -> Backends.select("cuda:0"));
        assertThrows(GradshapeException.class, Backends::cuda);
    }

    @Test
    void badSpecificationsNameTheProperty() {
        for (String bad : new String[] {"gpu", "cuda:", "cuda:x", "cuda:-1x", ""}) {
            if (bad.isEmpty()) {
                continue; // empty means auto
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.select(bad), bad);
            assertTrue(e.getMessage().startsWith("gradshape.backend: '" + bad + "'"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> Backends.cuda(-1));
        assertThrows(IllegalArgumentException.class, () -> Backends.cuda(1 << 20));
    }

    @Test
    void propertyWinsOverEnvironmentAndBlankMeansAuto() {
        assertEquals("cpu", Backends.configured("cpu", "cuda"));
        assertEquals("cuda:1", Backends.configured(null, " cuda:1 "));
        assertEquals("auto", Backends.configured("  ", null));
        assertEquals("auto", Backends.configured(null, null));
    }

    @Test
    void theTestRunsUnderTheConfiguredOverride() {
        // The build passes -Dgradshape.backend (default auto) to the test JVM: the default selection honours it.
        String configured = Backends.configured();
        Backends.Selection s = Backends.selection();
        if (configured.equals("cpu")) {
            assertInstanceOf(CpuBackend.class, s.backend());
        } else if (configured.startsWith("cuda")) {
            assertInstanceOf(CudaBackend.class, s.backend());
        } else {
            assertEquals(cudaUsable() ? Backend.Kind.CUDA : Backend.Kind.CPU, s.backend().kind());
        }
    }

    @Test
    void infoReportsVersionBackendsAndReason() {
        String info = Gradshape.info();
        assertTrue(info.startsWith("gradshape " + Gradshape.version() + "\n"), info);
        assertTrue(info.contains("CPU backend: available, " + Gradshape.cpuThreads() + " threads"), info);
        if (cudaUsable()) {
            assertTrue(info.contains("CUDA backend: available"), info);
            assertTrue(info.contains("compute capability"), info);
        } else {
            assertTrue(info.contains("CUDA backend: unavailable: " + Backends.cudaUnavailableReason(0)), info);
        }
        assertTrue(info.contains("selected backend: "), info);
        assertFalse(Gradshape.version().equals("unknown"), "version.properties not filtered into the jar");
    }
}
