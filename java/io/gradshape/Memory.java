package io.gradshape;

import java.nio.Buffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.util.Objects;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * A view of typed memory that a kernel reads or writes: a Java array, native host memory (a direct
 * buffer, a JavaCPP pointer, a {@link HostBuffer}) or CUDA device memory (a {@link DeviceBuffer}, or
 * memory the caller allocated elsewhere, e.g. with the CUDA presets). A view never owns memory: it
 * keeps its source reachable, and views of a closed {@link OwnedBuffer} refuse to hand out their address.
 *
 * <p>Which backend can use what: the CPU backend reads arrays and host memory in place; the CUDA
 * backend reads device memory in place and stages arrays and host memory through a temporary device
 * copy (pass device memory on the hot path). Device memory given to the CPU backend is an error.
 */
public final class Memory {
    /** Where the elements live. */
    public enum Location { HEAP, HOST, DEVICE }

    private final Location location;
    private final DType dtype;
    private final long length;
    private final Object array;      // HEAP: float[], int[], long[] or double[]
    private final int arrayOffset;
    private final long address;      // HOST, DEVICE: address of element 0
    private final int device;        // DEVICE: CUDA device ordinal
    private final Object owner;      // kept reachable; checked for use-after-close
    private final boolean readOnly;  // a read-only direct buffer: kernels may read it, never write it

    private Memory(Location location, DType dtype, long length, Object array, int arrayOffset, long address,
            int device, Object owner) {
        this(location, dtype, length, array, arrayOffset, address, device, owner, false);
    }

    private Memory(Location location, DType dtype, long length, Object array, int arrayOffset, long address,
            int device, Object owner, boolean readOnly) {
        this.readOnly = readOnly;
        this.location = location;
        this.dtype = dtype;
        this.length = length;
        this.array = array;
        this.arrayOffset = arrayOffset;
        this.address = address;
        this.device = device;
        this.owner = owner;
    }

    // ---- Java arrays ------------------------------------------------------------------------------

    public static Memory of(float[] array) {
        return of(array, 0, Objects.requireNonNull(array, "array").length);
    }

    public static Memory of(float[] array, int offset, int length) {
        checkRange(Objects.requireNonNull(array, "array").length, offset, length);
        return new Memory(Location.HEAP, DType.FLOAT32, length, array, offset, 0, -1, array);
    }

    public static Memory of(int[] array) {
        return of(array, 0, Objects.requireNonNull(array, "array").length);
    }

    public static Memory of(int[] array, int offset, int length) {
        checkRange(Objects.requireNonNull(array, "array").length, offset, length);
        return new Memory(Location.HEAP, DType.INT32, length, array, offset, 0, -1, array);
    }

    public static Memory of(long[] array) {
        Objects.requireNonNull(array, "array");
        return new Memory(Location.HEAP, DType.INT64, array.length, array, 0, 0, -1, array);
    }

    public static Memory of(double[] array) {
        Objects.requireNonNull(array, "array");
        return new Memory(Location.HEAP, DType.FLOAT64, array.length, array, 0, 0, -1, array);
    }

    // ---- native host memory -----------------------------------------------------------------------

    /**
     * The buffer's elements from its position to its limit. Heap buffers are viewed as arrays. A
     * read-only direct buffer (e.g. a read-only memory mapping) gives a read-only view: kernels read it,
     * and refuse it as an output.
     */
    public static Memory of(FloatBuffer buffer) {
        Objects.requireNonNull(buffer, "buffer");
        if (!buffer.isDirect()) {
            if (!buffer.hasArray()) {
                throw new IllegalArgumentException("buffer: a read-only heap FloatBuffer cannot be used; pass a direct buffer");
            }
            return of(buffer.array(), buffer.arrayOffset() + buffer.position(), buffer.remaining());
        }
        checkNativeOrder(buffer, buffer.order());
        return new Memory(Location.HOST, DType.FLOAT32, buffer.remaining(), null, 0,
                addressOf(new FloatPointer(buffer.slice())), -1, buffer, buffer.isReadOnly());
    }

    /** The buffer's elements from its position to its limit, as {@link #of(FloatBuffer)}. */
    public static Memory of(IntBuffer buffer) {
        Objects.requireNonNull(buffer, "buffer");
        if (!buffer.isDirect()) {
            if (!buffer.hasArray()) {
                throw new IllegalArgumentException("buffer: a read-only heap IntBuffer cannot be used; pass a direct buffer");
            }
            return of(buffer.array(), buffer.arrayOffset() + buffer.position(), buffer.remaining());
        }
        checkNativeOrder(buffer, buffer.order());
        return new Memory(Location.HOST, DType.INT32, buffer.remaining(), null, 0,
                addressOf(new IntPointer(buffer.slice())), -1, buffer, buffer.isReadOnly());
    }

