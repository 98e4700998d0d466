package io.gradshape;

import io.gradshape.natives.CoreNative;
import io.gradshape.natives.CudaNative;
import io.gradshape.natives.Natives;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;

/**
 * CUDA device memory owned by this object ({@code cudaMalloc}/{@code cudaFree}). To hand gradshape
 * device memory that something else owns, use {@link Memory#device(org.bytedeco.javacpp.Pointer, DType, long, int)}
 * instead: nothing is copied or freed then.
 */
public final class DeviceBuffer extends OwnedBuffer {
    private static final AtomicLong LIVE_BYTES = new AtomicLong();

    private final CudaBackend backend;

    private DeviceBuffer(CudaBackend backend, long address, DType dtype, long length) {
        super(address, dtype, length, freeOn(backend.device()), LIVE_BYTES);
        this.backend = backend;
    }

    /** Allocates {@code length} elements of {@code dtype} on the backend's device (contents undefined). */
    public static DeviceBuffer allocate(CudaBackend backend, DType dtype, long length) {
        Objects.requireNonNull(backend, "backend");
        Objects.requireNonNull(dtype, "dtype");
        long bytes = OwnedBuffer.checkLength(dtype, length);
        try (CudaBackend.Current on = backend.activate()) {
            long[] address = new long[1];
            Natives.check(CudaNative.gs_cuda_malloc(bytes, address));
            return new DeviceBuffer(backend, address[0], dtype, length);
        }
    }

    /** A device buffer holding a copy of {@code source} (any location). */
    public static DeviceBuffer copyOf(CudaBackend backend, Memory source) {
        DeviceBuffer b = allocate(backend, source.dtype(), source.length());
        try {
            b.copyFrom(source);
            return b;
        } catch (RuntimeException e) {
            b.close();
            throw e;
        }
    }

    public CudaBackend backend() {
        return backend;
    }

    @Override
    public Memory memory() {
        return Memory.owned(this, Memory.Location.DEVICE, dtype(), length(), address(), backend.device());
    }

    /** Copies all of {@code source} (same type and length, any location) into this buffer; returns when done. */
    public DeviceBuffer copyFrom(Memory source) {
        Objects.requireNonNull(source, "source").require("source", dtype(), length());
        backend.copy(memory(), source);
        return this;
    }

    /** Copies this buffer into {@code destination} (same type and length, any location); returns when done. */
    public void copyTo(Memory destination) {
        Objects.requireNonNull(destination, "destination").require("destination", dtype(), length())
                .requireWritable("destination");
        backend.copy(destination, memory());
    }

    @Override
    public float[] toFloatArray() {
        if (dtype() != DType.FLOAT32 || length() > Integer.MAX_VALUE) {
            throw new IllegalStateException("toFloatArray: buffer holds " + length() + " " + dtype());
        }
        float[] out = new float[(int) length()];
        copyTo(Memory.of(out));
        return out;
    }

    /** Bytes held by device buffers not yet closed (leak checks in tests). */
    public static long liveBytes() {
        return LIVE_BYTES.get();
    }

    private static final System.Logger LOG = System.getLogger(DeviceBuffer.class.getName());

    /**
     * The free action of a buffer of {@code device} (F11): cudaFree runs with that device current,
     * whichever thread frees (the Cleaner's has no device set), and the thread's device is restored.
     * A failure cannot be thrown from close() or the Cleaner, so it is logged, never ignored.
     */
    private static LongConsumer freeOn(int device) {
        return address -> {
            int[] previous = new int[1];
            int status = CudaNative.gs_cuda_exchange_device(device, previous);
            if (status == 0) {
                status = CudaNative.gs_cuda_free(address);
                if (previous[0] != device) {
                    CudaNative.gs_cuda_set_device(previous[0]);
                }
            }
            if (status != 0) {
                LOG.log(System.Logger.Level.ERROR, "cudaFree of device memory at 0x" + Long.toHexString(address)
                        + " on cuda:" + device + " failed: " + CoreNative.gs_last_error_message());
            }
        };
    }
}
