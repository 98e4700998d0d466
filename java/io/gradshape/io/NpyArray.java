package io.gradshape.io;

import io.gradshape.DType;
import io.gradshape.Memory;
import java.util.Arrays;
import java.util.Objects;

/**
 * An n-dimensional array in C (row-major) order: element type, shape and a Java array holding the
 * elements ({@code float[]}, {@code double[]}, {@code int[]} or {@code long[]}, matching the type).
 * What {@link Npy} reads and writes. The data array is shared, not copied: {@link #floats()} and
 * friends return the array itself, and {@link #memory()} is a view of it that the kernels take.
 *
 * <p>Shape {@code ()} is a scalar (one element); a dimension may be 0 (no elements). Sizes are limited
 * to what one Java array holds.
 */
public final class NpyArray {
    /** Largest float64/int64 magnitude below which every integer is exact in float32 (2^24) and float64 (2^53). */
    private static final long FLOAT32_EXACT_INT = 1L << 24;
    private static final long FLOAT64_EXACT_INT = 1L << 53;

    private final DType dtype;
    private final int[] shape;
    private final Object data;

    private NpyArray(DType dtype, int[] shape, Object data, int length) {
        this.dtype = dtype;
        this.shape = checkShape(shape, length);
        this.data = data;
    }

    /** {@code data} (not copied) with the given shape; no dimensions means a scalar. */
    public static NpyArray of(float[] data, int... shape) {
        return new NpyArray(DType.FLOAT32, shape, data, Objects.requireNonNull(data, "data").length);
    }

    /** {@code data} (not copied) with the given shape; no dimensions means a scalar. */
    public static NpyArray of(double[] data, int... shape) {
        return new NpyArray(DType.FLOAT64, shape, data, Objects.requireNonNull(data, "data").length);
    }

    /** {@code data} (not copied) with the given shape; no dimensions means a scalar. */
    public static NpyArray of(int[] data, int... shape) {
        return new NpyArray(DType.INT32, shape, data, Objects.requireNonNull(data, "data").length);
    }

    /** {@code data} (not copied) with the given shape; no dimensions means a scalar. */
    public static NpyArray of(long[] data, int... shape) {
        return new NpyArray(DType.INT64, shape, data, Objects.requireNonNull(data, "data").length);
    }

    /** A new array of zeros. */
    public static NpyArray zeros(DType dtype, int... shape) {
        int size = checkedSize(Objects.requireNonNull(shape, "shape"));
        return switch (Objects.requireNonNull(dtype, "dtype")) {
            case FLOAT32 -> of(new float[size], shape);
            case FLOAT64 -> of(new double[size], shape);
            case INT32 -> of(new int[size], shape);
            case INT64 -> of(new long[size], shape);
        };
    }

    public DType dtype() {
        return dtype;
    }

    /** The dimensions (a copy); empty for a scalar. */
    public int[] shape() {
        return shape.clone();
    }

    /** Number of dimensions (0 for a scalar). */
    public int rank() {
        return shape.length;
    }

    /** Size of dimension {@code axis}; negative axes count from the end, as in NumPy. */
    public int dim(int axis) {
        int a = axis < 0 ? axis + shape.length : axis;
        if (a < 0 || a >= shape.length) {
            throw new IndexOutOfBoundsException("axis " + axis + " of a " + shape.length + "-D array");
        }
        return shape[a];
    }

    /** Number of elements. */
    public int size() {
        return switch (dtype) {
            case FLOAT32 -> ((float[]) data).length;
            case FLOAT64 -> ((double[]) data).length;
            case INT32 -> ((int[]) data).length;
            case INT64 -> ((long[]) data).length;
        };
    }

    /** The float32 elements themselves (not a copy). */
    public float[] floats() {
        requireType(DType.FLOAT32, "asFloat32()");
        return (float[]) data;
    }

    /** The float64 elements themselves (not a copy). */
    public double[] doubles() {
        requireType(DType.FLOAT64, "asFloat64()");
        return (double[]) data;
    }

    /** The int32 elements themselves (not a copy). */
    public int[] ints() {
        requireType(DType.INT32, "asInt32()");
        return (int[]) data;
    }

