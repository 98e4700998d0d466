package io.gradshape.io;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Objects;

/**
 * A file that is not a {@code .npy} file gradshape can read: bad magic, malformed header, truncated,
 * or a layout or element type outside the support matrix (see {@link Npy}). The message starts with
 * the file, e.g. {@code "fm.npy: Fortran-order arrays are not supported; save np.ascontiguousarray(a)"}.
 */
public class NpyFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    private final transient Path file;
    private final String reason;

    public NpyFormatException(Path file, String reason) {
        super(Objects.requireNonNull(file, "file") + ": " + Objects.requireNonNull(reason, "reason"));
        this.file = file;
        this.reason = reason;
    }

    /** The file, as the caller named it. */
    public Path file() {
        return file;
    }

    /** The message without the file name. */
    public String reason() {
        return reason;
    }
}
