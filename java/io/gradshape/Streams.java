package io.gradshape;

import org.bytedeco.javacpp.Pointer;

/**
 * CUDA streams cross into gradshape as raw {@code cudaStream_t} handles ({@code long}). A stream from
 * the CUDA presets ({@code org.bytedeco.cuda.cudart.CUstream_st}) or any other JavaCPP pointer
 * converts with {@link #handle(Pointer)}; 0 is the legacy default stream.
 */
public final class Streams {
    /** The legacy default stream. */
    public static final long DEFAULT = 0L;

    private Streams() {}

    /** The raw handle of a stream pointer; null means the default stream. */
    public static long handle(Pointer stream) {
        return stream == null ? DEFAULT : stream.address();
    }
}
