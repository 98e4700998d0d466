package io.gradshape.natives;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.NoException;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP mapping of {@code gradshape/power_grad.h}. Internal: callers use {@link io.gradshape.PowerGrad},
 * which validates every argument first. Addresses cross as {@code long} (host or device memory, 0 for
 * NULL); the report is a {@code gs_pg_report} of 64 bytes.
 */
@Platform(include = "gradshape.h", library = "jnigradshape")
@NoException
public final class PowerGradNative {
    static {
        Loader.load();
    }

    /** {@code GS_PG_REDUCTION_*}. */
    public static final int REDUCTION_MEAN = 0;
    public static final int REDUCTION_SUM = 1;
    public static final int REDUCTION_NONE = 2;

    /** Size of {@code gs_pg_report}, and the byte offsets of its fields. */
    public static final int REPORT_BYTES = 64;
    public static final int REPORT_LOSS = 0;
    public static final int REPORT_COUNTED_ROWS = 8;
    public static final int REPORT_NONFINITE_ROWS = 16;
    public static final int REPORT_BAD_LABELS = 24;
    public static final int REPORT_FIRST_NONFINITE_ROW = 32;
    public static final int REPORT_FIRST_BAD_LABEL_ROW = 40;

    private PowerGradNative() {}

    public static native int gs_pg_cpu(@Cast("const float*") long logits, int rows, int classes,
            @Cast("const int32_t*") long labels, @Cast("const float*") long targets, int useIgnore, int ignoreIndex,
            float alpha, float smoothing, int reduction, @Cast("float*") long grad, @Cast("float*") long loss,
            @Cast("gs_pg_report*") long report);

    public static native int gs_pg_workspace_cuda(@Cast("int64_t*") long[] workspaceBytes);

    public static native int gs_pg_cuda(@Cast("const float*") long logits, int rows, int classes,
            @Cast("const int32_t*") long labels, @Cast("const float*") long targets, int useIgnore, int ignoreIndex,
            float alpha, float smoothing, int reduction, @Cast("float*") long grad, @Cast("float*") long loss,
            @Cast("gs_pg_report*") long report, @Cast("void*") long workspace, long workspaceBytes,
            @Cast("gs_stream") long stream);
}
