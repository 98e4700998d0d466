package io.gradshape.natives;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.NoException;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP mapping of {@code gradshape/scaled_sgd.h}. Internal: callers use {@link io.gradshape.ScaledSgd},
 * which validates every argument first. Addresses cross as {@code long}; the table is opaque to Java.
 */
@Platform(include = "gradshape.h", library = "jnigradshape")
@NoException
public final class ScaledSgdNative {
    static {
        Loader.load();
    }

    /** {@code GS_SSGD_LAYOUT_*}. */
    public static final int LAYOUT_OIHW = 0;
    public static final int LAYOUT_HWIO = 1;

    private ScaledSgdNative() {}

    public static native int gs_ssgd_table_bytes(int tensors, @Cast("const int64_t*") long[] lengths, int forCuda,
            @Cast("int64_t*") long[] tableBytes, @Cast("int64_t*") long[] blocks);

    public static native int gs_ssgd_table_build(int tensors, @Cast("const int64_t*") long[] weights,
            @Cast("const int64_t*") long[] grads, @Cast("const int64_t*") long[] momentum,
            @Cast("const int64_t*") long[] lengths, @Cast("const int32_t*") int[] kernelArea,
            @Cast("const int32_t*") int[] layout, @Cast("const int64_t*") long[] channels,
            @Cast("const int32_t*") int[] decay, @Cast("const int32_t*") int[] scaleOffset, int forCuda,
            @Cast("void*") long table, long tableBytes);

    public static native int gs_ssgd_step_cpu(@Cast("const void*") long table, int tensors,
            @Cast("const float*") long scales, float lr, float momentum, float dampening, float weightDecay,
            int nesterov, int maximize, float unscale, int firstStep);

    public static native int gs_ssgd_step_cuda(@Cast("const void*") long table, int tensors, long blocks,
            @Cast("const float*") long scales, float lr, float momentum, float dampening, float weightDecay,
            int nesterov, int maximize, float unscale, int firstStep, @Cast("gs_stream") long stream);
}
