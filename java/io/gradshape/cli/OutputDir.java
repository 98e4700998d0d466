package io.gradshape.cli;

import io.gradshape.io.Npy;
import io.gradshape.io.NpyArray;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.Objects;

/**
 * The {@code --out DIR} of a command: created when missing (with its parents), each output written as
 * one {@code .npy} file and reported as one line, {@code "wrote DIR/nmi.npy: float32 (64, 3, 3)"}.
 */
public final class OutputDir {
    private final Path dir;
    private final PrintStream log;

    private OutputDir(Path dir, PrintStream log) {
        this.dir = dir;
        this.log = log;
    }

    /**
     * Creates {@code dir} if needed; {@code log} gets one line per file written.
     *
     * @throws NotDirectoryException when {@code dir} exists and is not a directory
     */
    public static OutputDir create(Path dir, PrintStream log) throws IOException {
        Objects.requireNonNull(dir, "dir");
        Objects.requireNonNull(log, "log");
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new NotDirectoryException(dir.toString());
        }
        Files.createDirectories(dir);
        return new OutputDir(dir, log);
    }

    public Path dir() {
        return dir;
    }

    /** Writes {@code array} to {@code DIR/fileName} (replacing it) and returns that path. */
    public Path write(String fileName, NpyArray array) throws IOException {
        Path file = dir.resolve(fileName);
        Npy.write(file, array);
        log.println("wrote " + file + ": " + array);
        return file;
    }
}
