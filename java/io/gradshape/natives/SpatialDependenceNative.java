package io.gradshape.natives;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.NoException;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP mapping of {@code gradshape/spatial_dependence.h}. Internal: callers use
 * {@link io.gradshape.SpatialDependence} and {@link io.gradshape.SpatialDependenceAccumulator}, which
 * validate every argument first. Addresses cross as {@code long} (host or device memory, 0 = NULL).
 */
@Platform(include = "gradshape.h", library = "jnigradshape")
@NoException
public final class SpatialDependenceNative {
    static {
        Loader.load();
    }

    private SpatialDependenceNative() {}

    public static native int gs_sd_stats_cpu(@Cast("const float*") long x, int batch, int channels, int height,
            int width, int layout, int kernelH, int kernelW, int padH, int padW, int rangeMode, int removeZeros,
            @Cast("int64_t*") long pairCount, @Cast("float*") long ranges, @Cast("int64_t*") long nonfinite);

    public static native int gs_sd_stats_cuda(@Cast("const float*") long x, int batch, int channels, int height,
            int width, int layout, int kernelH, int kernelW, int padH, int padW, int rangeMode, int removeZeros,
            @Cast("int64_t*") long pairCount, @Cast("float*") long ranges, @Cast("int64_t*") long nonfinite,
            @Cast("gs_stream") long stream);

    public static native int gs_sd_histogram_cpu(@Cast("const float*") long x, int batch, int channels, int height,
            int width, int layout, int kernelH, int kernelW, int padH, int padW, int bins, int rangeMode,
            float rangeLo, float rangeHi, int removeZeros, @Cast("const int64_t*") long pairCount,
            @Cast("const float*") long ranges, int tableBins, @Cast("int64_t*") long hist);

    public static native int gs_sd_histogram_workspace_cuda(int batch, int channels, int height, int width,
            int kernelH, int kernelW, int tableBins, @Cast("int64_t*") long[] workspaceBytes);

    public static native int gs_sd_histogram_cuda(@Cast("const float*") long x, int batch, int channels, int height,
            int width, int layout, int kernelH, int kernelW, int padH, int padW, int bins, int rangeMode,
            float rangeLo, float rangeHi, int removeZeros, @Cast("const int64_t*") long pairCount,
            @Cast("const float*") long ranges, int tableBins, @Cast("int64_t*") long hist,
            @Cast("void*") long workspace, long workspaceBytes, @Cast("gs_stream") long stream);

    public static native int gs_sd_finalize_cpu(int channels, int kernelH, int kernelW, int removeZeros,
            @Cast("const int64_t*") long pairCount, @Cast("const int64_t*") long hist, int tableBins, float k,
            int order, @Cast("const float*") long previousG, @Cast("float*") long nmi, @Cast("float*") long s,
            @Cast("float*") long g, @Cast("int32_t*") long gKeptPrevious);

    public static native int gs_sd_finalize_cuda(int channels, int kernelH, int kernelW, int removeZeros,
            @Cast("const int64_t*") long pairCount, @Cast("const int64_t*") long hist, int tableBins, float k,
            int order, @Cast("const float*") long previousG, @Cast("float*") long nmi, @Cast("float*") long s,
            @Cast("float*") long g, @Cast("int32_t*") long gKeptPrevious, @Cast("gs_stream") long stream);
}
