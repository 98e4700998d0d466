package io.gradshape;

import io.gradshape.natives.CoreNative;
import io.gradshape.natives.CudaNative;
import io.gradshape.natives.Natives;
import java.util.Locale;

/**
 * Chooses where kernels run. {@link #auto()} gives the first usable CUDA device, else the CPU, and
 * {@link #selection()} says why. The choice can be forced with the system property
 * {@code gradshape.backend} or the environment variable {@code GRADSHAPE_BACKEND}: {@code auto},
 * {@code cpu}, {@code cuda} or {@code cuda:N}. A forced {@code cuda} that cannot run is an error,
 * never a silent fallback.
 */
public final class Backends {
    /** The property and the environment variable that force a backend. */
    public static final String PROPERTY = "gradshape.backend";
    public static final String ENVIRONMENT = "GRADSHAPE_BACKEND";

    /** A chosen backend and the reason for the choice, in words. */
    public record Selection(Backend backend, String reason) {}

    private static volatile Selection defaultSelection;

    private Backends() {}

    /** The default backend: as forced by {@value #PROPERTY} / {@value #ENVIRONMENT}, else the best one. */
    public static Backend auto() {
        return selection().backend();
    }

    /** The default backend with the reason it was chosen (computed once, then cached). */
    public static Selection selection() {
        Selection s = defaultSelection;
        if (s == null) {
            synchronized (Backends.class) {
                s = defaultSelection;
                if (s == null) {
                    s = select(configured());
                    defaultSelection = s;
                }
            }
        }
        return s;
    }

    /** The value of the override, or "auto": the property wins over the environment. */
    public static String configured() {
        return configured(System.getProperty(PROPERTY), System.getenv(ENVIRONMENT));
    }

    static String configured(String property, String environment) {
        if (property != null && !property.isBlank()) {
            return property.trim();
        }
        return environment != null && !environment.isBlank() ? environment.trim() : "auto";
    }

    /**
     * Selects a backend from a specification: {@code auto}, {@code cpu}, {@code cuda} or {@code cuda:N}.
     *
     * @throws IllegalArgumentException for an unknown specification
     * @throws GradshapeException (CUDA_UNAVAILABLE) when CUDA is asked for and cannot run
     */
    public static Selection select(String spec) {
        String s = spec == null ? "auto" : spec.trim().toLowerCase(Locale.ROOT);
        if (s.equals("cpu")) {
            return new Selection(cpu(), "CPU backend requested");
        }
        if (s.equals("cuda")) {
            return new Selection(cuda(0), "CUDA backend requested");
        }
        if (s.startsWith("cuda:")) {
            int device;
            try {
                device = Integer.parseInt(s.substring(5));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(PROPERTY + ": '" + spec + "' is not auto, cpu, cuda or cuda:N");
            }
            return new Selection(cuda(device), "CUDA device " + device + " requested");
        }
        if (!s.equals("auto")) {
            throw new IllegalArgumentException(PROPERTY + ": '" + spec + "' is not auto, cpu, cuda or cuda:N");
        }
        String why = cudaUnavailableReason(0);
        if (why == null) {
            return new Selection(cuda(0), "CUDA device 0 is usable");
        }
        return new Selection(cpu(), "CUDA not usable: " + why);
    }

    /** The native CPU backend. */
    public static CpuBackend cpu() {
        CpuBackend.ensureLoaded();
        return CpuBackend.INSTANCE;
    }

    /** CUDA device 0, or an exception saying why CUDA cannot run. */
    public static CudaBackend cuda() {
        return cuda(0);
    }

    private static final CudaBackend[] CUDA_BACKENDS = new CudaBackend[64];

    /** CUDA device {@code device}, or an exception saying why it cannot be used. */
    public static synchronized CudaBackend cuda(int device) {
        if (device < 0 || device >= CUDA_BACKENDS.length) {
            throw new IllegalArgumentException("device: " + device + " is not a CUDA device ordinal");
        }
        String why = cudaUnavailableReason(device);
        if (why != null) {
            throw new GradshapeException(Status.CUDA_UNAVAILABLE, why);
        }
        if (CUDA_BACKENDS[device] == null) {
            CUDA_BACKENDS[device] = new CudaBackend(device);
        }
        return CUDA_BACKENDS[device];
    }

    /** Number of usable CUDA devices (0 when CUDA cannot run). */
    public static int cudaDeviceCount() {
        return cudaProbe().devices();
    }

    /** Why CUDA device {@code device} cannot be used, or null when it can. */
    public static String cudaUnavailableReason(int device) {
        if (device < 0) {
            throw new IllegalArgumentException("device: " + device + " is not a CUDA device ordinal");
        }
        CudaProbe probe = cudaProbe();
        if (probe.reason() != null) {
            return probe.reason();
        }
        if (device >= probe.devices()) {
            return "no CUDA device " + device + " (" + probe.devices() + " visible)";
        }
        return null;
    }

    /** What the CUDA runtime said once: drivers and devices do not come and go within a process. */
    private record CudaProbe(int devices, String reason) {}

    private static volatile CudaProbe probe;

    private static CudaProbe cudaProbe() {
        CudaProbe p = probe;
        if (p == null) {
            synchronized (Backends.class) {
                p = probe;
                if (p == null) {
                    p = probeCuda();
                    probe = p;
                }
            }
        }
        return p;
    }

    private static CudaProbe probeCuda() {
        if (!Natives.available()) {
            return new CudaProbe(0, "the native library did not load: " + Natives.loadFailure());
        }
        int[] count = new int[1];
        if (CudaNative.gs_cuda_device_count(count) != 0) {
            return new CudaProbe(0, CoreNative.gs_last_error_message());
        }
        return new CudaProbe(count[0], null);
    }
}
