package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.time.Duration;
import java.time.Instant;
import org.bytedeco.javacpp.FloatPointer;
import org.junit.jupiter.api.Test;

/** Memory views, owned host buffers and CPU staging. */
class MemoryTest {
    @Test
    void arrayViewsAndSlices() {
        float[] a = {1, 2, 3, 4, 5};
        Memory m = Memory.of(a, 1, 3);
        assertEquals(Memory.Location.HEAP, m.location());
        assertEquals(DType.FLOAT32, m.dtype());
        assertEquals(3, m.length());
        assertEquals(12, m.bytes());
        Memory s = m.slice(1, 2);
        assertEquals(2, s.length());
        assertThrows(IllegalArgumentException.class, () -> m.slice(2, 2));
        assertThrows(IllegalArgumentException.class, () -> Memory.of(a, 4, 2));
        assertThrows(IllegalArgumentException.class, () -> Memory.of(a, -1, 2));
        assertThrows(IllegalStateException.class, m::address);
        NullPointerException npe = assertThrows(NullPointerException.class, () -> Memory.of((float[]) null));
        assertEquals("array", npe.getMessage());
    }

    @Test
    void requireNamesTheArgument() {
        Memory m = Memory.of(new int[4]);
        IllegalArgumentException type = assertThrows(IllegalArgumentException.class, () -> m.require("labels", DType.FLOAT32, 4));
        assertEquals("labels: expected FLOAT32 elements, got INT32", type.getMessage());
        IllegalArgumentException len = assertThrows(IllegalArgumentException.class, () -> m.require("labels", DType.INT32, 5));
        assertEquals("labels: expected 5 elements, got 4", len.getMessage());
        assertEquals(m, m.require("labels", DType.INT32, 4));
    }

    @Test
    void directBuffersAndPointersAreViewedInPlace() {
        FloatBuffer direct = ByteBuffer.allocateDirect(40).order(ByteOrder.nativeOrder()).asFloatBuffer();
        direct.position(3);
        Memory m = Memory.of(direct);
        assertEquals(Memory.Location.HOST, m.location());
        assertEquals(7, m.length());
        assertEquals(Memory.of((FloatBuffer) direct.position(0)).address() + 12, m.address());

        FloatBuffer bigEndian = ByteBuffer.allocateDirect(8).order(ByteOrder.BIG_ENDIAN).asFloatBuffer();
        assertThrows(IllegalArgumentException.class, () -> Memory.of(bigEndian));

        FloatBuffer heap = FloatBuffer.wrap(new float[] {1, 2, 3, 4});
        heap.position(1);
        assertEquals(Memory.Location.HEAP, Memory.of(heap).location());
        assertEquals(3, Memory.of(heap).length());

        try (FloatPointer p = new FloatPointer(8)) {
            p.position(2);
            Memory pm = Memory.of(p);
            assertEquals(6, pm.length());
            assertEquals(p.address() + 8, pm.address());
        }
    }

    @Test
    void hostBufferLifecycle() {
        long before = HostBuffer.liveBytes();
        HostBuffer b = HostBuffer.of(new float[] {1.5f, -2f, 3f});
        assertEquals(before + 12, HostBuffer.liveBytes());
        assertEquals(0, b.address() % 64, "64-byte alignment");
        assertEquals(-2f, b.asByteBuffer().asFloatBuffer().get(1));
        Memory view = b.memory();
        b.close();
        b.close(); // idempotent
        assertTrue(b.isClosed());
        assertEquals(before, HostBuffer.liveBytes());
        IllegalStateException e = assertThrows(IllegalStateException.class, b::address);
        assertEquals("HostBuffer is closed", e.getMessage());
        assertThrows(IllegalStateException.class, view::address);
        assertThrows(IllegalStateException.class, b::memory);
        assertThrows(IllegalArgumentException.class, () -> HostBuffer.allocate(DType.FLOAT32, -1));
        try (HostBuffer empty = HostBuffer.allocate(DType.INT64, 0)) {
            assertEquals(0, empty.bytes());
            assertFalse(empty.isClosed());
        }
    }

    @Test
    void hostBufferRoundTripsAnArray() {
        float[] values = {0f, -1.25f, Float.MIN_VALUE, Float.MAX_VALUE, Float.NaN, -0f, 3f};
        try (HostBuffer b = HostBuffer.of(values)) {
            float[] back = b.toFloatArray();
            assertArrayEquals(values, back);
            assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(back[5]));
        }
        try (HostBuffer ints = HostBuffer.allocate(DType.INT32, 3)) {
            assertThrows(IllegalStateException.class, ints::toFloatArray);
        }
        HostBuffer closed = HostBuffer.of(values);
        closed.close();
        assertThrows(IllegalStateException.class, closed::toFloatArray);
    }

    @Test
    void forgottenHostBufferIsFreedByTheCleaner() throws InterruptedException {
        long before = HostBuffer.liveBytes();
        allocateAndDrop();
        assertEquals(before + (1 << 20), HostBuffer.liveBytes());
        Instant deadline = Instant.now().plus(Duration.ofSeconds(20));
        while (HostBuffer.liveBytes() != before && Instant.now().isBefore(deadline)) {
            System.gc();
            Thread.sleep(20);
        }
        assertEquals(before, HostBuffer.liveBytes(), "the cleaner did not free an unreachable HostBuffer");
    }

    private static void allocateAndDrop() {
        HostBuffer.allocate(DType.FLOAT32, 1 << 18);
    }

    @Test
    void cpuStagingCopiesArraysInAndBack() {
        Backend cpu = Backends.cpu();
        float[] data = {1, 2, 3};
        long before = HostBuffer.liveBytes();
        try (Staged s = Staged.inOut(cpu, Memory.of(data), "data", Streams.DEFAULT)) {
            assertFalse(s.inPlace());
            FloatPointer p = new FloatPointer(HostBuffer.rawPointer(s.address(), 12));
            assertEquals(2f, p.get(1));
            p.put(1, 20f);
        }
        assertArrayEquals(new float[] {1, 20, 3}, data);
        assertEquals(before, HostBuffer.liveBytes(), "staging buffer released");

        try (HostBuffer host = HostBuffer.of(new float[] {4, 5});
                Staged s = Staged.in(cpu, host.memory(), "host", Streams.DEFAULT)) {
            assertTrue(s.inPlace());
            assertEquals(host.address(), s.address());
        }
    }

    @Test
    void cpuRejectsDeviceMemoryNamingTheArgument() {
        Memory device = Memory.device(0x1000, DType.FLOAT32, 4, 0);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Staged.in(Backends.cpu(), device, "weights", Streams.DEFAULT));
        assertEquals("weights: CUDA device memory cannot be used by the CPU backend", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Memory.device(0, DType.FLOAT32, 4, 0));
        assertThrows(IllegalArgumentException.class, () -> Memory.device(0x1000, DType.FLOAT32, -1, 0));
        assertThrows(IllegalArgumentException.class, () -> Memory.device(0x1000, DType.FLOAT32, 1, -1));
    }
}
