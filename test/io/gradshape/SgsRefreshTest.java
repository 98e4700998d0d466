package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class SgsRefreshTest {
    @Test
    void defaultScheduleRefreshesAtWarmupThenEveryFifthEpoch() {
        SgsSchedule s = SgsSchedule.defaults();
        List<Integer> due = new ArrayList<>();
        for (int e = 0; e <= 20; e++) {
            if (s.refreshAt(e)) {
                due.add(e);
            }
        }
        assertEquals(List.of(1, 5, 10, 15, 20), due);
        assertEquals(2, s.batches());
    }

    @Test
    void scheduleEdgeCases() {
        // warmup 0, every epoch: due at every epoch, including 0
        SgsSchedule every = new SgsSchedule(1, 1, 0);
        for (int e = 0; e < 5; e++) {
            assertTrue(every.refreshAt(e), "epoch " + e);
        }
        // warmup a multiple of E: due there once (the two clauses of the rule overlap there)
        SgsSchedule s = new SgsSchedule(3, 1, 3);
        assertFalse(s.refreshAt(0));
        assertTrue(s.refreshAt(3));
        assertFalse(s.refreshAt(4));
        assertTrue(s.refreshAt(6));
        assertThrows(IllegalArgumentException.class, () -> s.refreshAt(-1));
        IllegalArgumentException e1 = assertThrows(IllegalArgumentException.class, () -> new SgsSchedule(0, 2, 1));
        assertTrue(e1.getMessage().startsWith("everyEpochs"), e1.getMessage());
        IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class, () -> new SgsSchedule(5, 0, 1));
        assertTrue(e2.getMessage().startsWith("batches"), e2.getMessage());
        IllegalArgumentException e3 = assertThrows(IllegalArgumentException.class, () -> new SgsSchedule(5, 2, -1));
        assertTrue(e3.getMessage().startsWith("warmupEpochs"), e3.getMessage());
    }

    @Test
    void refreshOverBatchesEqualsOneComputeOverTheirConcatenation() {
        int c = 3, h = 9, w = 7, n1 = 2, n2 = 3;
        float[] a = SpatialDependenceTest.reluMaps(11, n1, c, h, w);
        float[] b = SpatialDependenceTest.reluMaps(12, n2, c, h, w);
        float[] all = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        Backend cpu = Backends.cpu();
        List<SgsRefresh.Conv> convs = List.of(new SgsRefresh.Conv("conv3x3", 3, 3, 1, 1),
                new SgsRefresh.Conv("conv5x3", 5, 3, 2, 0));
        try (SgsRefresh sgs = new SgsRefresh(cpu, convs, SgsSchedule.defaults())) {
            assertArrayEquals(ones(9), sgs.g(0));
            assertArrayEquals(ones(15), sgs.g(1));
            for (int i = 0; i < 2; i++) {
                sgs.capture(i, a, n1, c, h, w);
                // the second batch from native memory: the capture copies it, whatever the trainer does next
                FloatBuffer direct = ByteBuffer.allocateDirect(b.length * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
                direct.put(b).flip();
                sgs.capture(i, Memory.of(direct), n2, c, h, w);
                direct.put(0, Float.NaN);
                assertEquals(2, sgs.captured(i));
            }
            List<SgsRefresh.Update> updates = sgs.refresh();
            assertEquals(1, sgs.refreshes());
            for (int i = 0; i < 2; i++) {
                SgsRefresh.Conv conv = convs.get(i);
                SpatialDependence.Result expected = SpatialDependence.compute(cpu, Memory.of(all), n1 + n2, c, h, w,
                        SpatialDependence.Options.defaults().kernel(conv.kernelH(), conv.kernelW())
                                .padding(conv.padH(), conv.padW()));
                assertArrayEquals(expected.g(), updates.get(i).g(), conv.name());
                assertArrayEquals(expected.g(), sgs.g(i), conv.name());
                assertFalse(updates.get(i).keptPrevious());
                assertNull(updates.get(i).reason());
                assertEquals(0, sgs.captured(i));
            }
            assertTrue(sgs.nanosSpent() > 0);
        }
    }

    @Test
    void constantInputsKeepThePreviousGAndSaySo() {
        int c = 2, h = 6, w = 6, n = 2;
        Backend cpu = Backends.cpu();
        // no padding: a constant map then has every pair in one histogram cell, so its NMI is NaN
        try (SgsRefresh sgs = new SgsRefresh(cpu, List.of(new SgsRefresh.Conv("c", 3, 3, 0, 0)), SgsSchedule.defaults())) {
            float[] x = SpatialDependenceTest.reluMaps(5, n, c, h, w);
            sgs.capture(0, x, n, c, h, w);
            float[] first = sgs.refresh().get(0).g();
            float[] constant = new float[n * c * h * w];
            Arrays.fill(constant, 0.5f);
            sgs.capture(0, constant, n, c, h, w);
            SgsRefresh.Update u = sgs.refresh().get(0);
            assertTrue(u.keptPrevious());
            assertTrue(u.reason().contains("kept the previous G"), u.reason());
            assertArrayEquals(first, u.g());
            assertArrayEquals(first, sgs.g(0));
        }
    }

    @Test
    void nonFiniteCaptureIsRefusedAndNoGChanges() {
        int c = 2, h = 6, w = 6, n = 2;
        Backend cpu = Backends.cpu();
        List<SgsRefresh.Conv> convs = List.of(new SgsRefresh.Conv("a", 3, 3, 1, 1), new SgsRefresh.Conv("b", 3, 3, 1, 1));
        for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            try (SgsRefresh sgs = new SgsRefresh(cpu, convs, SgsSchedule.defaults())) {
                float[] x = SpatialDependenceTest.reluMaps(3, n, c, h, w);
                float[] y = x.clone();
                y[y.length - 1] = bad;
                sgs.capture(0, x, n, c, h, w); // conv a is fine, conv b's input holds the bad value
                sgs.capture(1, y, n, c, h, w);
                RuntimeException e = assertThrows(RuntimeException.class, sgs::refresh, "value " + bad);
                assertTrue(e instanceof IllegalArgumentException || e instanceof GradshapeException,
                        "value " + bad + ": " + e);
                assertArrayEquals(ones(9), sgs.g(0), "value " + bad + ": conv a must keep its G");
                assertArrayEquals(ones(9), sgs.g(1), "value " + bad);
                assertEquals(0, sgs.refreshes());
                assertEquals(1, sgs.captured(0));
            }
        }
    }

    @Test
    void misuseIsRefusedWithTheArgumentNamed() {
        Backend cpu = Backends.cpu();
        try (SgsRefresh sgs = new SgsRefresh(cpu, List.of(new SgsRefresh.Conv("c", 3, 3, 1, 1)), SgsSchedule.defaults())) {
            assertThrows(IllegalStateException.class, sgs::refresh);
            assertThrows(IllegalArgumentException.class, () -> sgs.capture(0, new float[10], 1, 1, 3, 3));
            assertThrows(IllegalArgumentException.class, () -> sgs.capture(0, new float[9], 0, 1, 3, 3));
            IllegalArgumentException big = assertThrows(IllegalArgumentException.class,
                    () -> sgs.capture(0, new float[9], 65536, 65536, 65536, 3));
            assertTrue(big.getMessage().startsWith("shape"), big.getMessage());
            assertThrows(IndexOutOfBoundsException.class, () -> sgs.capture(1, new float[9], 1, 1, 3, 3));
            sgs.capture(0, new float[9], 1, 1, 3, 3);
            IllegalArgumentException changed = assertThrows(IllegalArgumentException.class,
                    () -> sgs.capture(0, new float[16], 1, 1, 4, 4));
            assertTrue(changed.getMessage().contains("shape changed"), changed.getMessage());
            sgs.close();
            assertThrows(IllegalStateException.class, () -> sgs.capture(0, new float[9], 1, 1, 3, 3));
        }
        assertThrows(IllegalArgumentException.class, () -> new SgsRefresh.Conv("k", 0, 3, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new SgsRefresh.Conv("p", 3, 3, -1, 0));
    }

    private static float[] ones(int n) {
        float[] x = new float[n];
        Arrays.fill(x, 1f);
        return x;
    }
}
