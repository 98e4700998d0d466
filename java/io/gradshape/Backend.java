package io.gradshape;

/**
 * Where kernels run: the native CPU implementation or one CUDA device. Get one from
 * {@link Backends}; every kernel family ({@link SpatialDependence}, {@link ScaledSgd},
 * {@link PowerGrad}) takes the backend as its first argument. Backends are long-lived, thread-safe
 * and need no closing.
 */
public sealed interface Backend permits CpuBackend, CudaBackend {
    /** The kinds of backend. */
    enum Kind { CPU, CUDA }

    Kind kind();

    /** One line for humans, e.g. "CPU (16 threads)" or "CUDA device 0: NVIDIA H100 80GB HBM3 (sm_90, 79.2 GiB)". */
    String description();

    /**
     * Blocks until the work this backend queued on {@code stream} is done (the CPU backend runs
     * synchronously, so there it returns at once). {@code stream} is a {@code cudaStream_t} as a raw
     * handle, 0 for the default stream; see {@link Streams#handle}.
     */
    void synchronize(long stream);
}
