package io.gradshape.djl;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;
import io.gradshape.DType;
import io.gradshape.Memory;
import java.nio.ByteBuffer;
import org.bytedeco.javacpp.Pointer;

/**
 * Native addresses of DJL PyTorch-engine arrays. {@code NDArray.toByteBuffer(true)} is a direct view of
 * the tensor's memory only for a dense, contiguous CPU tensor; for anything else DJL silently makes a
 * contiguous copy and returns a view of that. A copy lives until its manager closes, so two calls on a
 * copied array give two different addresses, while a real view gives the same one: {@link #bind} relies
 * on that to refuse copies.
 */
final class DjlArrays {
    private DjlArrays() {}

    /** A float32 tensor's memory, in place. */
    record View(long address, long length, Memory memory) {}

    /**
     * The memory of {@code array} itself (never a copy).
     *
     * @throws IllegalArgumentException naming {@code what} when the array is not a dense contiguous
     *                                  float32 CPU tensor of the PyTorch engine
     */
    static View bind(NDArray array, String what) {
        PtNDArray a = requireFloatCpu(array, what);
        ByteBuffer first = a.toByteBuffer(true);
        ByteBuffer second = a.toByteBuffer(true);
        long address = address(first);
        if (address != address(second)) {
            throw new IllegalArgumentException(what + ": not a dense contiguous tensor (DJL's toByteBuffer(true) copied it), "
                    + "so gradshape cannot update it in place");
        }
        long length = a.size();
        if (first.capacity() != Math.multiplyExact(length, 4L)) {
            throw new IllegalArgumentException(what + ": direct view of " + first.capacity() + " bytes for " + length
                    + " float32 elements");
        }
        return new View(address, length, Memory.host(address, DType.FLOAT32, length, array));
    }

    /** The address {@code toByteBuffer(true)} gives now: the array's own when it is still dense and contiguous. */
    static long currentAddress(NDArray array) {
        return address(array.toByteBuffer(true));
    }

    /**
     * A read-only float32 view for reading (logits, captured activations): the array's memory, or DJL's
     * contiguous copy of it, valid while {@code array} (and its manager) is open.
     */
    static Memory read(NDArray array, String what) {
        requireFloatCpu(array, what);
        ByteBuffer b = array.toByteBuffer(true);
        return Memory.host(address(b), DType.FLOAT32, array.size(), b);
    }

    /** The gradient libtorch holds for {@code array}, or null before its first backward (DJL's getGradient() would hand back fresh zeros). */
    static PtNDArray gradientOrNull(NDArray array) {
        return JniUtils.getGradient((PtNDArray) array);
    }

    static PtNDArray requireFloatCpu(NDArray array, String what) {
        if (array == null) {
            throw new NullPointerException(what);
        }
        if (!(array instanceof PtNDArray a)) {
            throw new IllegalArgumentException(what + ": expected an array of DJL's PyTorch engine, got "
                    + array.getClass().getName() + " (engine " + array.getManager().getEngine().getEngineName() + ")");
        }
        if (!Device.cpu().equals(a.getDevice())) {
            throw new IllegalArgumentException(what + ": on " + a.getDevice() + "; the DJL adapter binds CPU tensors only");
        }
        if (a.getDataType() != DataType.FLOAT32) {
            throw new IllegalArgumentException(what + ": expected float32, got " + a.getDataType());
        }
        if (a.isSparse()) {
            throw new IllegalArgumentException(what + ": sparse tensors are not supported");
        }
        return a;
    }

    private static long address(ByteBuffer b) {
        if (!b.isDirect()) {
            throw new IllegalStateException("DJL returned a heap buffer where a direct view was asked for");
        }
        return new Pointer(b).address();
    }
}