    /** Host memory from the pointer's position to its limit (to its capacity when the limit is 0). */
    public static Memory of(FloatPointer pointer) {
        return ofHostPointer(pointer, DType.FLOAT32);
    }

    /** Host memory from the pointer's position to its limit (to its capacity when the limit is 0). */
    public static Memory of(IntPointer pointer) {
        return ofHostPointer(pointer, DType.INT32);
    }

    /**
     * Raw native host memory at {@code address}. The caller keeps it allocated while the view is used;
     * {@code keepAlive} (may be null) is held reachable by the view.
     */
    public static Memory host(long address, DType dtype, long length, Object keepAlive) {
        checkRaw(address, dtype, length);
        return new Memory(Location.HOST, dtype, length, null, 0, address, -1, keepAlive);
    }

    // ---- CUDA device memory -----------------------------------------------------------------------

    /**
     * Device memory that the caller owns, e.g. from {@code cudart.cudaMalloc} of the CUDA presets:
     * {@code length} elements of {@code dtype} from the pointer's address plus its position.
     */
    public static Memory device(Pointer pointer, DType dtype, long length, int device) {
        Objects.requireNonNull(pointer, "pointer");
        if (pointer.isNull()) {
            throw new IllegalArgumentException("pointer: null device address");
        }
        long address = addressAtPosition(pointer);
        checkRaw(address, dtype, length);
        checkDevice(device);
        return new Memory(Location.DEVICE, dtype, length, null, 0, address, device, pointer);
    }

    /** Device memory that the caller owns, by raw address (from any CUDA library). */
    public static Memory device(long address, DType dtype, long length, int device) {
        checkRaw(address, dtype, length);
        checkDevice(device);
        return new Memory(Location.DEVICE, dtype, length, null, 0, address, device, null);
    }

    static Memory owned(OwnedBuffer buffer, Location location, DType dtype, long length, long address, int device) {
        return new Memory(location, dtype, length, null, 0, address, device, buffer);
    }

    // ---- accessors --------------------------------------------------------------------------------

    public Location location() {
        return location;
    }

    public DType dtype() {
        return dtype;
    }

    /** Number of elements. */
    public long length() {
        return length;
    }

    public long bytes() {
        return length * dtype.bytes();
    }

    /** Whether kernels may only read this memory (a read-only direct buffer); outputs refuse it. */
    public boolean isReadOnly() {
        return readOnly;
    }

    /** The CUDA device ordinal of device memory, else -1. */
    public int device() {
        return device;
    }

    /** The native address of element 0 (HOST and DEVICE only). */
    public long address() {
        if (location == Location.HEAP) {
            throw new IllegalStateException("a Java array has no native address");
        }
        if (owner instanceof OwnedBuffer b) {
            b.checkOpen();
        }
        return address;
    }

    /** The Java array of a HEAP view, else null. */
    Object array() {
        return array;
    }

    int arrayOffset() {
        return arrayOffset;
    }

    /**
     * The elements [offset, offset + length) of this view (read-only if this view is).
     *
     * @throws IllegalArgumentException naming {@code offset} or {@code length} when the range leaves the view
     */
    public Memory slice(long offset, long length) {
        if (offset < 0 || offset > this.length) {
            throw new IllegalArgumentException("offset: expected 0.." + this.length + " (the view's length), got " + offset);
        }
        if (length < 0 || length > this.length - offset) {
            throw new IllegalArgumentException("length: expected 0.." + (this.length - offset) + " (the view's "
                    + this.length + " elements from offset " + offset + "), got " + length);
        }
        if (location == Location.HEAP) {
            return new Memory(location, dtype, length, array, arrayOffset + (int) offset, 0, -1, owner, readOnly);
        }
        return new Memory(location, dtype, length, null, 0, address + offset * dtype.bytes(), device, owner, readOnly);
    }

    /**
     * Checks that a kernel may write this view as argument {@code name}.
     *
     * @throws IllegalArgumentException naming the argument when the view is read-only
     */
    Memory requireWritable(String name) {
        if (readOnly) {
            throw new IllegalArgumentException(name + ": read-only memory (a read-only direct buffer) cannot be written;"
                    + " pass a writable buffer");
        }
        return this;
    }