    /** The int64 elements themselves (not a copy). */
    public long[] longs() {
        requireType(DType.INT64, "asInt64()");
        return (long[]) data;
    }

    /** A {@link Memory} view of the elements, for the kernels. */
    public Memory memory() {
        return switch (dtype) {
            case FLOAT32 -> Memory.of((float[]) data);
            case FLOAT64 -> Memory.of((double[]) data);
            case INT32 -> Memory.of((int[]) data);
            case INT64 -> Memory.of((long[]) data);
        };
    }

    /** The same elements (shared) with another shape of the same size. */
    public NpyArray reshape(int... newShape) {
        return new NpyArray(dtype, newShape, data, size());
    }

    /**
     * As float32. float64 rounds to nearest (what a PyTorch float64 dump needs); a finite value too
     * large for float32 is an error rather than an infinity. Integers convert when exact (|v| <= 2^24).
     *
     * @throws IllegalArgumentException naming the first element that cannot convert
     */
    public NpyArray asFloat32() {
        if (dtype == DType.FLOAT32) {
            return this;
        }
        int n = size();
        float[] out = new float[n];
        switch (dtype) {
            case FLOAT64 -> {
                double[] in = (double[]) data;
                for (int i = 0; i < n; i++) {
                    float f = (float) in[i];
                    if (Float.isInfinite(f) && !Double.isInfinite(in[i])) {
                        throw new IllegalArgumentException("float64 element " + index(i) + " = " + in[i] + " overflows float32");
                    }
                    out[i] = f;
                }
            }
            case INT32 -> {
                int[] in = (int[]) data;
                for (int i = 0; i < n; i++) {
                    requireExact(in[i], FLOAT32_EXACT_INT, i, "float32");
                    out[i] = in[i];
                }
            }
            case INT64 -> {
                long[] in = (long[]) data;
                for (int i = 0; i < n; i++) {
                    requireExact(in[i], FLOAT32_EXACT_INT, i, "float32");
                    out[i] = in[i];
                }
            }
            default -> throw new AssertionError(dtype);
        }
        return new NpyArray(DType.FLOAT32, shape, out, n);
    }

    /**
     * As float64: exact for float32 and int32; int64 when |v| <= 2^53.
     *
     * @throws IllegalArgumentException naming the first element that cannot convert
     */
    public NpyArray asFloat64() {
        if (dtype == DType.FLOAT64) {
            return this;
        }
        int n = size();
        double[] out = new double[n];
        switch (dtype) {
            case FLOAT32 -> {
                float[] in = (float[]) data;
                for (int i = 0; i < n; i++) {
                    out[i] = in[i];
                }
            }
            case INT32 -> {
                int[] in = (int[]) data;
                for (int i = 0; i < n; i++) {
                    out[i] = in[i];
                }
            }
            case INT64 -> {
                long[] in = (long[]) data;
                for (int i = 0; i < n; i++) {
                    requireExact(in[i], FLOAT64_EXACT_INT, i, "float64");
                    out[i] = in[i];
                }
            }
            default -> throw new AssertionError(dtype);
        }
        return new NpyArray(DType.FLOAT64, shape, out, n);
    }

    /**
     * As int32 (class labels, indices): int64 values must fit. Floating-point arrays are refused, not
     * truncated.
     *
     * @throws IllegalArgumentException for a floating-point array or a value outside int32
     */
    public NpyArray asInt32() {
        switch (dtype) {
            case INT32 -> {
                return this;
            }
            case INT64 -> {
                long[] in = (long[]) data;
                int[] out = new int[in.length];
                for (int i = 0; i < in.length; i++) {
                    if (in[i] < Integer.MIN_VALUE || in[i] > Integer.MAX_VALUE) {
                        throw new IllegalArgumentException("int64 element " + index(i) + " = " + in[i] + " does not fit in int32");
                    }
                    out[i] = (int) in[i];
                }
                return new NpyArray(DType.INT32, shape, out, out.length);
            }
            default -> throw notIntegers();
        }
    }

