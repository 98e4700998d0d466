package io.gradshape;

/** Status codes of the native library ({@code gs_status} in {@code gradshape.h}), plus Java-side ones. */
public enum Status {
    OK(0),
    /** A precondition that Java validation should have caught; seeing it is a gradshape bug or misuse of raw addresses. */
    INVALID_ARGUMENT(1),
    OUT_OF_MEMORY(2),
    /** A CUDA runtime call or kernel failed; the message carries CUDA's own text. */
    CUDA_ERROR(3),
    /** Built without CUDA, no driver, driver too old, or no device. */
    CUDA_UNAVAILABLE(4),
    /** An input held NaN or infinity where the kernel treats that as an error. */
    NONFINITE_INPUT(5),
    INTERNAL(6),
    /** Java-side: the native library could not be loaded on this platform. */
    NATIVE_LIBRARY_UNAVAILABLE(100);

    private final int code;

    Status(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    /** The status for a native code; unknown codes map to {@link #INTERNAL}. */
    public static Status of(int code) {
        for (Status s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        return INTERNAL;
    }
}
