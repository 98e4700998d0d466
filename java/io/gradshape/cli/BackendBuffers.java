package io.gradshape.cli;

import io.gradshape.Backend;
import io.gradshape.CudaBackend;
import io.gradshape.DType;
import io.gradshape.DeviceBuffer;
import io.gradshape.HostBuffer;
import io.gradshape.Memory;
import io.gradshape.OwnedBuffer;

/**
 * Buffers where a backend computes in place: native host memory for the CPU, device memory for CUDA.
 * Commands copy their inputs there once, so the kernels (and their timings) see no staging copies;
 * {@link OwnedBuffer#toFloatArray()} reads results back.
 */
final class BackendBuffers {
    private BackendBuffers() {}

    /** A copy of {@code values} where {@code backend} computes. */
    static OwnedBuffer upload(Backend backend, float[] values) {
        if (backend instanceof CudaBackend cuda) {
            return DeviceBuffer.copyOf(cuda, Memory.of(values));
        }
        return HostBuffer.of(values);
    }

    /** {@code length} floats (contents undefined) where {@code backend} computes. */
    static OwnedBuffer allocate(Backend backend, long length) {
        if (backend instanceof CudaBackend cuda) {
            return cuda.allocate(DType.FLOAT32, length);
        }
        return HostBuffer.allocate(DType.FLOAT32, length);
    }
}
