package io.gradshape;

import io.gradshape.natives.CoreNative;
import io.gradshape.natives.Natives;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

/**
 * Native host memory, 64-byte aligned, owned by this object. The CPU backend reads it in place (no
 * staging copy); the CUDA backend copies it to the device.
 */
public final class HostBuffer extends OwnedBuffer {
    private static final AtomicLong LIVE_BYTES = new AtomicLong();

    private HostBuffer(long address, DType dtype, long length) {
        super(address, dtype, length, HostBuffer::free, LIVE_BYTES);
    }

    /** Allocates {@code length} elements of {@code dtype} (contents undefined). */
    public static HostBuffer allocate(DType dtype, long length) {
        Objects.requireNonNull(dtype, "dtype");
        long bytes = OwnedBuffer.checkLength(dtype, length);
        Natives.load();
        long[] address = new long[1];
        Natives.check(CoreNative.gs_host_alloc(bytes, address));
        return new HostBuffer(address[0], dtype, length);
    }

    /** A host buffer holding a copy of {@code values} (one bulk copy, no 2 GiB limit). */
    public static HostBuffer of(float[] values) {
        Memory source = Memory.of(values);
        HostBuffer b = allocate(DType.FLOAT32, values.length);
        HostCopy.arrayToNative(source, b.address());
        return b;
    }

    @Override
    public float[] toFloatArray() {
        if (dtype() != DType.FLOAT32 || length() > Integer.MAX_VALUE) {
            throw new IllegalStateException("toFloatArray: buffer holds " + length() + " " + dtype());
        }
        float[] out = new float[(int) length()];
        HostCopy.nativeToArray(address(), Memory.of(out));
        return out;
    }

    @Override
    public Memory memory() {
        return Memory.owned(this, Memory.Location.HOST, dtype(), length(), address(), -1);
    }

    /**
     * A little-endian (native order) view of the bytes, valid until {@link #close()}. Buffers over 2 GiB
     * have none. The view is a plain direct {@link ByteBuffer} that cannot know about {@code close()}:
     * touching it after closing reads or writes freed memory (like any buffer over freed native memory,
     * this can crash the JVM), so drop it before closing, or use {@link #memory()}, whose views do refuse
     * use after close.
     */
    public ByteBuffer asByteBuffer() {
        if (bytes() > Integer.MAX_VALUE) {
            throw new IllegalStateException("a HostBuffer of " + bytes() + " bytes has no ByteBuffer view");
        }
        return new BytePointer(rawPointer(address(), bytes())).asByteBuffer().order(ByteOrder.nativeOrder());
    }

    /** Bytes held by host buffers not yet closed (leak checks in tests). */
    public static long liveBytes() {
        return LIVE_BYTES.get();
    }

    private static void free(long address) {
        CoreNative.gs_host_free(address);
    }

    /** A JavaCPP pointer at a raw address, for JavaCPP's copy helpers. */
    static Pointer rawPointer(long rawAddress, long bytes) {
        // Parameter names differ from Pointer's fields on purpose: inside the anonymous class a
        // simple name would resolve to the inherited field, not to the parameter.
        return new Pointer() {
            {
                address = rawAddress;
                limit = bytes;
                capacity = bytes;
            }
        };
    }
}
