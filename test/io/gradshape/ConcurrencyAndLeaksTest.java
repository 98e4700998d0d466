package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.gradshape.SpatialDependence.Options;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * The properties issue 10 found clean and asks to keep so (CPU backend): several caller threads with
 * live {@link Gradshape#setCpuThreads} changes give the single-threaded results; 1 and many CPU threads
 * give bit-identical results in every kernel family; create/close cycles leak nothing.
 */
class ConcurrencyAndLeaksTest {
    private static final Backend CPU = Backends.cpu();
    private static final Options SGS = Options.defaults();

    /** One unit of work of every family on its own data: its results, concatenated. */
    private static float[] work(long seed) {
        float[] x = BadInputCases.random(seed, 2 * 3 * 9 * 8);
        Result sd = new Result(SpatialDependence.compute(CPU, x, 2, 3, 9, 8, SGS));
        float[] z = BadInputCases.random(seed + 1, 7 * 33);
        int[] y = new int[7];
        for (int r = 0; r < 7; r++) {
            y[r] = (int) ((seed + r) % 33);
        }
        float[] grad = new float[z.length];
        double loss = PowerGrad.compute(CPU, z, 7, 33, y, PowerGrad.Options.of(0.25), grad).loss();
        float[] w0 = BadInputCases.random(seed + 2, 4 * 3 * 9 + 5);
        float[] g0 = BadInputCases.random(seed + 3, w0.length);
        float[] w;
        try (HostBuffer wb = HostBuffer.of(w0); HostBuffer gb = HostBuffer.of(g0);
                ScaledSgd sgd = ScaledSgd.builder(CPU).lr(0.1f).momentum(0.9f).weightDecay(1e-3f)
                        .addParameter(ScaledSgd.Parameter.of(wb.memory().slice(0, 108), gb.memory().slice(0, 108)).withKernel(3, 3))
                        .addParameter(ScaledSgd.Parameter.of(wb.memory().slice(108, 5), gb.memory().slice(108, 5))).build()) {
            sgd.setScale(0, sd.g);
            sgd.step();
            sgd.step();
            w = wb.toFloatArray();
        }
        float[] out = new float[sd.all.length + grad.length + 1 + w.length];
        System.arraycopy(sd.all, 0, out, 0, sd.all.length);
        System.arraycopy(grad, 0, out, sd.all.length, grad.length);
        out[sd.all.length + grad.length] = (float) loss;
        System.arraycopy(w, 0, out, sd.all.length + grad.length + 1, w.length);
        return out;
    }

    private record Result(float[] g, float[] all) {
        Result(SpatialDependence.Result r) {
            this(r.g(), concat(r.nmi(), r.s(), r.g()));
        }

        static float[] concat(float[]... parts) {
            int n = 0;
            for (float[] p : parts) {
                n += p.length;
            }
            float[] out = new float[n];
            int at = 0;
            for (float[] p : parts) {
                System.arraycopy(p, 0, out, at, p.length);
                at += p.length;
            }
            return out;
        }
    }

    @Test
    void oneAndManyCpuThreadsGiveBitIdenticalResults() {
        int before = Gradshape.cpuThreads();
        try {
            Gradshape.setCpuThreads(1);
            float[] expected = work(42);
            for (int threads : new int[] {2, 3, 5, 8}) {
                Gradshape.setCpuThreads(threads);
                assertArrayEquals(expected, work(42), threads + " threads vs 1 (seed 42)");
            }
        } finally {
            Gradshape.setCpuThreads(0);
        }
        assertEquals(before, Gradshape.cpuThreads());
    }

    @Test
    void callerThreadsWithLiveThreadCountChanges() throws Exception {
        int callers = 6, rounds = 15;
        float[][] expected = new float[callers][];
        for (int t = 0; t < callers; t++) {
            expected[t] = work(100 + t);
        }
        AtomicBoolean stop = new AtomicBoolean();
        ExecutorService pool = Executors.newFixedThreadPool(callers);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < callers; t++) {
                int caller = t;
                futures.add(pool.submit(() -> {
                    for (int round = 0; round < rounds; round++) {
                        assertArrayEquals(expected[caller], work(100 + caller), "caller " + caller + ", round " + round);
                    }
                    return null;
                }));
            }
            Thread resizer = new Thread(() -> {
                int i = 0;
                while (!stop.get()) {
                    Gradshape.setCpuThreads(1 + i++ % 6);
                    Thread.onSpinWait();
                }
            });
            resizer.start();
            try {
                for (Future<?> f : futures) {
                    f.get(5, TimeUnit.MINUTES);
                }
            } finally {
                stop.set(true);
                resizer.join();
            }
        } finally {
            pool.shutdownNow();
            Gradshape.setCpuThreads(0);
        }
    }

    @Test
    void createCloseCyclesLeakNothing() {
        long host = HostBuffer.liveBytes();
        long leaked = OwnedBuffer.leakedBuffers();
        float[] x = BadInputCases.random(7, 2 * 5 * 5);
        for (int i = 0; i < 10_000; i++) {
            HostBuffer.allocate(DType.FLOAT32, 1 + i % 1000).close();
            new PowerGrad(CPU).close();
            if (i % 10 == 0) {
                new SpatialDependenceAccumulator(CPU, 2, 5, 5, SGS).close();
                try (HostBuffer w = HostBuffer.allocate(DType.FLOAT32, 18); HostBuffer g = HostBuffer.allocate(DType.FLOAT32, 18)) {
                    ScaledSgd.builder(CPU).momentum(0.9f).addParameter(ScaledSgd.Parameter.of(w.memory(), g.memory()).withKernel(3, 3))
                            .build().close();
                }
            }
            if (i % 100 == 0) {
                SpatialDependence.compute(CPU, x, 1, 2, 5, 5, SGS); // its temporaries are freed before it returns
            }
        }
        assertEquals(host, HostBuffer.liveBytes(), "host bytes after 10^4 create/close cycles");
        assertEquals(leaked, OwnedBuffer.leakedBuffers(), "buffers left to the cleaner");
    }
}
