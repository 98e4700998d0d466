package io.gradshape;

import java.util.Objects;

/**
 * A kernel argument made usable by a backend: memory the backend can address in place is passed
 * through; anything else is copied into a temporary buffer (in), and for outputs copied back when
 * closed (out). Kernel families open one per argument in a try-with-resources block:
 *
 * <pre>{@code
 * try (Staged in = Staged.in(backend, input, "input", stream);
 *      Staged out = Staged.out(backend, result, "result", stream)) {
 *     Natives.check(FamilyNative.gs_family_cpu(in.address(), out.address(), ...));
 * }
 * }</pre>
 *
 * Copies back run when the block closes, after the kernel was queued on {@code stream}.
 *
 * <p>On CUDA a temporary is stream-ordered memory ({@code cudaMallocAsync} / {@code cudaFreeAsync} on
 * the call's stream, F5): no {@code cudaMalloc} / {@code cudaFree} per argument, so no device-wide
 * synchronization, and the free's status is checked like every other call.
 */
final class Staged implements AutoCloseable {
    private final Backend backend;
    private final Memory target;
    private final HostBuffer temporary;  // CPU: the host copy; null otherwise
    private final Memory deviceTemporary; // CUDA: the stream-ordered copy; null otherwise
    private final boolean copyBack;
    private final long stream;
    private boolean closed;

    private Staged(Backend backend, Memory target, HostBuffer temporary, Memory deviceTemporary, boolean copyBack,
            long stream) {
        this.backend = backend;
        this.target = target;
        this.temporary = temporary;
        this.deviceTemporary = deviceTemporary;
        this.copyBack = copyBack;
        this.stream = stream;
    }

    /** An input: read by the kernel. */
    static Staged in(Backend backend, Memory memory, String name, long stream) {
        return stage(backend, memory, name, stream, true, false);
    }

    /** An output: written by the kernel, its previous contents unused. */
    static Staged out(Backend backend, Memory memory, String name, long stream) {
        return stage(backend, memory, name, stream, false, true);
    }

    /** Read and written in place (weights, momentum buffers, in-place gradients). */
    static Staged inOut(Backend backend, Memory memory, String name, long stream) {
        return stage(backend, memory, name, stream, true, true);
    }

    /** The address the backend's kernel uses. */
    long address() {
        if (closed) {
            throw new IllegalStateException("Staged argument used after close");
        }
        return temporary != null ? temporary.address() : deviceTemporary != null ? deviceTemporary.address() : target.address();
    }

    /** Whether the argument is used in place (no temporary copy). */
    boolean inPlace() {
        return temporary == null && deviceTemporary == null;
    }

    private static Staged stage(Backend backend, Memory memory, String name, long stream, boolean copyIn, boolean copyBack) {
        Objects.requireNonNull(memory, name);
        if (copyBack) {
            memory.requireWritable(name); // callers check first; this keeps a missed check from writing read-only memory
        }
        Memory.Location where = memory.location();
        if (backend instanceof CudaBackend cuda) {
            if (where == Memory.Location.DEVICE) {
                if (memory.device() != cuda.device()) {
                    throw new IllegalArgumentException(name + ": device memory of cuda:" + memory.device()
                            + " given to the backend of cuda:" + cuda.device());
                }
                memory.address(); // use-after-close check
                return new Staged(backend, memory, null, null, false, stream);
            }
            Memory temp = cuda.allocateOnStream(memory.dtype(), memory.length(), stream);
            try {
                if (copyIn) {
                    cuda.copy(temp, memory, stream);
                }
            } catch (RuntimeException e) {
                cuda.freeOnStream(temp, stream);
                throw e;
            }
            return new Staged(backend, memory, null, temp, copyBack, stream);
        }
        if (where == Memory.Location.DEVICE) {
            throw new IllegalArgumentException(name + ": CUDA device memory cannot be used by the CPU backend");
        }
        if (where == Memory.Location.HOST) {
            memory.address(); // use-after-close check
            return new Staged(backend, memory, null, null, false, stream);
        }
        HostBuffer temp = HostBuffer.allocate(memory.dtype(), memory.length());
        if (copyIn) {
            HostCopy.arrayToNative(memory, temp.address());
        }
        return new Staged(backend, memory, temp, null, copyBack, stream);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (deviceTemporary != null) {
            CudaBackend cuda = (CudaBackend) backend;
            try {
                if (copyBack) {
                    cuda.copy(target, deviceTemporary, stream);
                }
            } finally {
                cuda.freeOnStream(deviceTemporary, stream);
            }
        } else if (temporary != null) {
            try {
                if (copyBack) {
                    HostCopy.nativeToArray(temporary.address(), target);
                }
            } finally {
                temporary.close();
            }
        }
    }
}