    /** Whether two views are the same elements (a kernel may then work in place). */
    static boolean sameMemory(Memory a, Memory b) {
        if (a == b) {
            return true;
        }
        if (a.location != b.location || a.dtype != b.dtype || a.length != b.length) {
            return false;
        }
        if (a.location == Location.HEAP) {
            return a.array == b.array && a.arrayOffset == b.arrayOffset;
        }
        return a.device == b.device && a.address == b.address;
    }

    /** Whether two views share any byte. */
    static boolean overlaps(Memory a, Memory b) {
        if (a.location != b.location || a.length == 0 || b.length == 0) {
            return false;
        }
        long aStart;
        long bStart;
        if (a.location == Location.HEAP) {
            if (a.array != b.array) {
                return false;
            }
            aStart = (long) a.arrayOffset * a.dtype.bytes();
            bStart = (long) b.arrayOffset * b.dtype.bytes();
        } else {
            if (a.device != b.device) {
                return false;
            }
            aStart = a.address;
            bStart = b.address;
        }
        return aStart < bStart + b.bytes() && bStart < aStart + a.bytes();
    }

    /**
     * Checks that this view can serve as argument {@code name}: element type and exact length.
     * Messages name the argument, as every validation message in gradshape does.
     */
    public Memory require(String name, DType expectedType, long expectedLength) {
        if (dtype != expectedType) {
            throw new IllegalArgumentException(name + ": expected " + expectedType + " elements, got " + dtype);
        }
        if (length != expectedLength) {
            throw new IllegalArgumentException(name + ": expected " + expectedLength + " elements, got " + length);
        }
        return this;
    }

    @Override
    public String toString() {
        return "Memory[" + location + " " + dtype + " x " + length + (location == Location.DEVICE ? " on cuda:" + device : "") + "]";
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private static Memory ofHostPointer(Pointer pointer, DType dtype) {
        Objects.requireNonNull(pointer, "pointer");
        if (pointer.isNull()) {
            throw new IllegalArgumentException("pointer: null address");
        }
        long end = pointer.limit() > 0 ? pointer.limit() : pointer.capacity();
        long length = end - pointer.position();
        if (length < 0) {
            throw new IllegalArgumentException("pointer: position " + pointer.position() + " beyond limit " + end);
        }
        return new Memory(Location.HOST, dtype, length, null, 0, addressAtPosition(pointer), -1, pointer);
    }

    /**
     * Address of a direct buffer's element at its position. The buffer is sliced first: JavaCPP's
     * Pointer(Buffer) constructor gets the address wrong for a buffer whose position is not 0.
     */
    private static long addressOf(Pointer slicedBuffer) {
        return slicedBuffer.address();
    }

    /** Address of the element at the pointer's position (JavaCPP keeps the two apart). */
    private static long addressAtPosition(Pointer pointer) {
        return pointer.address() + pointer.position() * (long) pointer.sizeof();
    }

    private static void checkNativeOrder(Buffer buffer, ByteOrder order) {
        if (order != ByteOrder.nativeOrder()) {
            throw new IllegalArgumentException("buffer: byte order " + order + " is not the native order " + ByteOrder.nativeOrder());
        }
    }

    private static void checkRange(int arrayLength, int offset, int length) {
        if (offset < 0 || offset > arrayLength) {
            throw new IllegalArgumentException("offset: expected 0.." + arrayLength + " (the array's length), got " + offset);
        }
        if (length < 0 || length > arrayLength - offset) {
            throw new IllegalArgumentException("length: expected 0.." + (arrayLength - offset) + " (an array of "
                    + arrayLength + " from offset " + offset + "), got " + length);
        }
    }

    private static void checkRaw(long address, DType dtype, long length) {
        Objects.requireNonNull(dtype, "dtype");
        if (address == 0) {
            throw new IllegalArgumentException("address: null");
        }
        if (length < 0) {
            throw new IllegalArgumentException("length: " + length + " < 0");
        }
        if (length > Long.MAX_VALUE / dtype.bytes()) {
            throw new IllegalArgumentException("length: " + length + " elements of " + dtype + " exceed 2^63 - 1 bytes");
        }
    }

    private static void checkDevice(int device) {
        if (device < 0) {
            throw new IllegalArgumentException("device: " + device + " < 0");
        }
    }
}
