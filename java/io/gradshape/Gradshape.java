package io.gradshape;

import io.gradshape.natives.CoreNative;
import io.gradshape.natives.CudaNative;
import io.gradshape.natives.Natives;
import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;

/** Library-wide facts and settings: version, build, CPU threads, and the {@code info} report. */
public final class Gradshape {
    private Gradshape() {}

    /** The version of the Java library (from the jar). */
    public static String version() {
        try (InputStream in = Gradshape.class.getResourceAsStream("version.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** How the native library was built, e.g. "CPU + CUDA 13.0 kernels (sm_90 + compute_90 PTX, ...)". */
    public static String nativeBuild() {
        Natives.load();
        return CoreNative.gs_build_info();
    }

    /** Threads the CPU backend uses (the calling thread counts as one). */
    public static int cpuThreads() {
        Natives.load();
        int[] n = new int[1];
        Natives.check(CoreNative.gs_cpu_thread_count(n));
        return n[0];
    }

    /**
     * The most threads {@link #setCpuThreads} accepts: 4 per hardware thread, at least 64. More would only
     * oversubscribe the cores, and thousands of native threads can exhaust the process's thread limit.
     */
    public static int maxCpuThreads() {
        return Math.max(64, 4 * Runtime.getRuntime().availableProcessors());
    }

    /**
     * Sets the CPU backend's threads; {@code threads <= 0} restores one per hardware thread.
     *
     * @throws IllegalArgumentException naming {@code threads} above {@link #maxCpuThreads()}
     */
    public static void setCpuThreads(int threads) {
        int max = maxCpuThreads();
        if (threads > max) {
            throw new IllegalArgumentException("threads: expected <= " + max + " (4 per hardware thread, at least 64),"
                    + " or <= 0 for one per hardware thread; got " + threads);
        }
        Natives.load();
        Natives.check(CoreNative.gs_cpu_set_thread_count(threads));
    }

    /** The {@code info} report: version, build, backends, devices and the reason for any fallback. */
    public static String info() {
        StringBuilder out = new StringBuilder();
        out.append("gradshape ").append(version()).append('\n');
        if (!Natives.available()) {
            out.append("native library: NOT LOADED (").append(Natives.loadFailure()).append(")\n");
            out.append("backends: none\n");
            return out.toString();
        }
        out.append("native library: ").append(CoreNative.gs_version()).append(", ").append(nativeBuild()).append('\n');
        out.append("CPU backend: available, ").append(cpuThreads()).append(" threads\n");
        int devices = Backends.cudaDeviceCount();
        if (devices == 0) {
            out.append("CUDA backend: unavailable: ").append(Backends.cudaUnavailableReason(0)).append('\n');
        } else {
            int[] driver = new int[1];
            int[] runtime = new int[1];
            if (CudaNative.gs_cuda_versions(driver, runtime) == 0) {
                out.append(String.format("CUDA backend: available, driver %d.%d, runtime %d.%d%n", driver[0] / 1000,
                        driver[0] % 1000 / 10, runtime[0] / 1000, runtime[0] % 1000 / 10));
            } else {
                out.append("CUDA backend: available\n");
            }
            for (int d = 0; d < devices; d++) {
                CudaBackend cuda = Backends.cuda(d);
                out.append("  device ").append(d).append(": ").append(cuda.deviceName())
                        .append(", compute capability ").append(cuda.computeCapability())
                        .append(String.format(", %.1f GiB, %d multiprocessors%n",
                                cuda.totalMemoryBytes() / (1024.0 * 1024 * 1024), cuda.multiprocessors()));
            }
        }
        try {
            Backends.Selection s = Backends.selection();
            out.append("selected backend: ").append(s.backend().description()).append(" (").append(s.reason()).append(")\n");
        } catch (RuntimeException e) {
            out.append("selected backend: none: ").append(e.getMessage()).append('\n');
        }
        return out.toString();
    }
}
