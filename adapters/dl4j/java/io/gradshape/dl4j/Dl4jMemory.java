package io.gradshape.dl4j;

import io.gradshape.DType;
import io.gradshape.Memory;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/** gradshape views of ND4J arrays: the array's own native memory, no copy. */
final class Dl4jMemory {
    /** Either order: the caller reads the elements as one flat range. */
    static final char ANY = 0;

    private Dl4jMemory() {}

    /**
     * The memory of {@code array} as a flat float32 view. The array must be float32, in host memory
     * (nd4j-native) and contiguous in its own order ({@code order} 'c' or 'f' as required by the caller,
     * or any when 0), with no holes: a strided view cannot be read as one flat range.
     */
    static Memory of(String name, INDArray array, char order) {
        if (array == null) {
            throw new IllegalArgumentException(name + ": null array");
        }
        if (array.dataType() != DataType.FLOAT) {
            throw new IllegalArgumentException(name + ": expected a FLOAT (float32) array, got " + array.dataType()
                    + " (gradshape's DL4J adapter runs float32 networks: set .dataType(DataType.FLOAT))");
        }
        if (array.isEmpty() || array.length() == 0) {
            throw new IllegalArgumentException(name + ": empty array");
        }
        if (!contiguous(array, order)) {
            throw new IllegalArgumentException(name + ": expected a contiguous " + (order == 0 ? "" : "'" + order + "' ")
                    + "array, got shape " + java.util.Arrays.toString(array.shape()) + " order '" + array.ordering()
                    + "' strides " + java.util.Arrays.toString(array.stride()));
        }
        // data() of a view is itself a view: its address already points at the view's first element.
        long address = array.data().addressPointer().address();
        if (address == 0) {
            throw new IllegalArgumentException(name + ": no native host memory behind the array");
        }
        return Memory.host(address, DType.FLOAT32, array.length(), array);
    }

    /** The native address of the first element of {@code array} (as {@link #of} uses it). */
    static long address(INDArray array) {
        return array.data().addressPointer().address();
    }

    /** True when the elements of {@code array} lie in one dense range in the given order (0: either). */
    static boolean contiguous(INDArray array, char order) {
        if (array.length() == 1) {
            return true;
        }
        if (order == 0) {
            return dense(array, 'c') || dense(array, 'f');
        }
        return dense(array, order);
    }

    private static boolean dense(INDArray array, char order) {
        long[] shape = array.shape();
        long[] stride = array.stride();
        long expected = 1;
        int n = shape.length;
        for (int k = 0; k < n; k++) {
            int d = order == 'c' ? n - 1 - k : k;
            if (shape[d] != 1 && stride[d] != expected) {
                return false;
            }
            expected *= shape[d];
        }
        // a view's data() must also hold the elements from its first one on
        return array.data().length() >= array.length();
    }
}
