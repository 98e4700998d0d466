package io.gradshape;

import io.gradshape.natives.CudaNative;
import io.gradshape.natives.Natives;
import java.nio.charset.StandardCharsets;

/**
 * One CUDA device. Kernels are queued asynchronously on the caller's stream; results in host arrays
 * are copied back before the call returns. For each call the backend makes its device current on the
 * calling thread ({@code cudaSetDevice}), as a CUDA program with several devices must, and makes the
 * caller's current device current again before returning: a trainer's own CUDA calls on that thread
 * keep landing on its device.
 */
public final class CudaBackend implements Backend {
    private final int device;
    private final String name;
    private final int major;
    private final int minor;
    private final long totalBytes;
    private final int multiprocessors;

    CudaBackend(int device) {
        this.device = device;
        byte[] nameBytes = new byte[256];
        int[] maj = new int[1];
        int[] min = new int[1];
        long[] total = new long[1];
        int[] sms = new int[1];
        Natives.check(CudaNative.gs_cuda_device_properties(device, nameBytes, nameBytes.length, maj, min, total, sms));
        int len = 0;
        while (len < nameBytes.length && nameBytes[len] != 0) {
            len++;
        }
        this.name = new String(nameBytes, 0, len, StandardCharsets.UTF_8);
        this.major = maj[0];
        this.minor = min[0];
        this.totalBytes = total[0];
        this.multiprocessors = sms[0];
    }

    @Override
    public Kind kind() {
        return Kind.CUDA;
    }

    /** The CUDA device ordinal. */
    public int device() {
        return device;
    }

    public String deviceName() {
        return name;
    }

    /** Compute capability, e.g. "9.0". */
    public String computeCapability() {
        return major + "." + minor;
    }

    public long totalMemoryBytes() {
        return totalBytes;
    }

    public int multiprocessors() {
        return multiprocessors;
    }

    /** Free and total device memory in bytes, as {@code cudaMemGetInfo} reports them now. */
    public long[] memoryInfo() {
        try (Current on = activate()) {
            long[] free = new long[1];
            long[] total = new long[1];
            Natives.check(CudaNative.gs_cuda_mem_get_info(free, total));
            return new long[] {free[0], total[0]};
        }
    }

    @Override
    public String description() {
        return String.format("CUDA device %d: %s (sm_%d%d, %.1f GiB, %d SMs)", device, name, major, minor,
                totalBytes / (1024.0 * 1024 * 1024), multiprocessors);
    }

    @Override
    public void synchronize(long stream) {
        try (Current on = activate()) {
            Natives.check(CudaNative.gs_cuda_stream_synchronize(stream));
        }
    }

    /** Allocates device memory owned by the returned buffer. */
    public DeviceBuffer allocate(DType dtype, long length) {
        return DeviceBuffer.allocate(this, dtype, length);
    }

    /**
     * Stream-ordered device memory for a call's temporary (F5): usable by the work queued on
     * {@code stream} from now on, without the device-wide synchronization of cudaMalloc / cudaFree.
     * Freed with {@link #freeOnStream} on the same stream.
     */
    Memory allocateOnStream(DType dtype, long length, long stream) {
        try (Current on = activate()) {
            long[] address = new long[1];
            Natives.check(CudaNative.gs_cuda_malloc_async(Math.multiplyExact(length, (long) dtype.bytes()), address, stream));
            return Memory.device(address[0], dtype, length, device);
        }
    }

    /** Frees memory from {@link #allocateOnStream} after the work queued on {@code stream}; a failure throws. */
    void freeOnStream(Memory memory, long stream) {
        try (Current on = activate()) {
            Natives.check(CudaNative.gs_cuda_free_async(memory.address(), stream));
        }
    }

    @Override
    public String toString() {
        return description();
    }

    /**
     * Makes this device current on the calling thread until the returned scope closes, which makes
     * the caller's device current again (F2). Scopes nest: an inner one restores this device.
     */
    Current activate() {
        int[] previous = new int[1];
        Natives.check(CudaNative.gs_cuda_exchange_device(device, previous));
        return new Current(device, previous[0]);
    }

    /** This device made current on the calling thread; {@link #close()} restores the caller's. */
    static final class Current implements AutoCloseable {
        private final int device;
        private final int previous;

        private Current(int device, int previous) {
            this.device = device;
            this.previous = previous;
        }

        @Override
        public void close() {
            if (previous != device) {
                Natives.check(CudaNative.gs_cuda_set_device(previous));
            }
        }
    }

    /**
     * Copies {@code src} into {@code dst} (same type and length; any locations, arrays staged through
     * host memory) and returns when the copy is done.
     */
    void copy(Memory dst, Memory src) {
        copy(dst, src, Streams.DEFAULT);
    }

    /** As {@link #copy(Memory, Memory)}, ordered after the work already queued on {@code stream}. */
    void copy(Memory dst, Memory src, long stream) {
        if (dst.location() == Memory.Location.HEAP && src.location() == Memory.Location.HEAP) {
            throw new IllegalArgumentException("copy: neither side is native memory");
        }
        try (Current on = activate()) {
            copyOnDevice(dst, src, stream);
        }
    }

    private void copyOnDevice(Memory dst, Memory src, long stream) {
        if (src.location() == Memory.Location.HEAP) {
            try (HostBuffer staging = HostBuffer.allocate(src.dtype(), src.length())) {
                HostCopy.arrayToNative(src, staging.address());
                Natives.check(CudaNative.gs_cuda_memcpy(dst.address(), staging.address(), src.bytes(), stream));
                Natives.check(CudaNative.gs_cuda_stream_synchronize(stream));
            }
        } else if (dst.location() == Memory.Location.HEAP) {
            try (HostBuffer staging = HostBuffer.allocate(src.dtype(), src.length())) {
                Natives.check(CudaNative.gs_cuda_memcpy(staging.address(), src.address(), src.bytes(), stream));
                Natives.check(CudaNative.gs_cuda_stream_synchronize(stream));
                HostCopy.nativeToArray(staging.address(), dst);
            }
        } else {
            Natives.check(CudaNative.gs_cuda_memcpy(dst.address(), src.address(), src.bytes(), stream));
            Natives.check(CudaNative.gs_cuda_stream_synchronize(stream));
        }
    }
}
