package io.gradshape;

/**
 * A failure reported by the native library (or the absence of it): the status code and the native
 * message, CUDA's error text included. Invalid arguments are caught in Java before any native call
 * and reported as {@link IllegalArgumentException}, {@link NullPointerException} or
 * {@link IllegalStateException} naming the argument; this exception is for what only the native side
 * can see.
 */
public class GradshapeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final Status status;
    private final int code;

    public GradshapeException(Status status, String message) {
        this(status, status.code(), message, null);
    }

    public GradshapeException(Status status, int code, String message, Throwable cause) {
        super(message, cause);
        this.status = status;
        this.code = code;
    }

    public Status status() {
        return status;
    }

    /** The raw native status code (differs from {@code status().code()} only for unknown codes). */
    public int code() {
        return code;
    }
}
