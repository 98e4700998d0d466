package io.gradshape.cli;

import io.gradshape.io.Npy;
import io.gradshape.io.NpyArray;
import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Arrays;

/**
 * Reads command inputs from {@code .npy} files, converted to the element type a kernel takes and
 * checked against the shape it needs. Only regular files are read: a FIFO, socket or device given as
 * an input is refused before it is opened (opening a FIFO would wait for a writer forever). Every
 * error starts with the file:
 * <pre>
 * NpyArray x = Inputs.float32(input, "[N][C][H][W]");
 * NpyArray g = Inputs.float32(grads);
 * Inputs.requireShape(grads, g, w.shape(), "the shape of " + weights);
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
        NpyArray a = read(file);
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
        NpyArray a = read(file);
        try {
            return a.asInt64();
        } catch (IllegalArgumentException e) {
            throw new InputException(file + ": " + e.getMessage(), e);
        }
    }

    /** Reads integers as int32; int64 values must fit, floating point is refused. */
    public static NpyArray int32(Path file) throws IOException, InputException {
        NpyArray a = read(file);
        try {
            return a.asInt32();
        } catch (IllegalArgumentException e) {
            throw new InputException(file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Reads {@code file} as it is, after checking that it is a regular file (a link to one is fine).
     *
     * @throws java.nio.file.NoSuchFileException when it does not exist
     * @throws FileSystemException when it is a folder, a FIFO, a socket or a device
     */
    public static NpyArray read(Path file) throws IOException {
        BasicFileAttributes attributes = Files.readAttributes(file, BasicFileAttributes.class);
        if (attributes.isDirectory()) {
            throw new FileSystemException(file.toString(), null, "is a directory, not a .npy file");
        }
        if (!attributes.isRegularFile()) {
            throw new FileSystemException(file.toString(), null,
                    "is not a regular file (a FIFO, socket or device); give a .npy file");
        }
        return Npy.read(file);
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
