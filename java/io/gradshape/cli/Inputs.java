package io.gradshape.cli;

import io.gradshape.io.Npy;
import io.gradshape.io.NpyArray;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Reads command inputs from {@code .npy} files, converted to the element type a kernel takes and
 * checked against the shape it needs. Every error starts with the file:
 * <pre>
 * NpyArray x = Inputs.float32(args.path("input"), "[N][C][H][W]");
 * NpyArray g = Inputs.float32(args.path("grads"));
 * Inputs.requireShape(args.path("grads"), g, w.shape(), "the shape of " + args.path("weights"));
 * </pre>
 */
public final class Inputs {
    private Inputs() {}

    /**
     * Reads {@code file} as float32: float32 as is, float64 rounded to nearest (a PyTorch float64
     * dump), integers when exact.
     *
     * @throws InputException when a value does not convert (too large for float32, an inexact integer)
     * @throws io.gradshape.io.NpyFormatException when the file is not a supported .npy file
     */
    public static NpyArray float32(Path file) throws IOException, InputException {
        NpyArray a = Npy.read(file);
        try {
            return a.asFloat32();
        } catch (IllegalArgumentException e) {
            throw new InputException(file + ": " + e.getMessage(), e);
        }
    }

    /**
     * As {@link #float32(Path)}, and checks the rank against {@code layout}, one bracket per axis,
     * e.g. {@code "[N][C][H][W]"}: {@code "fm.npy: expected a 4-D array [N][C][H][W], got float32 (3, 32)"}.
     */
    public static NpyArray float32(Path file, String layout) throws IOException, InputException {
        NpyArray a = float32(file);
        requireRank(file, a, layout);
        return a;
    }

    /** Reads integers (class labels, indices) as int64; int32 widens, floating point is refused. */
    public static NpyArray int64(Path file) throws IOException, InputException {
        NpyArray a = Npy.read(file);
        try {
            return a.asInt64();
        } catch (IllegalArgumentException e) {
            throw new InputException(file + ": " + e.getMessage(), e);
        }
    }

    /** Reads integers as int32; int64 values must fit, floating point is refused. */
    public static NpyArray int32(Path file) throws IOException, InputException {
        NpyArray a = Npy.read(file);
        try {
            return a.asInt32();
        } catch (IllegalArgumentException e) {
            throw new InputException(file + ": " + e.getMessage(), e);
        }
    }

    /** Checks that {@code array} has as many axes as {@code layout} has brackets ({@code "[B][C]"}: 2). */
    public static void requireRank(Path file, NpyArray array, String layout) throws InputException {
        int rank = (int) layout.chars().filter(c -> c == '[').count();
        if (array.rank() != rank) {
            throw new InputException(file + ": expected a " + rank + "-D array " + layout + ", got " + array);
        }
    }

    /**
     * Checks that {@code array} has exactly {@code expected} as shape; {@code why} says where that
     * shape comes from, e.g. {@code "the shape of w.npy"}.
     */
    public static void requireShape(Path file, NpyArray array, int[] expected, String why) throws InputException {
        if (!Arrays.equals(array.shape(), expected)) {
            throw new InputException(file + ": expected shape " + NpyArray.shapeString(expected) + " (" + why + "), got "
                    + array.shapeString());
        }
    }
}
