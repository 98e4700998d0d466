package io.gradshape.cli;

import java.io.PrintStream;
import java.util.Objects;

/**
 * Where a command writes: results to {@code out}, progress and diagnostics to {@code err}.
 * {@code interactive} says whether {@code err} is a console, where progress redraws one line.
 */
public record Terminal(PrintStream out, PrintStream err, boolean interactive) {
    public Terminal {
        Objects.requireNonNull(out, "out");
        Objects.requireNonNull(err, "err");
    }

    /** A progress line on {@code err}; close it (try-with-resources) when the work is done. */
    public Progress progress() {
        return new Progress(err, interactive);
    }
}