    /**
     * As int64 (PyTorch's index type): int32 widens. Floating-point arrays are refused, not truncated.
     *
     * @throws IllegalArgumentException for a floating-point array
     */
    public NpyArray asInt64() {
        switch (dtype) {
            case INT64 -> {
                return this;
            }
            case INT32 -> {
                int[] in = (int[]) data;
                long[] out = new long[in.length];
                for (int i = 0; i < in.length; i++) {
                    out[i] = in[i];
                }
                return new NpyArray(DType.INT64, shape, out, out.length);
            }
            default -> throw notIntegers();
        }
    }

    /** The shape as NumPy prints it: {@code ()}, {@code (5,)}, {@code (2, 3)}. */
    public String shapeString() {
        return shapeString(shape);
    }

    /** As NumPy prints a shape: {@code ()}, {@code (5,)}, {@code (2, 3)}. */
    public static String shapeString(int[] shape) {
        if (shape.length == 1) {
            return "(" + shape[0] + ",)";
        }
        StringBuilder s = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) {
            s.append(i == 0 ? "" : ", ").append(shape[i]);
        }
        return s.append(')').toString();
    }

    /** Same type, shape and elements (floating-point elements compared bit for bit, as {@link Arrays#equals}). */
    @Override
    public boolean equals(Object o) {
        if (!(o instanceof NpyArray a) || a.dtype != dtype || !Arrays.equals(a.shape, shape)) {
            return false;
        }
        return switch (dtype) {
            case FLOAT32 -> Arrays.equals((float[]) data, (float[]) a.data);
            case FLOAT64 -> Arrays.equals((double[]) data, (double[]) a.data);
            case INT32 -> Arrays.equals((int[]) data, (int[]) a.data);
            case INT64 -> Arrays.equals((long[]) data, (long[]) a.data);
        };
    }

    @Override
    public int hashCode() {
        return 31 * dtype.hashCode() + Arrays.hashCode(shape);
    }

    /** E.g. {@code "float32 (2, 3)"}. */
    @Override
    public String toString() {
        return Npy.dtypeName(dtype) + " " + shapeString();
    }

    /** The multi-index of flat element {@code flat}, e.g. {@code [1, 2]}, for messages. */
    String index(int flat) {
        if (shape.length == 0) {
            return "[]";
        }
        int[] idx = new int[shape.length];
        long rest = flat;
        for (int a = shape.length - 1; a >= 0; a--) {
            idx[a] = (int) (rest % shape[a]);
            rest /= shape[a];
        }
        return Arrays.toString(idx);
    }

    private void requireExact(long v, long limit, int i, String target) {
        if (v > limit || v < -limit) {
            throw new IllegalArgumentException(Npy.dtypeName(dtype) + " element " + index(i) + " = " + v
                    + " is not exactly representable in " + target);
        }
    }

    private IllegalArgumentException notIntegers() {
        return new IllegalArgumentException("expected integers (int32 or int64), got " + Npy.dtypeName(dtype)
                + "; save them with a.astype(np.int64)");
    }

    private void requireType(DType expected, String conversion) {
        if (dtype != expected) {
            throw new IllegalStateException("a " + Npy.dtypeName(dtype) + " array holds no " + Npy.dtypeName(expected)
                    + " elements; convert with " + conversion);
        }
    }

    /** Number of elements of {@code shape}, checked: no negative dimension, at most one Java array. */
    static int checkedSize(int[] shape) {
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("shape " + shapeString(shape) + ": negative dimension");
            }
        }
        long size = 1;
        for (int d : shape) {
            size = Math.min(size * d, Npy.MAX_ELEMENTS + 1L); // saturates; a later 0 still makes it 0
        }
        if (size > Npy.MAX_ELEMENTS) {
            throw new IllegalArgumentException("shape " + shapeString(shape) + " holds more than "
                    + Npy.MAX_ELEMENTS + " elements, the most one Java array holds");
        }
        return (int) size;
    }

    private static int[] checkShape(int[] shape, int length) {
        int[] copy = Objects.requireNonNull(shape, "shape").clone();
        int size = checkedSize(copy);
        if (size != length) {
            throw new IllegalArgumentException("shape " + shapeString(copy) + " holds " + size + " elements, data has " + length);
        }
        return copy;
    }
}
