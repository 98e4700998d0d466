package io.gradshape;

import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;

/** Copies between Java arrays (HEAP views) and native host memory, one bulk copy each way. */
final class HostCopy {
    private HostCopy() {}

    static void arrayToNative(Memory heap, long address) {
        Pointer raw = HostBuffer.rawPointer(address, heap.bytes());
        int n = Math.toIntExact(heap.length());
        int off = heap.arrayOffset();
        switch (heap.dtype()) {
            case FLOAT32 -> new FloatPointer(raw).put((float[]) heap.array(), off, n);
            case INT32 -> new IntPointer(raw).put((int[]) heap.array(), off, n);
            case INT64 -> new LongPointer(raw).put((long[]) heap.array(), off, n);
            case FLOAT64 -> new DoublePointer(raw).put((double[]) heap.array(), off, n);
        }
    }

    static void nativeToArray(long address, Memory heap) {
        Pointer raw = HostBuffer.rawPointer(address, heap.bytes());
        int n = Math.toIntExact(heap.length());
        int off = heap.arrayOffset();
        switch (heap.dtype()) {
            case FLOAT32 -> new FloatPointer(raw).get((float[]) heap.array(), off, n);
            case INT32 -> new IntPointer(raw).get((int[]) heap.array(), off, n);
            case INT64 -> new LongPointer(raw).get((long[]) heap.array(), off, n);
            case FLOAT64 -> new DoublePointer(raw).get((double[]) heap.array(), off, n);
        }
    }
}
