package io.gradshape.natives;

import io.gradshape.GradshapeException;
import io.gradshape.Status;
import org.bytedeco.javacpp.Loader;

/**
 * Loads the native library once and is the single place where native status codes become
 * exceptions. Internal to gradshape.
 */
public final class Natives {
    private static volatile Throwable loadError;
    private static volatile boolean loaded;

    private Natives() {}

    /** Loads libjnigradshape (from the jar, through JavaCPP's Loader); throws if it cannot be loaded. */
    public static synchronized void load() {
        if (loaded) {
            return;
        }
        if (loadError != null) {
            throw unavailable();
        }
        try {
            Loader.load(CoreNative.class);
            loaded = true;
        } catch (Throwable t) { // UnsatisfiedLinkError, or a platform JavaCPP does not know
            loadError = t;
            throw unavailable();
        }
    }

    /** Whether the native library is loaded (attempting the load once). */
    public static boolean available() {
        try {
            load();
            return true;
        } catch (GradshapeException e) {
            return false;
        }
    }

    /** Why the native library could not be loaded, or null. */
    public static String loadFailure() {
        available();
        Throwable t = loadError;
        return t == null ? null : t.toString();
    }

    private static GradshapeException unavailable() {
        return new GradshapeException(Status.NATIVE_LIBRARY_UNAVAILABLE, Status.NATIVE_LIBRARY_UNAVAILABLE.code(),
                "gradshape native library not available for " + Loader.getPlatform() + ": " + loadError, loadError);
    }

    /**
     * Throws the exception for a failed native call. Must run on the thread that made the call, right
     * after it: the native message is kept per thread.
     */
    public static void check(int status) {
        if (status != 0) {
            throw new GradshapeException(Status.of(status), status, CoreNative.gs_last_error_message(), null);
        }
    }
}
