package io.gradshape.natives;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.NoException;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP mapping of the library-wide part of {@code gradshape.h}: errors, version, CPU threads and
 * aligned host memory. Internal: callers use {@link io.gradshape.Gradshape}. Every function returns
 * a {@code gs_status}; {@link Natives#check} turns a failure into an exception.
 */
@Platform(include = "gradshape.h", library = "jnigradshape")
@NoException
public final class CoreNative {
    static {
        Loader.load();
    }

    private CoreNative() {}

    public static native String gs_last_error_message();

    public static native String gs_version();

    public static native String gs_build_info();

    public static native int gs_cpu_thread_count(@Cast("int32_t*") int[] threads);

    public static native int gs_cpu_set_thread_count(int threads);

    public static native int gs_host_alloc(long bytes, @Cast("int64_t*") long[] address);

    public static native int gs_host_free(@Cast("void*") long address);
}
