package io.gradshape;

import java.lang.ref.Cleaner;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;

/**
 * Native memory with one owner: closed deterministically ({@link #close()} is idempotent), and a
 * {@link Cleaner} frees it as a safety net if the owner forgets, logging the leak. Use after close
 * throws {@link IllegalStateException}. Closing while a kernel still uses the memory is the caller's
 * error, as with any native buffer.
 */
public abstract sealed class OwnedBuffer implements AutoCloseable permits HostBuffer, DeviceBuffer {
    private static final Cleaner CLEANER = Cleaner.create();
    private static final System.Logger LOG = System.getLogger("io.gradshape");

    /** What the cleaner needs; must not reference the buffer, or it would never become unreachable. */
    private static final class Allocation implements Runnable {
        final AtomicLong address;
        final long bytes;
        final String what;
        final LongConsumer free;
        final AtomicLong liveBytes;
        volatile boolean closedByOwner;

        Allocation(long address, long bytes, String what, LongConsumer free, AtomicLong liveBytes) {
            this.address = new AtomicLong(address);
            this.bytes = bytes;
            this.what = what;
            this.free = free;
            this.liveBytes = liveBytes;
        }

        @Override
        public void run() {
            long a = address.getAndSet(0);
            if (a != 0) {
                if (!closedByOwner) {
                    LOG.log(System.Logger.Level.WARNING, what + " of " + bytes + " bytes was not closed; freed by the cleaner");
                }
                liveBytes.addAndGet(-bytes);
                free.accept(a);
            }
        }
    }

    private final Allocation allocation;
    private final Cleaner.Cleanable cleanable;
    private final DType dtype;
    private final long length;

    OwnedBuffer(long address, DType dtype, long length, LongConsumer free, AtomicLong liveBytes) {
        this.dtype = dtype;
        this.length = length;
        this.allocation = new Allocation(address, length * dtype.bytes(), getClass().getSimpleName(), free, liveBytes);
        liveBytes.addAndGet(allocation.bytes);
        this.cleanable = CLEANER.register(this, allocation);
    }

    public final DType dtype() {
        return dtype;
    }

    /** Number of elements. */
    public final long length() {
        return length;
    }

    public final long bytes() {
        return allocation.bytes;
    }

    public final boolean isClosed() {
        return allocation.address.get() == 0;
    }

    /** The native address; throws once closed. */
    public final long address() {
        long a = allocation.address.get();
        if (a == 0) {
            throw new IllegalStateException(getClass().getSimpleName() + " is closed");
        }
        return a;
    }

    final void checkOpen() {
        address();
    }

    /** A view of the whole buffer for kernel arguments. */
    public abstract Memory memory();

    /** The contents as a new array (FLOAT32 buffers of at most 2^31 - 1 elements); waits for the copy. */
    public abstract float[] toFloatArray();

    /** Frees the memory now. Calling it again does nothing. */
    @Override
    public final void close() {
        allocation.closedByOwner = true;
        cleanable.clean();
    }
}
