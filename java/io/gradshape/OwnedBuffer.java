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
                liveBytes.addAndGet(-bytes);
                free.accept(a);
                if (!closedByOwner) {
                    reportLeak(what, bytes);
                }
            }
        }
    }

    /** Buffers the cleaner freed because their owner forgot them, and their bytes (for the summaries). */
    private static final AtomicLong LEAKED_BUFFERS = new AtomicLong();
    private static final AtomicLong LEAKED_BYTES = new AtomicLong();
    /** Leaks logged one by one; after that, one summary whenever the count reaches 10x the last one. */
    static final int LEAKS_LOGGED_INDIVIDUALLY = 10;

    /**
     * One warning per leak would slow the single cleaner thread so much (a log record each) that a
     * trainer forgetting buffers in a loop piles up memory waiting to be freed; so the first few leaks
     * are logged each, then a summary at 100, 1000, 10^4... leaks.
     */
    private static void reportLeak(String what, long bytes) {
        long n = LEAKED_BUFFERS.incrementAndGet();
        long total = LEAKED_BYTES.addAndGet(bytes);
        if (n <= LEAKS_LOGGED_INDIVIDUALLY) {
            LOG.log(System.Logger.Level.WARNING, what + " of " + bytes + " bytes was not closed; freed by the cleaner"
                    + (n == LEAKS_LOGGED_INDIVIDUALLY ? " (further leaks are summarised at 100, 1000, ... leaks)" : ""));
        } else if (isPowerOfTen(n)) {
            LOG.log(System.Logger.Level.WARNING, n + " gradshape buffers (" + total + " bytes in all) were not closed;"
                    + " freed by the cleaner. Close buffers (try-with-resources) instead of leaving them to the garbage collector");
        }
    }

    private static boolean isPowerOfTen(long n) {
        while (n >= 10 && n % 10 == 0) {
            n /= 10;
        }
        return n == 1;
    }

    /** Buffers freed by the cleaner rather than closed by their owner, since the JVM started. */
    static long leakedBuffers() {
        return LEAKED_BUFFERS.get();
    }

    /**
     * The byte size of {@code length} elements of {@code dtype}, checked before anything is allocated.
     *
     * @throws IllegalArgumentException naming {@code length} when negative or when the bytes overflow
     */
    static long checkLength(DType dtype, long length) {
        if (length < 0) {
            throw new IllegalArgumentException("length: " + length + " < 0");
        }
        if (length > Long.MAX_VALUE / dtype.bytes()) {
            throw new IllegalArgumentException("length: " + length + " elements of " + dtype + " exceed 2^63 - 1 bytes");
        }
        return length * dtype.bytes();
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
