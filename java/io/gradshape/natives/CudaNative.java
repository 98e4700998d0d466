package io.gradshape.natives;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.NoException;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP mapping of the CUDA runtime services in {@code gradshape.h}. Addresses and streams cross
 * as {@code long}: device memory cannot be dereferenced on the host, and a raw address lets callers
 * bring memory from any source (our buffers, the CUDA presets, another library).
 */
@Platform(include = "gradshape.h", library = "jnigradshape")
@NoException
public final class CudaNative {
    static {
        Loader.load();
    }

    private CudaNative() {}

    public static native int gs_cuda_compiled(@Cast("int32_t*") int[] compiled);

    public static native int gs_cuda_device_count(@Cast("int32_t*") int[] count);

    public static native int gs_cuda_device_properties(int device, @Cast("char*") byte[] name, int nameCapacity,
            @Cast("int32_t*") int[] major, @Cast("int32_t*") int[] minor, @Cast("int64_t*") long[] totalBytes,
            @Cast("int32_t*") int[] multiprocessors);

    public static native int gs_cuda_versions(@Cast("int32_t*") int[] driver, @Cast("int32_t*") int[] runtime);

    public static native int gs_cuda_set_device(int device);

    public static native int gs_cuda_exchange_device(int device, @Cast("int32_t*") int[] previous);

    public static native int gs_cuda_malloc(long bytes, @Cast("int64_t*") long[] address);

    public static native int gs_cuda_free(@Cast("void*") long address);

    public static native int gs_cuda_malloc_async(long bytes, @Cast("int64_t*") long[] address, @Cast("gs_stream") long stream);

    public static native int gs_cuda_free_async(@Cast("void*") long address, @Cast("gs_stream") long stream);

    public static native int gs_cuda_mem_get_info(@Cast("int64_t*") long[] freeBytes, @Cast("int64_t*") long[] totalBytes);

    public static native int gs_cuda_memcpy(@Cast("void*") long dst, @Cast("const void*") long src, long bytes,
            @Cast("gs_stream") long stream);

    public static native int gs_cuda_memset(@Cast("void*") long dst, int value, long bytes, @Cast("gs_stream") long stream);

    public static native int gs_cuda_stream_synchronize(@Cast("gs_stream") long stream);
}
