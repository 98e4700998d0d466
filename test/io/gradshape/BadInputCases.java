package io.gradshape;

import io.gradshape.SpatialDependence.Options;
import io.gradshape.SpatialDependence.RangeMode;
import io.gradshape.SpatialDependence.Result;
import io.gradshape.SpatialDependenceAccumulator.State;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Consumer;

/**
 * The generated bad-input suite (issue 10): bad and edge inputs on every public entry point of
 * io.gradshape, each of which must end in a correct result or in a typed exception naming the
 * argument. Sizes 0, negative, overflowing int and long; short arrays; null; NaN and infinity in data
 * and hyperparameters; read-only (a read-only memory mapping included) and closed buffers; aliasing;
 * use after close. Cases that reach native code with hostile sizes or state are marked {@code child}:
 * {@link BadInputTest} runs them in a child JVM, so that a crash is reported as a failure instead of
 * taking the test run down with it.
 *
 * <p>The list is built the same way in both JVMs (fixed seeds), so a case is known by its index.
 */
final class BadInputCases {
    /** What a case runs; throws AssertionError when the library misbehaves. */
    interface Body {
        void run() throws Throwable;
    }

    /** One case: a unique name, whether it runs in the child JVM, and its body. */
    record Case(String name, boolean child, Body body) {}

    private final List<Case> cases = new ArrayList<>();
    private final Backend cpu = Backends.cpu();
    /** Where {@link #refuses} puts its cases: the sections after the pure-Java ones set it. */
    private boolean inChild;

    static List<Case> all() {
        BadInputCases c = new BadInputCases();
        c.memory();
        c.hostBuffer();
        c.deviceBufferAndBackends();
        c.gradshape();
        c.dependenceOptions();
        // From here on every case reaches a kernel (or writes memory a kernel was given): all in the child JVM.
        c.inChild = true;
        c.dependenceCompute();
        c.accumulator();
        c.accumulatorState();
        c.scaledSgd();
        c.powerGrad();
        List<String> names = c.cases.stream().map(Case::name).toList();
        if (names.stream().distinct().count() != names.size()) {
            throw new IllegalStateException("duplicate case names in the bad-input suite");
        }
        return c.cases;
    }

    // ---- expectations -----------------------------------------------------------------------------

    private void refuses(String name, Class<? extends Throwable> type, String argument, Body call) {
        cases.add(new Case(name, inChild, () -> expectRefusal(type, argument, call)));
    }

    private void refusesInChild(String name, Class<? extends Throwable> type, String argument, Body call) {
        cases.add(new Case(name, true, () -> expectRefusal(type, argument, call)));
    }

    private void correct(String name, boolean child, Body check) {
        cases.add(new Case(name, child || inChild, check));
    }

    /** The call must throw {@code type} (or a subclass) whose message names {@code argument}. */
    static void expectRefusal(Class<? extends Throwable> type, String argument, Body call) {
        Throwable thrown = null;
        try {
            call.run();
        } catch (Throwable t) {
            thrown = t;
        }
        String want = type.getSimpleName() + " naming '" + argument + "'";
        if (thrown == null) {
            throw new AssertionError("accepted; expected " + want);
        }
        if (thrown instanceof AssertionError a) {
            throw a;
        }
        if (!type.isInstance(thrown)) {
            throw new AssertionError("expected " + want + ", got " + thrown, thrown);
        }
        String message = thrown.getMessage();
        if (message == null || !message.contains(argument)) {
            throw new AssertionError("expected " + want + ", got the message: " + message, thrown);
        }
    }

    static void check(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    // ---- test data --------------------------------------------------------------------------------

    static float[] random(long seed, int n) {
        Random rnd = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        return x;
    }

    /** A read-only memory mapping of {@code values} in native order: writing it would crash the JVM. */
    static FloatBuffer readOnlyMapping(float[] values) {
        try {
            Path file = Files.createTempFile("gradshape-readonly", ".bin");
            file.toFile().deleteOnExit();
            ByteBuffer bytes = ByteBuffer.allocate(4 * Math.max(1, values.length)).order(ByteOrder.nativeOrder());
            bytes.asFloatBuffer().put(values);
            Files.write(file, bytes.array());
            try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
                FloatBuffer mapped = f.getChannel().map(FileChannel.MapMode.READ_ONLY, 0, 4L * values.length)
                        .order(ByteOrder.nativeOrder()).asFloatBuffer();
                check(mapped.isDirect() && mapped.isReadOnly(), "a read-only mapping");
                return mapped;
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A direct read-only view of a copy of {@code values}. */
    static FloatBuffer readOnlyDirect(float[] values) {
        FloatBuffer b = ByteBuffer.allocateDirect(4 * values.length).order(ByteOrder.nativeOrder()).asFloatBuffer();
        b.put(values).flip();
        return b.asReadOnlyBuffer();
    }

    /** A host buffer that is already closed. */
    static HostBuffer closedHostBuffer(int floats) {
        HostBuffer b = HostBuffer.allocate(DType.FLOAT32, floats);
        b.close();
        return b;
    }

    // ---- Memory -----------------------------------------------------------------------------------

    private void memory() {
        int[][] badRanges = {{-1, 1}, {0, -1}, {5, 0}, {4, 1}, {3, 2}, {Integer.MIN_VALUE, 1}, {1, Integer.MAX_VALUE},
            {Integer.MAX_VALUE, Integer.MAX_VALUE}};
        for (int[] r : badRanges) {
            String arg = r[0] < 0 || r[0] > 4 ? "offset" : "length";
            refuses("Memory.of(float[4], " + r[0] + ", " + r[1] + ")", IllegalArgumentException.class, arg,
                    () -> Memory.of(new float[4], r[0], r[1]));
            refuses("Memory.of(int[4], " + r[0] + ", " + r[1] + ")", IllegalArgumentException.class, arg,
                    () -> Memory.of(new int[4], r[0], r[1]));
        }
        refuses("Memory.of((float[]) null)", NullPointerException.class, "array", () -> Memory.of((float[]) null));
        refuses("Memory.of((float[]) null, 0, 0)", NullPointerException.class, "array", () -> Memory.of((float[]) null, 0, 0));
        refuses("Memory.of((int[]) null)", NullPointerException.class, "array", () -> Memory.of((int[]) null));
        refuses("Memory.of((long[]) null)", NullPointerException.class, "array", () -> Memory.of((long[]) null));
        refuses("Memory.of((double[]) null)", NullPointerException.class, "array", () -> Memory.of((double[]) null));
        refuses("Memory.of((FloatBuffer) null)", NullPointerException.class, "buffer", () -> Memory.of((FloatBuffer) null));
        refuses("Memory.of((IntBuffer) null)", NullPointerException.class, "buffer", () -> Memory.of((java.nio.IntBuffer) null));
        refuses("Memory.of(FloatPointer null)", NullPointerException.class, "pointer",
                () -> Memory.of((org.bytedeco.javacpp.FloatPointer) null));
        refuses("Memory.of(FloatBuffer, non-native order)", IllegalArgumentException.class, "buffer",
                () -> Memory.of(ByteBuffer.allocateDirect(16).order(ByteOrder.nativeOrder() == ByteOrder.BIG_ENDIAN
                        ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN).asFloatBuffer()));
        refuses("Memory.of(read-only heap FloatBuffer)", IllegalArgumentException.class, "buffer",
                () -> Memory.of(FloatBuffer.allocate(4).asReadOnlyBuffer()));
        correct("Memory.of(read-only direct FloatBuffer) is a read-only view", false, () -> {
            Memory m = Memory.of(readOnlyDirect(new float[] {1, 2, 3}));
            check(m.isReadOnly() && m.length() == 3, "read-only view of 3 floats: " + m);
            check(m.slice(1, 2).isReadOnly(), "a slice of a read-only view is read-only");
            check(!Memory.of(new float[3]).isReadOnly(), "arrays are writable");
        });
        refuses("Memory.host(0, FLOAT32, 1)", IllegalArgumentException.class, "address",
                () -> Memory.host(0, DType.FLOAT32, 1, null));
        refuses("Memory.host(a, null, 1)", NullPointerException.class, "dtype", () -> Memory.host(64, null, 1, null));
        for (long length : new long[] {-1, Long.MIN_VALUE, Long.MAX_VALUE, Long.MAX_VALUE / 4 + 1}) {
            refuses("Memory.host(a, FLOAT32, " + length + ")", IllegalArgumentException.class, "length",
                    () -> Memory.host(64, DType.FLOAT32, length, null));
            refuses("Memory.device(a, FLOAT32, " + length + ", 0)", IllegalArgumentException.class, "length",
                    () -> Memory.device(64, DType.FLOAT32, length, 0));
        }
        refuses("Memory.device(a, FLOAT32, 1, -1)", IllegalArgumentException.class, "device",
                () -> Memory.device(64, DType.FLOAT32, 1, -1));
        refuses("Memory.device(null pointer)", NullPointerException.class, "pointer",
                () -> Memory.device((org.bytedeco.javacpp.Pointer) null, DType.FLOAT32, 1, 0));
        long[][] badSlices = {{-1, 1}, {0, -1}, {5, 0}, {2, 3}, {Long.MAX_VALUE, 1}, {1, Long.MAX_VALUE},
            {Long.MIN_VALUE, 0}, {0, Long.MIN_VALUE}};
        for (long[] r : badSlices) {
            String arg = r[0] < 0 || r[0] > 4 ? "offset" : "length";
            refuses("Memory(4).slice(" + r[0] + ", " + r[1] + ")", IllegalArgumentException.class, arg,
                    () -> Memory.of(new float[4]).slice(r[0], r[1]));
            refuses("Memory.host(4).slice(" + r[0] + ", " + r[1] + ")", IllegalArgumentException.class, arg,
                    () -> Memory.host(64, DType.FLOAT32, 4, null).slice(r[0], r[1]));
        }
        refuses("Memory.require wrong dtype", IllegalArgumentException.class, "x",
                () -> Memory.of(new int[4]).require("x", DType.FLOAT32, 4));
        refuses("Memory.require wrong length", IllegalArgumentException.class, "x",
                () -> Memory.of(new float[4]).require("x", DType.FLOAT32, 5));
        refuses("Memory.address of an array", IllegalStateException.class, "array", () -> Memory.of(new float[1]).address());
        refuses("Memory of a closed HostBuffer: address()", IllegalStateException.class, "closed", () -> {
            HostBuffer b = HostBuffer.allocate(DType.FLOAT32, 4);
            Memory m = b.memory();
            b.close();
            m.address();
        });
    }

    // ---- HostBuffer -------------------------------------------------------------------------------

    private void hostBuffer() {
        refuses("HostBuffer.allocate(null, 1)", NullPointerException.class, "dtype", () -> HostBuffer.allocate(null, 1));
        for (DType t : DType.values()) {
            for (long length : new long[] {-1, Long.MIN_VALUE, Long.MAX_VALUE, Long.MAX_VALUE / t.bytes() + 1}) {
                refuses("HostBuffer.allocate(" + t + ", " + length + ")", IllegalArgumentException.class, "length",
                        () -> HostBuffer.allocate(t, length).close());
            }
        }
        refuses("HostBuffer.allocate(FLOAT32, 2^62): out of memory is typed", GradshapeException.class, "gs_host_alloc",
                () -> HostBuffer.allocate(DType.FLOAT32, 1L << 60).close());
        correct("HostBuffer.allocate(FLOAT32, 0)", false, () -> {
            try (HostBuffer b = HostBuffer.allocate(DType.FLOAT32, 0)) {
                check(b.length() == 0 && b.toFloatArray().length == 0 && b.memory().length() == 0, "an empty buffer");
            }
        });
        refuses("HostBuffer.of(null)", NullPointerException.class, "array", () -> HostBuffer.of(null));
        refuses("HostBuffer closed: address()", IllegalStateException.class, "closed", () -> closedHostBuffer(4).address());
        refuses("HostBuffer closed: memory()", IllegalStateException.class, "closed", () -> closedHostBuffer(4).memory());
        refuses("HostBuffer closed: toFloatArray()", IllegalStateException.class, "closed", () -> closedHostBuffer(4).toFloatArray());
        refuses("HostBuffer closed: asByteBuffer()", IllegalStateException.class, "closed", () -> closedHostBuffer(4).asByteBuffer());
        refuses("HostBuffer INT32: toFloatArray()", IllegalStateException.class, "INT32", () -> {
            try (HostBuffer b = HostBuffer.allocate(DType.INT32, 4)) {
                b.toFloatArray();
            }
        });
        correct("HostBuffer close is idempotent and frees once", false, () -> {
            long before = HostBuffer.liveBytes();
            HostBuffer b = HostBuffer.allocate(DType.FLOAT64, 10);
            b.close();
            b.close();
            check(b.isClosed() && HostBuffer.liveBytes() == before, "live bytes back to " + before + ": " + HostBuffer.liveBytes());
        });
        correct("HostBuffer: 3000 forgotten buffers are freed with summarised warnings", true, BadInputCases::forgottenBuffers);
        correct("HostBuffer.of round trip", false, () -> {
            float[] x = random(1, 33);
            try (HostBuffer b = HostBuffer.of(x)) {
                check(Arrays.equals(x, b.toFloatArray()), "the same floats back");
            }
        });
    }

    /**
     * Issue 10, item 11: one log record per forgotten buffer slowed the cleaner so much that memory piled
     * up waiting to be freed. Forgotten buffers must all be freed, with at most the first few logged one
     * by one and a summary at each power of ten.
     */
    static void forgottenBuffers() throws InterruptedException {
        java.util.logging.Logger jul = java.util.logging.Logger.getLogger("io.gradshape");
        List<java.util.logging.LogRecord> records = java.util.Collections.synchronizedList(new ArrayList<>());
        java.util.logging.Handler handler = new java.util.logging.Handler() {
            @Override
            public void publish(java.util.logging.LogRecord r) {
                records.add(r);
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        };
        jul.addHandler(handler);
        boolean parents = jul.getUseParentHandlers();
        jul.setUseParentHandlers(false); // 3000 warnings on the console would hide the other cases' output
        try {
            long leaked = OwnedBuffer.leakedBuffers();
            int n = 3000;
            for (int i = 0; i < n; i++) {
                HostBuffer.allocate(DType.FLOAT32, 16 * 1024); // 64 KiB, forgotten at once
            }
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (OwnedBuffer.leakedBuffers() < leaked + n && System.nanoTime() < deadline) {
                System.gc();
                Thread.sleep(20);
            }
            long freed = OwnedBuffer.leakedBuffers() - leaked;
            check(freed >= n, "the cleaner freed " + freed + " of " + n + " forgotten buffers in 60 s");
            // At most 10 single warnings and one per power of ten (100, 1000, 10^4) over the whole count.
            check(records.size() <= OwnedBuffer.LEAKS_LOGGED_INDIVIDUALLY + 3, records.size() + " warnings for " + freed + " leaks");
            check(!records.isEmpty(), "leaks were not reported at all");
        } finally {
            jul.removeHandler(handler);
            jul.setUseParentHandlers(parents);
        }
    }

    // ---- DeviceBuffer and Backends ------------------------------------------------------------------

    private void deviceBufferAndBackends() {
        refuses("DeviceBuffer.allocate(null backend)", NullPointerException.class, "backend",
                () -> DeviceBuffer.allocate(null, DType.FLOAT32, 1));
        refuses("DeviceBuffer.copyOf(null backend)", NullPointerException.class, "backend",
                () -> DeviceBuffer.copyOf(null, Memory.of(new float[1])));
        boolean cuda = Backends.cudaUnavailableReason(0) == null;
        if (cuda) {
            refuses("DeviceBuffer.allocate(cuda, FLOAT32, -1)", IllegalArgumentException.class, "length",
                    () -> DeviceBuffer.allocate(Backends.cuda(), DType.FLOAT32, -1));
            refuses("DeviceBuffer.allocate(cuda, FLOAT32, Long.MAX_VALUE)", IllegalArgumentException.class, "length",
                    () -> DeviceBuffer.allocate(Backends.cuda(), DType.FLOAT32, Long.MAX_VALUE));
        } else {
            // The refusal on a machine without CUDA: a typed exception with the reason, never a crash.
            refuses("Backends.cuda() without CUDA", GradshapeException.class, Backends.cudaUnavailableReason(0), Backends::cuda);
            refuses("Backends.select(cuda) without CUDA", GradshapeException.class, Backends.cudaUnavailableReason(0),
                    () -> Backends.select("cuda"));
            correct("Backends.auto() falls back to the CPU with the reason", false, () -> {
                Backends.Selection s = Backends.select("auto");
                check(s.backend().kind() == Backend.Kind.CPU && s.reason().contains("CUDA not usable"), s.reason());
            });
        }
        for (int device : new int[] {-1, Integer.MIN_VALUE, 64, Integer.MAX_VALUE}) {
            refuses("Backends.cuda(" + device + ")", IllegalArgumentException.class, "device", () -> Backends.cuda(device));
        }
        refuses("Backends.cudaUnavailableReason(-1)", IllegalArgumentException.class, "device",
                () -> Backends.cudaUnavailableReason(-1));
        for (String spec : new String[] {"gpu", "cuda:", "cuda:x", "cuda:99999999999", "", "cpu:0"}) {
            refuses("Backends.select('" + spec + "')", IllegalArgumentException.class, "'" + spec + "'", () -> Backends.select(spec));
        }
        refuses("Backends.select('cuda:-1')", IllegalArgumentException.class, "device", () -> Backends.select("cuda:-1"));
        correct("Backends.select(null) is auto", false, () -> check(Backends.select(null).backend() != null, "a backend"));
        refuses("Memory.device given to the CPU backend (SpatialDependence)", IllegalArgumentException.class, "input",
                () -> SpatialDependence.compute(cpu, Memory.device(4096, DType.FLOAT32, 18, 0), 1, 1, 3, 6, Options.defaults()));
    }

    // ---- Gradshape --------------------------------------------------------------------------------

    private void gradshape() {
        int max = Gradshape.maxCpuThreads();
        for (int threads : new int[] {max + 1, 2000, 100_000, Integer.MAX_VALUE}) {
            correct("Gradshape.setCpuThreads(" + threads + ") refused, pool unchanged", true, () -> {
                int before = Gradshape.cpuThreads();
                expectRefusal(IllegalArgumentException.class, "threads", () -> Gradshape.setCpuThreads(threads));
                check(Gradshape.cpuThreads() == before, "threads " + Gradshape.cpuThreads() + ", expected " + before);
            });
        }
        for (int threads : new int[] {Integer.MIN_VALUE, -1, 0, 1, 3}) {
            correct("Gradshape.setCpuThreads(" + threads + ")", true, () -> {
                try {
                    Gradshape.setCpuThreads(threads);
                    int expected = threads <= 0 ? Runtime.getRuntime().availableProcessors() : threads;
                    check(Gradshape.cpuThreads() == expected, "threads " + Gradshape.cpuThreads() + ", expected " + expected);
                } finally {
                    Gradshape.setCpuThreads(0);
                }
            });
        }
        correct("Gradshape.setCpuThreads(max) then compute", true, () -> {
            try {
                Gradshape.setCpuThreads(Math.min(max, 64));
                float[] x = random(2, 2 * 2 * 6 * 5);
                Result a = SpatialDependence.compute(cpu, x, 2, 2, 6, 5, Options.defaults());
                Gradshape.setCpuThreads(1);
                check(a.equals(SpatialDependence.compute(cpu, x, 2, 2, 6, 5, Options.defaults())), "bit-identical over threads");
            } finally {
                Gradshape.setCpuThreads(0);
            }
        });
    }

    // ---- SpatialDependence.Options ----------------------------------------------------------------

    private void dependenceOptions() {
        Options o = Options.defaults();
        for (int size : new int[] {Integer.MIN_VALUE, -3, -1, 0, 1, 2, 4, 1024, 1025, 46341, 65537, Integer.MAX_VALUE}) {
            refuses("Options.kernel(" + size + ", 3)", IllegalArgumentException.class, "kernelH", () -> o.kernel(size, 3));
            refuses("Options.kernel(3, " + size + ")", IllegalArgumentException.class, "kernelW", () -> o.kernel(3, size));
        }
        for (int pad : new int[] {-1, Integer.MIN_VALUE}) {
            refuses("Options.padding(" + pad + ", 0)", IllegalArgumentException.class, "padH", () -> o.padding(pad, 0));
            refuses("Options.padding(0, " + pad + ")", IllegalArgumentException.class, "padW", () -> o.padding(0, pad));
        }
        for (int bins : new int[] {Integer.MIN_VALUE, -1, 1, 257, Integer.MAX_VALUE}) {
            refuses("Options.bins(" + bins + ")", IllegalArgumentException.class, "bins", () -> o.bins(bins));
        }
        refuses("Options.range(null)", NullPointerException.class, "mode", () -> o.range(null));
        refuses("Options.range(FIXED)", IllegalArgumentException.class, "mode", () -> o.range(RangeMode.FIXED));
        float[] nonFinite = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
        for (float v : nonFinite) {
            refuses("Options.fixedRange(" + v + ", 1)", IllegalArgumentException.class, "lo", () -> o.fixedRange(v, 1));
            refuses("Options.fixedRange(0, " + v + ")", IllegalArgumentException.class, "hi", () -> o.fixedRange(0, v));
        }
        refuses("Options.fixedRange(1, 1)", IllegalArgumentException.class, "hi", () -> o.fixedRange(1, 1));
        refuses("Options.fixedRange(2, 1)", IllegalArgumentException.class, "hi", () -> o.fixedRange(2, 1));
        for (float k : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f, -1f, Float.MIN_VALUE,
            1e-17f, 1e-16f, 1e-7f}) {
            refuses("Options.k(" + k + ")", IllegalArgumentException.class, "k", () -> o.k(k));
        }
        refuses("Options.order(null)", NullPointerException.class, "order", () -> o.order(null));
        refuses("Options.layout(null)", NullPointerException.class, "layout", () -> o.layout(null));
        correct("Options.k(MIN_K) stays within the spec: T_k(1) = 1", false, () -> {
            float[] x = random(3, 2 * 8 * 8);
            for (int i = 0; i < x.length; i += 2) {
                x[i + 1] = x[i]; // horizontal neighbours equal: NMI 1 at dx = +-1 half the time
            }
            Options tiny = o.k(SpatialDependence.MIN_K);
            Result r = SpatialDependence.compute(cpu, x, 1, 2, 8, 8, tiny);
            SpatialDependenceOracle.Output e = SpatialDependenceOracle.compute(x, 1, 2, 8, 8, tiny, null);
            SpatialDependenceTest.assertClose("k = MIN_K: S", e.s, r.s());
            SpatialDependenceTest.assertClose("k = MIN_K: G", e.g, r.g());
        });
        refuses("SpatialDependence.pairsPerChannel(0, ...)", IllegalArgumentException.class, "batch",
                () -> SpatialDependence.pairsPerChannel(0, 4, 4, o));
        refuses("SpatialDependence.pairsPerChannel(.., huge padding)", IllegalArgumentException.class, "padH",
                () -> SpatialDependence.pairsPerChannel(1, 4, 4, o.padding(Integer.MAX_VALUE, 0)));
        refuses("SpatialDependence.pairsPerChannel(null options)", NullPointerException.class, "options",
                () -> SpatialDependence.pairsPerChannel(1, 4, 4, null));
        correct("SpatialDependence.pairsPerChannel(MAX batch) is exact", false, () -> {
            long p = SpatialDependence.pairsPerChannel(Integer.MAX_VALUE, 4, 4, o);
            check(p == (long) Integer.MAX_VALUE * (25 + 30 + 25 + 30), "pairs " + p); // 6x6 padded: (-1,-1) (-1,0) (-1,1) (0,-1)
        });
    }

    // ---- SpatialDependence.compute ------------------------------------------------------------------

    private void dependenceCompute() {
        Options o = Options.defaults();
        List<Options> modes = List.of(o, o.range(RangeMode.CHANNEL), o.removeZeros(true), o.fixedRange(-2, 2).bins(16));
        String[] sizeNames = {"batch", "channels", "height", "width"};
        for (int arg = 0; arg < 4; arg++) {
            for (int bad : new int[] {0, -1, Integer.MIN_VALUE}) {
                int[] size = {1, 1, 4, 4};
                size[arg] = bad;
                int a = arg;
                refusesInChild("SpatialDependence.compute " + sizeNames[arg] + " = " + bad, IllegalArgumentException.class,
                        sizeNames[a], () -> SpatialDependence.compute(cpu, new float[16], size[0], size[1], size[2], size[3], o));
            }
        }
        // Products of sizes that overflow int and long: a wrapped product could match the short array.
        int[][] overflowing = {
            {1582808189, 929, 3478, 3607}, // issue 10: wraps to 210 in 64-bit arithmetic
            {Integer.MAX_VALUE, Integer.MAX_VALUE, 2, 2}, {65536, 65536, 1, 1}, {1, 65536, 65536, 1},
            {Integer.MAX_VALUE, 1, 1, 1}, {2, Integer.MAX_VALUE, 1, 1}, {1, 1, 46341, 46341}, {4, 4, 65536, 8192},
            {1 << 30, 1 << 30, 4, 4}, {1 << 16, 1 << 16, 1 << 16, 1 << 15}};
        for (int[] s : overflowing) {
            int expectedLength = 210;
            correct("SpatialDependence.compute overflowing " + Arrays.toString(s) + " on float[210]", true, () -> {
                long before = HostBuffer.liveBytes();
                Throwable t = null;
                try {
                    SpatialDependence.compute(cpu, new float[expectedLength], s[0], s[1], s[2], s[3], o);
                } catch (IllegalArgumentException e) {
                    t = e;
                }
                check(t != null, "accepted");
                String m = t.getMessage();
                check(m.startsWith("input") || m.startsWith("batch") || m.startsWith("channels") || m.startsWith("height")
                        || m.startsWith("pad"), "the message names no argument: " + m);
                check(HostBuffer.liveBytes() == before, "allocated before refusing");
            });
        }
        correct("SpatialDependence.compute channels = 2^23 on float[8]: refused before any allocation", true, () -> {
            long before = HostBuffer.liveBytes();
            long start = System.nanoTime();
            expectRefusal(IllegalArgumentException.class, "input",
                    () -> SpatialDependence.compute(cpu, new float[8], 1, 1 << 23, 1, 1, o));
            check(HostBuffer.liveBytes() == before, "host bytes allocated before refusing");
            check(System.nanoTime() - start < 2_000_000_000L, "took " + (System.nanoTime() - start) / 1e9 + " s to refuse");
        });
        for (Options mode : List.of(o, o.range(RangeMode.CHANNEL), o.removeZeros(true))) {
            for (int[] pad : new int[][] {{Integer.MAX_VALUE, Integer.MAX_VALUE}, {Integer.MAX_VALUE, 0}, {0, Integer.MAX_VALUE},
                {1 << 30, 0}, {40000, 40000}}) {
                String arg = pad[0] > Integer.MAX_VALUE / 2 - 1 ? "padH" : pad[1] > Integer.MAX_VALUE / 2 - 1 ? "padW" : "height";
                refusesInChild("SpatialDependence.compute 2x2, padding " + pad[0] + "," + pad[1] + ", " + mode,
                        IllegalArgumentException.class, arg,
                        () -> SpatialDependence.compute(cpu, new float[4], 1, 1, 2, 2, mode.padding(pad[0], pad[1])));
            }
        }
        refusesInChild("SpatialDependence.compute null backend", NullPointerException.class, "backend",
                () -> SpatialDependence.compute(null, new float[16], 1, 1, 4, 4, o));
        refusesInChild("SpatialDependence.compute null options", NullPointerException.class, "options",
                () -> SpatialDependence.compute(cpu, new float[16], 1, 1, 4, 4, null));
        refusesInChild("SpatialDependence.compute null float[]", NullPointerException.class, "input",
                () -> SpatialDependence.compute(cpu, (float[]) null, 1, 1, 4, 4, o));
        refusesInChild("SpatialDependence.compute null Memory", NullPointerException.class, "input",
                () -> SpatialDependence.compute(cpu, (Memory) null, 1, 1, 4, 4, o));
        for (int delta : new int[] {-16, -1, 1, 100}) {
            refusesInChild("SpatialDependence.compute array of 32 " + (delta > 0 ? "+" : "") + delta, IllegalArgumentException.class,
                    "input", () -> SpatialDependence.compute(cpu, new float[32 + delta], 2, 1, 4, 4, o));
        }
        refusesInChild("SpatialDependence.compute INT32 input", IllegalArgumentException.class, "input",
                () -> SpatialDependence.compute(cpu, Memory.of(new int[16]), 1, 1, 4, 4, o));
        refusesInChild("SpatialDependence.compute closed HostBuffer input", IllegalStateException.class, "closed",
                () -> SpatialDependence.compute(cpu, closedHostBufferMemory(16), 1, 1, 4, 4, o));
        float[] bad = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
        for (Options mode : modes) {
            for (float v : bad) {
                for (int at : new int[] {0, 37, 2 * 3 * 5 * 7 - 1}) {
                    correct("SpatialDependence.compute " + v + " at " + at + ", " + mode, true, () -> {
                        float[] x = random(4, 2 * 3 * 5 * 7);
                        x[at] = v;
                        Throwable t = null;
                        try {
                            SpatialDependence.compute(cpu, x, 2, 3, 5, 7, mode);
                        } catch (GradshapeException e) {
                            check(e.status() == Status.NONFINITE_INPUT, "status " + e.status());
                            t = e;
                        }
                        check(t != null, "accepted a non-finite input");
                        check(t.getMessage().startsWith("input"), "message: " + t.getMessage());
                    });
                }
            }
        }
        // Correct results on edge inputs, against the float64 oracle of SPEC.md.
        int[][] shapes = {{1, 1, 1, 1}, {1, 1, 1, 2}, {1, 1, 2, 1}, {1, 2, 3, 3}, {3, 2, 5, 7}, {1, 1, 1, 9}, {2, 1, 9, 1}};
        List<Options> oracleModes = List.of(o, o.removeZeros(true), o.range(RangeMode.CHANNEL).bins(8), o.padding(0, 0),
                o.kernel(7, 5).padding(0, 2), o.fixedRange(-1, 1).bins(4));
        for (int[] s : shapes) {
            for (Options mode : oracleModes) {
                correct("SpatialDependence.compute " + Arrays.toString(s) + " " + mode + " vs oracle", true,
                        () -> assertOracle(random(5 + s[2] * 31 + s[3], s[0] * s[1] * s[2] * s[3]), s, mode));
            }
        }
        correct("SpatialDependence.compute constant map: NMI NaN, G all ones", true, () -> {
            float[] x = new float[2 * 6 * 6];
            Arrays.fill(x, 0.5f);
            Result r = SpatialDependence.compute(cpu, x, 1, 2, 6, 6, o.padding(0, 0));
            check(r.gKeptPrevious(), "gKeptPrevious");
            for (float g : r.g()) {
                check(g == 1f, "G " + Arrays.toString(r.g()));
            }
        });
        correct("SpatialDependence.compute all zeros with zero removal: S from zeros, G finite", true,
                () -> assertOracle(new float[2 * 5 * 5], new int[] {1, 2, 5, 5}, o.removeZeros(true)));
        correct("SpatialDependence.compute +-Float.MAX_VALUE and subnormals vs oracle", true, () -> {
            float[] x = random(6, 2 * 6 * 6);
            x[0] = Float.MAX_VALUE;
            x[1] = -Float.MAX_VALUE;
            x[5] = Float.MIN_VALUE;
            x[7] = -0f;
            assertOracle(x, new int[] {1, 2, 6, 6}, o);
        });
        correct("SpatialDependence.compute -0.0 counts as zero for zero removal", true, () -> {
            float[] x = random(7, 6 * 6);
            for (int i = 0; i < x.length; i += 3) {
                x[i] = -0f;
            }
            assertOracle(x, new int[] {1, 1, 6, 6}, o.removeZeros(true));
        });
        correct("SpatialDependence.compute read-only mapped input = array input", true, () -> {
            float[] x = random(8, 2 * 7 * 6);
            Result expected = SpatialDependence.compute(cpu, x, 2, 1, 7, 6, o);
            check(expected.equals(SpatialDependence.compute(cpu, Memory.of(readOnlyMapping(x)), 2, 1, 7, 6, o)), "same result");
        });
        correct("SpatialDependence: maxima in [2048, 16384) clamp to the last bin (documented departure)", true,
                BadInputCases::clampAtTheTopBin);
    }

    private static Memory closedHostBufferMemory(int floats) {
        HostBuffer b = HostBuffer.allocate(DType.FLOAT32, floats);
        Memory m = b.memory();
        b.close();
        return m;
    }

    private void assertOracle(float[] x, int[] s, Options o) {
        String where = Arrays.toString(s) + " " + o;
        Result r = SpatialDependence.compute(cpu, x, s[0], s[1], s[2], s[3], o);
        SpatialDependenceOracle.Output e = SpatialDependenceOracle.compute(x, s[0], s[1], s[2], s[3], o, null);
        SpatialDependenceTest.assertClose(where + ": nmi", e.nmi, r.nmi());
        SpatialDependenceTest.assertClose(where + ": S", e.s, r.s());
        SpatialDependenceTest.assertClose(where + ": G", e.g, r.g());
        check(e.gKeptPrevious == r.gKeptPrevious(), where + ": gKeptPrevious " + r.gKeptPrevious());
    }

    /**
     * SPEC.md section 1 and docs/spatial_dependence.md: with Sturges bins, where a pair set's maximum lies
     * in about [2048, 16384) the {@code + 1e-12} of {@code hi} is only 1-2 ulps, and the reference's
     * float64 bin index {@code (int) ((max - lo) * (B / (hi - lo)))} can reach {@code B}, one past its
     * table. We clamp it to {@code B - 1}: here every pair whose P is the maximum must be counted in the
     * last row, and no pair may be dropped.
     */
    static void clampAtTheTopBin() {
        Backend cpu = Backends.cpu();
        int h = 6, w = 6, b = 6; // every pair set has 25 or 30 pairs: B = 1 + ceil(log2 n) = 6
        int m = 2048;
        while ((int) (m * (b / (m + 1e-12))) < b) {
            m++; // the first maximum >= 2048 whose reference index reaches B (with lo = 0)
        }
        check(m < 16384, "no maximum in [2048, 16384) reaches B: " + m);
        float[] x = new float[h * w];
        for (int i = 0; i < x.length; i++) {
            x[i] = switch (i % 3) { case 0 -> m; case 1 -> 0f; default -> m / 2f; }; // every P set holds 0, m/2 and m
        }
        Options o = Options.defaults().padding(0, 0);
        try (SpatialDependenceAccumulator acc = new SpatialDependenceAccumulator(cpu, 1, h, w, o)) {
            acc.observe(Memory.of(x), 1);
            acc.beginBinning();
            acc.bin(Memory.of(x), 1);
            State st = acc.exportState();
            int tb = st.tableBins();
            for (int u = 0; u < o.displacements(); u++) {
                int dy = u / 3 - 1, dx = u % 3 - 1;
                long pairs = st.pairCount(0, u);
                check(1 + SpatialDependence.ceilLog2(pairs) == b, "displacement " + u + ": " + pairs + " pairs");
                check(st.minima()[2 * u] == 0f && st.maxima()[2 * u] == m, "displacement " + u + ": P range");
                long atMax = 0;
                for (int i = Math.max(0, -dy); i < h - Math.max(0, dy); i++) {
                    for (int j = Math.max(0, -dx); j < w - Math.max(0, dx); j++) {
                        if (x[i * w + j] == m) {
                            atMax++;
                        }
                    }
                }
                long sum = 0, lastRow = 0;
                for (int i = 0; i < tb; i++) {
                    for (int j = 0; j < tb; j++) {
                        long v = st.histogram()[u * tb * tb + i * tb + j];
                        sum += v;
                        if (i == b - 1) {
                            lastRow += v;
                        }
                        check(v == 0 || (i < b && j < b), "displacement " + u + ": a count outside the B x B table");
                    }
                }
                check(sum == pairs, "displacement " + u + ": " + sum + " counts for " + pairs + " pairs (the maximum dropped?)");
                check(lastRow == atMax, "displacement " + u + ": the last row holds " + lastRow + ", expected the " + atMax
                        + " pairs whose P is the maximum " + m);
            }
        }
    }

    // ---- SpatialDependenceAccumulator --------------------------------------------------------------

    private void accumulator() {
        Options o = Options.defaults();
        refusesInChild("Accumulator(null backend)", NullPointerException.class, "backend",
                () -> new SpatialDependenceAccumulator(null, 1, 4, 4, o).close());
        refusesInChild("Accumulator(null options)", NullPointerException.class, "options",
                () -> new SpatialDependenceAccumulator(cpu, 1, 4, 4, null).close());
        String[] names = {"channels", "height", "width"};
        for (int arg = 0; arg < 3; arg++) {
            for (int bad : new int[] {0, -1, Integer.MIN_VALUE}) {
                int[] s = {1, 4, 4};
                s[arg] = bad;
                refusesInChild("Accumulator " + names[arg] + " = " + bad, IllegalArgumentException.class, names[arg],
                        () -> new SpatialDependenceAccumulator(cpu, s[0], s[1], s[2], o).close());
            }
        }
        refusesInChild("Accumulator 2^31-1 channels of a 5x5 window", IllegalArgumentException.class, "channels",
                () -> new SpatialDependenceAccumulator(cpu, Integer.MAX_VALUE, 4, 4, o.kernel(5, 5)).close());
        refusesInChild("Accumulator 65536 x 65536 map", IllegalArgumentException.class, "height",
                () -> new SpatialDependenceAccumulator(cpu, 1, 65536, 65536, o).close());
        refusesInChild("Accumulator huge padding, channel range", IllegalArgumentException.class, "padH",
                () -> new SpatialDependenceAccumulator(cpu, 1, 2, 2,
                        o.padding(Integer.MAX_VALUE, Integer.MAX_VALUE).range(RangeMode.CHANNEL)).close());
        int c = 2, h = 5, w = 6;
        float[] x = random(9, 3 * c * h * w);
        Consumer<SpatialDependenceAccumulator> observed = a -> a.observe(Memory.of(x), 3);
        Consumer<SpatialDependenceAccumulator> binning = a -> {
            a.observe(Memory.of(x), 3);
            a.beginBinning();
            a.bin(Memory.of(x), 3);
        };
        accCase("observe(null)", NullPointerException.class, "batch", a -> a.observe(null, 1));
        accCase("observe batchSize 0", IllegalArgumentException.class, "batchSize", a -> a.observe(Memory.of(x), 0));
        accCase("observe batchSize -1", IllegalArgumentException.class, "batchSize", a -> a.observe(Memory.of(x), -1));
        accCase("observe batchSize MAX", IllegalArgumentException.class, "batch", a -> a.observe(Memory.of(x), Integer.MAX_VALUE));
        accCase("observe short batch", IllegalArgumentException.class, "batch", a -> a.observe(Memory.of(x, 0, 59), 1));
        accCase("observe NaN batch", GradshapeException.class, "batch", a -> {
            float[] y = x.clone();
            y[11] = Float.NaN;
            a.observe(Memory.of(y), 3);
        });
        accCase("observe after beginBinning", IllegalStateException.class, "observe", a -> {
            binning.accept(a);
            a.observe(Memory.of(x), 3);
        });
        accCase("bin before beginBinning", IllegalStateException.class, "bin", a -> {
            observed.accept(a);
            a.bin(Memory.of(x), 3);
        });
        accCase("beginBinning without samples", IllegalStateException.class, "beginBinning", SpatialDependenceAccumulator::beginBinning);
        accCase("beginBinning twice", IllegalStateException.class, "beginBinning", a -> {
            binning.accept(a);
            a.beginBinning();
        });
        accCase("finish in phase 1", IllegalStateException.class, "finish", a -> {
            observed.accept(a);
            a.finish();
        });
        for (float v : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -1f}) {
            accCase("finish(previousG with " + v + ")", IllegalArgumentException.class, "previousG", a -> {
                binning.accept(a);
                float[] g = new float[9];
                Arrays.fill(g, 1f);
                g[4] = v;
                a.finish(g);
            });
            accCase("finish(Memory previousG with " + v + ")", IllegalArgumentException.class, "previousG", a -> {
                binning.accept(a);
                float[] g = new float[9];
                Arrays.fill(g, 1f);
                g[8] = v;
                a.finish(Memory.of(new float[c * 9]), Memory.of(new float[9]), Memory.of(new float[9]), Memory.of(g), null, 0);
            });
        }
        accCase("finish(previousG of 8)", IllegalArgumentException.class, "previousG", a -> {
            binning.accept(a);
            a.finish(new float[8]);
        });
        // Outputs of finish(Memory...): aliasing, read-only, sizes, nulls.
        float[] big = new float[c * 9 + 9 + 9 + 9];
        accCase("finish s overlapping nmi", IllegalArgumentException.class, "s", a -> {
            binning.accept(a);
            a.finish(Memory.of(big, 0, c * 9), Memory.of(big, 9, 9), Memory.of(new float[9]), null, null, 0);
        });
        accCase("finish g overlapping nmi", IllegalArgumentException.class, "g", a -> {
            binning.accept(a);
            a.finish(Memory.of(big, 0, c * 9), Memory.of(new float[9]), Memory.of(big, 1, 9), null, null, 0);
        });
        accCase("finish g == s", IllegalArgumentException.class, "g", a -> {
            binning.accept(a);
            Memory s = Memory.of(new float[9]);
            a.finish(Memory.of(new float[c * 9]), s, s, null, null, 0);
        });
        accCase("finish previousG partly overlapping g", IllegalArgumentException.class, "previousG", a -> {
            binning.accept(a);
            float[] g2 = new float[18];
            Arrays.fill(g2, 1f);
            a.finish(Memory.of(new float[c * 9]), Memory.of(new float[9]), Memory.of(g2, 0, 9), Memory.of(g2, 3, 9), null, 0);
        });
        accCase("finish previousG overlapping s", IllegalArgumentException.class, "previousG", a -> {
            binning.accept(a);
            float[] s = new float[9];
            Arrays.fill(s, 1f);
            a.finish(Memory.of(new float[c * 9]), Memory.of(s), Memory.of(new float[9]), Memory.of(s), null, 0);
        });
        accCase("finish gKeptPrevious overlapping g (host)", IllegalArgumentException.class, "gKeptPrevious", a -> {
            binning.accept(a);
            try (HostBuffer g = HostBuffer.allocate(DType.FLOAT32, 9)) {
                a.finish(Memory.of(new float[c * 9]), Memory.of(new float[9]), g.memory(),
                        null, Memory.host(g.address() + 8, DType.INT32, 1, g), 0);
            }
        });
        accCase("finish read-only nmi", IllegalArgumentException.class, "nmi", a -> {
            binning.accept(a);
            a.finish(Memory.of(readOnlyMapping(new float[c * 9])), Memory.of(new float[9]), Memory.of(new float[9]), null, null, 0);
        });
        accCase("finish read-only s", IllegalArgumentException.class, "s", a -> {
            binning.accept(a);
            a.finish(Memory.of(new float[c * 9]), Memory.of(readOnlyDirect(new float[9])), Memory.of(new float[9]), null, null, 0);
        });
        accCase("finish read-only g", IllegalArgumentException.class, "g", a -> {
            binning.accept(a);
            a.finish(Memory.of(new float[c * 9]), Memory.of(new float[9]), Memory.of(readOnlyMapping(new float[9])), null, null, 0);
        });
        accCase("finish nmi null", NullPointerException.class, "nmi", a -> {
            binning.accept(a);
            a.finish(null, Memory.of(new float[9]), Memory.of(new float[9]), null, null, 0);
        });
        accCase("finish nmi short", IllegalArgumentException.class, "nmi", a -> {
            binning.accept(a);
            a.finish(Memory.of(new float[9]), Memory.of(new float[9]), Memory.of(new float[9]), null, null, 0);
        });
        accCase("finish gKeptPrevious FLOAT32", IllegalArgumentException.class, "gKeptPrevious", a -> {
            binning.accept(a);
            a.finish(Memory.of(new float[c * 9]), Memory.of(new float[9]), Memory.of(new float[9]), null,
                    Memory.of(new float[1]), 0);
        });
        correct("Accumulator finish(Memory) with previousG == g and a read-only previousG agree with finish()", true, () -> {
            try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(cpu, c, h, w, o)) {
                binning.accept(a);
                Result r = a.finish();
                float[] nmi = new float[c * 9], s = new float[9], g = new float[9];
                Arrays.fill(g, 2f);
                int[] kept = {7};
                a.finish(Memory.of(nmi), Memory.of(s), Memory.of(g), Memory.of(g), Memory.of(kept), 0);
                check(Arrays.equals(nmi, r.nmi()) && Arrays.equals(s, r.s()) && Arrays.equals(g, r.g()), "same results");
                check(kept[0] == 0, "gKeptPrevious " + kept[0]);
                float[] g2 = new float[9];
                a.finish(Memory.of(nmi), Memory.of(s), Memory.of(g2), Memory.of(readOnlyDirect(g)), null, 0);
                check(Arrays.equals(g2, r.g()), "same G with a read-only previous G");
            }
        });
        // Use after close of every method.
        String[] methods = {"observe", "beginBinning", "bin", "finish", "exportState", "importState", "mergeState", "reset",
            "phase", "samplesObserved", "tableBins"};
        for (String m : methods) {
            refusesInChild("Accumulator." + m + " after close", IllegalStateException.class, "closed", () -> {
                SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(cpu, c, h, w, o);
                State st = a.exportState();
                a.close();
                a.close(); // idempotent
                switch (m) {
                    case "observe" -> a.observe(Memory.of(x), 3);
                    case "beginBinning" -> a.beginBinning();
                    case "bin" -> a.bin(Memory.of(x), 3);
                    case "finish" -> a.finish();
                    case "exportState" -> a.exportState();
                    case "importState" -> a.importState(st);
                    case "mergeState" -> a.mergeState(st);
                    case "reset" -> a.reset();
                    case "phase" -> a.phase();
                    case "samplesObserved" -> a.samplesObserved();
                    default -> a.tableBins();
                }
            });
        }
        correct("Accumulator: two batches equal one, reset reuses the buffers", true, () -> {
            Result whole = SpatialDependence.compute(cpu, x, 3, c, h, w, o);
            try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(cpu, c, h, w, o)) {
                for (int round = 0; round < 2; round++) {
                    a.observe(Memory.of(x, 0, c * h * w), 1);
                    a.observe(Memory.of(x, c * h * w, 2 * c * h * w), 2);
                    a.beginBinning();
                    a.bin(Memory.of(x, c * h * w, 2 * c * h * w), 2);
                    a.bin(Memory.of(x, 0, c * h * w), 1);
                    check(whole.equals(a.finish()), "round " + round + ": equal to one pass");
                    a.reset();
                }
            }
        });
    }

    /** A case on a fresh 2-channel 5x6 accumulator (default options). */
    private void accCase(String name, Class<? extends Throwable> type, String argument, Consumer<SpatialDependenceAccumulator> call) {
        refusesInChild("Accumulator." + name, type, argument, () -> {
            try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(cpu, 2, 5, 6, Options.defaults())) {
                call.accept(a);
            }
        });
    }

    // ---- corrupted states ---------------------------------------------------------------------------

    /** How to corrupt a state, and which phase's state it applies to. */
    private record Corruption(String name, boolean phaseTwo, Consumer<State> damage) {}

    private void accumulatorState() {
        List<Corruption> list = new ArrayList<>();
        for (boolean two : new boolean[] {false, true}) {
            list.add(new Corruption("samples -1", two, s -> s.counts()[0] = -1));
            list.add(new Corruption("samples Long.MIN_VALUE", two, s -> s.counts()[0] = Long.MIN_VALUE));
            list.add(new Corruption("samples Long.MAX_VALUE", two, s -> s.counts()[0] = Long.MAX_VALUE));
            list.add(new Corruption("non-finite count -1", two, s -> s.counts()[1] = -1));
            list.add(new Corruption("pair count -2^40", two, s -> s.counts()[2] = -(1L << 40)));
            list.add(new Corruption("pair count Long.MAX_VALUE", two, s -> s.counts()[3] = Long.MAX_VALUE));
            list.add(new Corruption("pair count above samples x pairs", two, s -> s.counts()[4] += 1_000_000));
            list.add(new Corruption("minimum NaN", two, s -> s.minima()[0] = Float.NaN));
            list.add(new Corruption("maximum NaN", two, s -> s.maxima()[1] = Float.NaN));
            list.add(new Corruption("minimum above maximum", two, s -> s.minima()[2] = s.maxima()[2] + 1));
            list.add(new Corruption("minimum -inf", two, s -> s.minima()[3] = Float.NEGATIVE_INFINITY));
            list.add(new Corruption("maximum +inf", two, s -> s.maxima()[4] = Float.POSITIVE_INFINITY));
            list.add(new Corruption("empty range with pairs", two, s -> {
                s.minima()[5] = Float.POSITIVE_INFINITY;
                s.maxima()[5] = Float.NEGATIVE_INFINITY;
            }));
        }
        list.add(new Corruption("histogram cell -2^40", true, s -> s.histogram()[0] = -(1L << 40)));
        list.add(new Corruption("histogram cell -1", true, s -> s.histogram()[s.histogram().length - 1] = -1));
        list.add(new Corruption("histogram cell Long.MAX_VALUE", true, s -> s.histogram()[1] = Long.MAX_VALUE));
        list.add(new Corruption("histogram cells overflowing a long", true, s -> {
            s.histogram()[2] = Long.MAX_VALUE / 2 + 1;
            s.histogram()[3] = Long.MAX_VALUE / 2 + 1;
        }));
        list.add(new Corruption("histogram more counts than pairs", true, s -> s.histogram()[7] += 1000));
        list.add(new Corruption("phase-1 counts summed again in phase 2", true, s -> {
            for (int i = 0; i < s.counts().length; i++) {
                s.counts()[i] *= 2;
            }
        }));
        Options o = Options.defaults();
        int c = 2, h = 5, w = 6;
        float[] x = random(10, 3 * c * h * w);
        for (Corruption k : list) {
            for (String how : new String[] {"importState", "mergeState"}) {
                if (k.phaseTwo && how.equals("mergeState") && k.name.startsWith("phase-1")) {
                    continue; // mergeState states this one with its own message (tested in SpatialDependenceTest)
                }
                String name = "Accumulator." + how + " of a " + (k.phaseTwo ? "phase-2" : "phase-1") + " state: " + k.name;
                String argument = how.equals("importState") ? "state" : "other";
                correct(name, true, () -> {
                    try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(cpu, c, h, w, o)) {
                        a.observe(Memory.of(x), 3);
                        if (k.phaseTwo) {
                            a.beginBinning();
                            a.bin(Memory.of(x), 3);
                        }
                        State good = a.exportState();
                        State bad = a.exportState();
                        k.damage.accept(bad);
                        expectRefusal(IllegalArgumentException.class, argument,
                                () -> {
                                    if (how.equals("importState")) {
                                        a.importState(bad);
                                    } else {
                                        a.mergeState(bad);
                                    }
                                });
                        // The refused state left the accumulator as it was.
                        State after = a.exportState();
                        check(Arrays.equals(good.counts(), after.counts()) && Arrays.equals(good.minima(), after.minima())
                                && Arrays.equals(good.maxima(), after.maxima())
                                && Arrays.equals(good.histogram(), after.histogram()), "state changed by a refused " + how);
                    }
                });
            }
        }
        refusesInChild("Accumulator.importState(null)", NullPointerException.class, "other", () -> {
            try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(cpu, c, h, w, o)) {
                a.importState(null);
            }
        });
        refusesInChild("Accumulator.importState of another shape", IllegalArgumentException.class, "shape", () -> {
            try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(cpu, c, h, w, o);
                    SpatialDependenceAccumulator b = new SpatialDependenceAccumulator(cpu, c, h, w + 1, o)) {
                a.importState(b.exportState());
            }
        });
        refusesInChild("Accumulator.importState of other options", IllegalArgumentException.class, "Options", () -> {
            try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(cpu, c, h, w, o);
                    SpatialDependenceAccumulator b = new SpatialDependenceAccumulator(cpu, c, h, w, o.removeZeros(true))) {
                a.importState(b.exportState());
            }
        });
        refusesInChild("Accumulator.importState of the other phase", IllegalArgumentException.class, "phase", () -> {
            try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(cpu, c, h, w, o)) {
                a.observe(Memory.of(x), 3);
                State one = a.exportState();
                a.beginBinning();
                a.importState(one);
            }
        });
        correct("Accumulator: export, all-reduce (x1), import round trip gives the same result", true, () -> {
            try (SpatialDependenceAccumulator a = new SpatialDependenceAccumulator(cpu, c, h, w, o);
                    SpatialDependenceAccumulator b = new SpatialDependenceAccumulator(cpu, c, h, w, o)) {
                a.observe(Memory.of(x), 3);
                b.importState(a.exportState());
                a.beginBinning();
                b.beginBinning();
                a.bin(Memory.of(x), 3);
                b.bin(Memory.of(x), 3);
                State st = a.exportState();
                b.importState(st);
                check(a.finish().equals(b.finish()), "same result");
                check(SpatialDependence.compute(cpu, x, 3, c, h, w, o).equals(b.finish()), "equal to one call");
            }
        });
    }

    // ---- ScaledSgd ----------------------------------------------------------------------------------

    private void scaledSgd() {
        refuses("ScaledSgd.builder(null)", NullPointerException.class, "backend", () -> ScaledSgd.builder(null));
        float[] bad = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, -1f, -Float.MIN_VALUE};
        for (float v : bad) {
            refuses("ScaledSgd.lr(" + v + ")", IllegalArgumentException.class, "lr", () -> ScaledSgd.builder(cpu).lr(v));
            refuses("ScaledSgd.momentum(" + v + ")", IllegalArgumentException.class, "momentum", () -> ScaledSgd.builder(cpu).momentum(v));
            refuses("ScaledSgd.weightDecay(" + v + ")", IllegalArgumentException.class, "weightDecay",
                    () -> ScaledSgd.builder(cpu).weightDecay(v));
        }
        for (float v : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            refuses("ScaledSgd.dampening(" + v + ")", IllegalArgumentException.class, "dampening",
                    () -> ScaledSgd.builder(cpu).dampening(v));
        }
        refuses("ScaledSgd.initialStepCount(-1)", IllegalArgumentException.class, "initialStepCount",
                () -> ScaledSgd.builder(cpu).initialStepCount(-1));
        refuses("ScaledSgd.addParameter(null)", NullPointerException.class, "parameter", () -> ScaledSgd.builder(cpu).addParameter(null));
        refuses("ScaledSgd.Parameter.of(null, g)", NullPointerException.class, "weights",
                () -> ScaledSgd.Parameter.of(null, Memory.of(new float[1])));
        refuses("ScaledSgd.Parameter.of(w, null)", NullPointerException.class, "grads",
                () -> ScaledSgd.Parameter.of(Memory.of(new float[1]), null));
        refuses("ScaledSgd.build() with no parameters", IllegalArgumentException.class, "parameters",
                () -> ScaledSgd.builder(cpu).build());
        for (int[] k : new int[][] {{0, 3}, {3, 0}, {-1, 3}, {3, Integer.MIN_VALUE}, {65537, 65537}, {Integer.MAX_VALUE, 2}}) {
            String arg = k[0] < 1 ? "kh" : k[1] < 1 ? "kw" : "kh * kw";
            refuses("ScaledSgd.Kernel.of(" + k[0] + ", " + k[1] + ")", IllegalArgumentException.class, arg,
                    () -> ScaledSgd.Kernel.of(k[0], k[1]));
        }
        refuses("ScaledSgd.Kernel.of(3, 3, OIHW, 0, 1)", IllegalArgumentException.class, "cin",
                () -> ScaledSgd.Kernel.of(3, 3, ScaledSgd.Layout.OIHW, 0, 1));
        refuses("ScaledSgd.Kernel.of(3, 3, OIHW, 1, -1)", IllegalArgumentException.class, "cout",
                () -> ScaledSgd.Kernel.of(3, 3, ScaledSgd.Layout.OIHW, 1, -1));
        refuses("ScaledSgd.Kernel.of(3, 3, OIHW, 2^40, 2^40)", IllegalArgumentException.class, "cin * cout",
                () -> ScaledSgd.Kernel.of(3, 3, ScaledSgd.Layout.OIHW, 1L << 40, 1L << 40));
        refuses("ScaledSgd.Kernel.of(3, 3, null, 1, 1)", NullPointerException.class, "layout",
                () -> ScaledSgd.Kernel.of(3, 3, null, 1, 1));
        refuses("ScaledSgd.Kernel.of HWIO Cin*Cout > 2^31", IllegalArgumentException.class, "cin * cout",
                () -> ScaledSgd.Kernel.of(3, 3, ScaledSgd.Layout.HWIO, 1L << 16, 1L << 16));
        refuses("ScaledSgd.Kernel.ofWeightShape 3 dims", IllegalArgumentException.class, "shape",
                () -> ScaledSgd.Kernel.ofWeightShape(ScaledSgd.Layout.OIHW, 1, 2, 3));
        refuses("ScaledSgd.Kernel.ofWeightShape null", NullPointerException.class, "shape",
                () -> ScaledSgd.Kernel.ofWeightShape(ScaledSgd.Layout.OIHW, (long[]) null));
        refuses("ScaledSgd.Kernel.ofWeightShape negative kernel", IllegalArgumentException.class, "shape",
                () -> ScaledSgd.Kernel.ofWeightShape(ScaledSgd.Layout.OIHW, 4, 4, -3, 3));
        refuses("ScaledSgd.Kernel.ofWeightShape kernel > 2^31", IllegalArgumentException.class, "shape",
                () -> ScaledSgd.Kernel.ofWeightShape(ScaledSgd.Layout.OIHW, 4, 4, 1L << 32, 3));
        refuses("ScaledSgd.Segment.of(-1, 1)", IllegalArgumentException.class, "offset", () -> ScaledSgd.Segment.of(-1, 1));
        refuses("ScaledSgd.Segment.of(0, -1)", IllegalArgumentException.class, "length", () -> ScaledSgd.Segment.of(0, -1));
        sgdBuild("Java array weights", IllegalArgumentException.class, "weights",
                (w, g, m) -> ScaledSgd.builder(cpu).addParameter(ScaledSgd.Parameter.of(Memory.of(new float[8]), g)));
        sgdBuild("INT32 grads", IllegalArgumentException.class, "grads",
                (w, g, m) -> ScaledSgd.builder(cpu).addParameter(ScaledSgd.Parameter.of(w, Memory.host(g.address(), DType.INT32, 8, g))));
        sgdBuild("short grads", IllegalArgumentException.class, "grads",
                (w, g, m) -> ScaledSgd.builder(cpu).addParameter(ScaledSgd.Parameter.of(w, g.slice(0, 7))));
        sgdBuild("momentum buffer with momentum 0", IllegalArgumentException.class, "momentumBuffer",
                (w, g, m) -> ScaledSgd.builder(cpu).addParameter(ScaledSgd.Parameter.of(w, g).withMomentumBuffer(m)));
        sgdBuild("short momentum buffer", IllegalArgumentException.class, "momentumBuffer",
                (w, g, m) -> ScaledSgd.builder(cpu).momentum(0.9f).addParameter(ScaledSgd.Parameter.of(w, g).withMomentumBuffer(m.slice(1, 7))));
        sgdBuild("read-only mapped weights", IllegalArgumentException.class, "weights",
                (w, g, m) -> ScaledSgd.builder(cpu).addParameter(ScaledSgd.Parameter.of(Memory.of(readOnlyMapping(new float[8])), g)));
        sgdBuild("read-only direct weights", IllegalArgumentException.class, "weights",
                (w, g, m) -> ScaledSgd.builder(cpu).addParameter(ScaledSgd.Parameter.of(Memory.of(readOnlyDirect(new float[8])), g)));
        sgdBuild("read-only momentum buffer", IllegalArgumentException.class, "momentumBuffer",
                (w, g, m) -> ScaledSgd.builder(cpu).momentum(0.9f)
                        .addParameter(ScaledSgd.Parameter.of(w, g).withMomentumBuffer(Memory.of(readOnlyDirect(new float[8])))));
        sgdBuild("read-only flat weights", IllegalArgumentException.class, "weights",
                (w, g, m) -> ScaledSgd.builder(cpu).addFlat(Memory.of(readOnlyMapping(new float[8])), g, List.of(ScaledSgd.Segment.of(0, 8))));
        sgdBuild("read-only flat momentum", IllegalArgumentException.class, "momentum",
                (w, g, m) -> ScaledSgd.builder(cpu).momentum(0.5f).addFlat(w, g, Memory.of(readOnlyDirect(new float[8])),
                        List.of(ScaledSgd.Segment.of(0, 8))));
        sgdBuild("weights aliasing the momentum buffer", IllegalArgumentException.class, "overlaps",
                (w, g, m) -> ScaledSgd.builder(cpu).momentum(0.9f).addParameter(ScaledSgd.Parameter.of(w, g).withMomentumBuffer(w)));
        sgdBuild("two parameters sharing weights", IllegalArgumentException.class, "overlaps",
                (w, g, m) -> ScaledSgd.builder(cpu).addParameter(ScaledSgd.Parameter.of(w, g)).addParameter(ScaledSgd.Parameter.of(w.slice(4, 4), m.slice(0, 4))));
        sgdBuild("segment past the flat buffer", IllegalArgumentException.class, "lies outside",
                (w, g, m) -> ScaledSgd.builder(cpu).addFlat(w, g, List.of(ScaledSgd.Segment.of(Long.MAX_VALUE, 1))));
        sgdBuild("segment of Long.MAX_VALUE elements", IllegalArgumentException.class, "lies outside",
                (w, g, m) -> ScaledSgd.builder(cpu).addFlat(w, g, List.of(ScaledSgd.Segment.of(1, Long.MAX_VALUE))));
        sgdBuild("null segment", NullPointerException.class, "segments[0]",
                (w, g, m) -> ScaledSgd.builder(cpu).addFlat(w, g, Arrays.asList((ScaledSgd.Segment) null)));
        sgdBuild("kernel not dividing the weights", IllegalArgumentException.class, "weights",
                (w, g, m) -> ScaledSgd.builder(cpu).addParameter(ScaledSgd.Parameter.of(w, g).withKernel(3, 3)));
        sgdBuild("nesterov without momentum", IllegalArgumentException.class, "nesterov",
                (w, g, m) -> ScaledSgd.builder(cpu).nesterov(true).addParameter(ScaledSgd.Parameter.of(w, g)));
        sgdBuild("nesterov with dampening", IllegalArgumentException.class, "nesterov",
                (w, g, m) -> ScaledSgd.builder(cpu).momentum(0.9f).dampening(0.1f).nesterov(true).addParameter(ScaledSgd.Parameter.of(w, g)));
        sgdBuild("device grads on the CPU", IllegalArgumentException.class, "grads",
                (w, g, m) -> ScaledSgd.builder(cpu).addParameter(ScaledSgd.Parameter.of(w, Memory.device(4096, DType.FLOAT32, 8, 0))));
        sgdBuild("closed weights", IllegalStateException.class, "closed",
                (w, g, m) -> ScaledSgd.builder(cpu).addParameter(ScaledSgd.Parameter.of(closedHostBufferMemory(8), g)));
        correct("ScaledSgd read-only gradients are fine (only read)", false, () -> {
            try (HostBuffer w = HostBuffer.of(new float[] {1, 2, 3, 4});
                    ScaledSgd sgd = ScaledSgd.builder(cpu).lr(0.5f)
                            .addParameter(ScaledSgd.Parameter.of(w.memory(), Memory.of(readOnlyMapping(new float[] {2, 2, 2, 2})))).build()) {
                sgd.step();
                check(Arrays.equals(new float[] {0, 1, 2, 3}, w.toFloatArray()), Arrays.toString(w.toFloatArray()));
            }
        });
        sgdUse("setScale(-1)", IllegalArgumentException.class, "parameterIndex", s -> s.setScale(-1, new float[9]));
        sgdUse("setScale(2)", IllegalArgumentException.class, "parameterIndex", s -> s.setScale(2, new float[9]));
        sgdUse("setScale(MAX)", IllegalArgumentException.class, "parameterIndex", s -> s.setScale(Integer.MAX_VALUE, new float[9]));
        sgdUse("setScale on a parameter without kernel", IllegalArgumentException.class, "parameterIndex", s -> s.setScale(1, new float[1]));
        sgdUse("setScale(null)", NullPointerException.class, "g", s -> s.setScale(0, (float[]) null));
        sgdUse("setScale(null Memory)", NullPointerException.class, "g", s -> s.setScale(0, (Memory) null));
        sgdUse("setScale 8 values", IllegalArgumentException.class, "g", s -> s.setScale(0, new float[8]));
        for (float v : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            sgdUse("setScale with " + v, IllegalArgumentException.class, "g[4]", s -> {
                float[] g = new float[9];
                g[4] = v;
                s.setScale(0, g);
            });
            sgdUse("setScale(Memory) with " + v, IllegalArgumentException.class, "g[0]", s -> {
                float[] g = new float[9];
                g[0] = v;
                s.setScale(0, Memory.of(readOnlyDirect(g)));
            });
        }
        sgdUse("setScale device memory on CPU", IllegalArgumentException.class, "g",
                s -> s.setScale(0, Memory.device(4096, DType.FLOAT32, 9, 0)));
        for (float v : new float[] {0f, -1f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            sgdUse("step(unscale " + v + ")", IllegalArgumentException.class, "unscale", s -> s.step(v, false));
            sgdUse("setLearningRate(" + v + ")" , IllegalArgumentException.class, "lr",
                    s -> s.setLearningRate(v == 0f ? -0.5f : v));
        }
        sgdUse("momentumBuffer(-1)", IllegalArgumentException.class, "parameterIndex", s -> s.momentumBuffer(-1));
        sgdUse("momentumBuffer(5)", IllegalArgumentException.class, "parameterIndex", s -> s.momentumBuffer(5));
        sgdUse("scale(7)", IllegalArgumentException.class, "parameterIndex", s -> s.scale(7));
        for (String m : new String[] {"step", "setScale", "setLearningRate", "momentumBuffer", "scale"}) {
            sgdUse(m + " after close", IllegalStateException.class, "closed", s -> {
                s.close();
                s.close();
                switch (m) {
                    case "step" -> s.step();
                    case "setScale" -> s.setScale(0, new float[9]);
                    case "setLearningRate" -> s.setLearningRate(0.1f);
                    case "momentumBuffer" -> s.momentumBuffer(0);
                    default -> s.scale(0);
                }
            });
        }
        correct("ScaledSgd step after the owner closed its weights is refused", true, () -> {
            HostBuffer w = HostBuffer.allocate(DType.FLOAT32, 9);
            try (HostBuffer g = HostBuffer.allocate(DType.FLOAT32, 9);
                    ScaledSgd sgd = ScaledSgd.builder(cpu).addParameter(ScaledSgd.Parameter.of(w.memory(), g.memory())).build()) {
                w.close();
                expectRefusal(IllegalStateException.class, "closed", sgd::step);
                check(sgd.stepCount() == 0, "a refused step counted");
            }
        });
    }

    /** Three host buffers of 8 floats (weights, grads, momentum) for a build case, closed afterwards. */
    private interface SgdBuild {
        ScaledSgd.Builder make(Memory w, Memory g, Memory m);
    }

    private void sgdBuild(String name, Class<? extends Throwable> type, String argument, SgdBuild build) {
        refuses("ScaledSgd.build: " + name, type, argument, () -> {
            try (HostBuffer w = HostBuffer.allocate(DType.FLOAT32, 8); HostBuffer g = HostBuffer.allocate(DType.FLOAT32, 8);
                    HostBuffer m = HostBuffer.allocate(DType.FLOAT32, 8)) {
                long before = HostBuffer.liveBytes();
                try {
                    build.make(w.memory(), g.memory(), m.memory()).build().close();
                } finally {
                    check(HostBuffer.liveBytes() == before, "a refused build left " + (HostBuffer.liveBytes() - before) + " bytes");
                }
            }
        });
    }

    /** A case on a built optimizer: parameter 0 a 3x3 conv of 18 floats, parameter 1 a bias of 2, momentum 0.9. */
    private void sgdUse(String name, Class<? extends Throwable> type, String argument, Consumer<ScaledSgd> use) {
        refuses("ScaledSgd." + name, type, argument, () -> {
            try (HostBuffer w = HostBuffer.allocate(DType.FLOAT32, 20); HostBuffer g = HostBuffer.allocate(DType.FLOAT32, 20);
                    ScaledSgd sgd = ScaledSgd.builder(cpu).momentum(0.9f)
                            .addParameter(ScaledSgd.Parameter.of(w.memory().slice(0, 18), g.memory().slice(0, 18)).withKernel(3, 3))
                            .addParameter(ScaledSgd.Parameter.of(w.memory().slice(18, 2), g.memory().slice(18, 2))).build()) {
                use.accept(sgd);
            }
        });
    }

    // ---- PowerGrad ------------------------------------------------------------------------------------

    private void powerGrad() {
        for (double a : new double[] {-1, -Double.MIN_VALUE, Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, 1e39}) {
            refuses("PowerGrad.Options.of(" + a + ")", IllegalArgumentException.class, "alpha", () -> PowerGrad.Options.of(a));
            refuses("PowerGrad.Options.withAlpha(" + a + ")", IllegalArgumentException.class, "alpha",
                    () -> PowerGrad.Options.of(1).withAlpha(a));
        }
        for (double e : new double[] {-0.1, 1.1, Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY}) {
            refuses("PowerGrad.Options.withSmoothing(" + e + ")", IllegalArgumentException.class, "smoothing",
                    () -> PowerGrad.Options.of(1).withSmoothing(e));
        }
        refuses("PowerGrad.Options.withReduction(null)", NullPointerException.class, "reduction",
                () -> PowerGrad.Options.of(1).withReduction(null));
        refuses("new PowerGrad(null)", NullPointerException.class, "backend", () -> new PowerGrad(null));
        PowerGrad.Options o = PowerGrad.Options.of(0.25);
        int rows = 3, classes = 4;
        float[] z = random(11, rows * classes);
        int[] y = {0, 3, 1};
        for (int r : new int[] {-1, Integer.MIN_VALUE}) {
            refuses("PowerGrad rows " + r, IllegalArgumentException.class, "rows",
                    () -> PowerGrad.compute(cpu, z, r, classes, y, o, new float[12]));
        }
        for (int c : new int[] {0, -1, Integer.MIN_VALUE}) {
            refuses("PowerGrad classes " + c, IllegalArgumentException.class, "classes",
                    () -> PowerGrad.compute(cpu, z, rows, c, y, o, new float[12]));
        }
        for (int[] rc : new int[][] {{Integer.MAX_VALUE, 1}, {1, Integer.MAX_VALUE}, {Integer.MAX_VALUE, Integer.MAX_VALUE},
            {65536, 65536}, {2, 5}}) {
            refuses("PowerGrad logits of 12 for " + rc[0] + " x " + rc[1], IllegalArgumentException.class, "logits",
                    () -> PowerGrad.compute(cpu, z, rc[0], rc[1], y, o, new float[12]));
        }
        correct("PowerGrad NONE with rows = 2^31-1 and 12 logits: refused before allocating the row losses", false, () -> {
            try (PowerGrad p = new PowerGrad(cpu)) {
                expectRefusal(IllegalArgumentException.class, "logits", () -> p.compute(Memory.of(z), Integer.MAX_VALUE, 1,
                        Memory.of(y), o.withReduction(PowerGrad.Reduction.NONE), Memory.of(new float[12])));
            }
        });
        refuses("PowerGrad null logits", NullPointerException.class, "logits",
                () -> PowerGrad.compute(cpu, (float[]) null, rows, classes, y, o, new float[12]));
        refuses("PowerGrad null labels", NullPointerException.class, "labels",
                () -> PowerGrad.compute(cpu, z, rows, classes, (int[]) null, o, new float[12]));
        refuses("PowerGrad null gradOut", NullPointerException.class, "gradOut",
                () -> PowerGrad.compute(cpu, z, rows, classes, y, o, null));
        refuses("PowerGrad null options", NullPointerException.class, "options",
                () -> PowerGrad.compute(cpu, z, rows, classes, y, null, new float[12]));
        refuses("PowerGrad null targets", NullPointerException.class, "targets",
                () -> PowerGrad.computeWithTargets(cpu, z, rows, classes, (float[]) null, o, new float[12]));
        refuses("PowerGrad short labels", IllegalArgumentException.class, "labels",
                () -> PowerGrad.compute(cpu, z, rows, classes, new int[2], o, new float[12]));
        refuses("PowerGrad short gradOut", IllegalArgumentException.class, "gradOut",
                () -> PowerGrad.compute(cpu, z, rows, classes, y, o, new float[11]));
        refuses("PowerGrad short targets", IllegalArgumentException.class, "targets",
                () -> PowerGrad.computeWithTargets(cpu, z, rows, classes, new float[11], o, new float[12]));
        for (int label : new int[] {4, -1, Integer.MIN_VALUE, Integer.MAX_VALUE, -99, -101}) {
            refuses("PowerGrad label " + label, IllegalArgumentException.class, "labels[1]",
                    () -> PowerGrad.compute(cpu, z, rows, classes, new int[] {0, label, 1}, o, new float[12]));
            refuses("PowerGrad label " + label + " without ignore index", IllegalArgumentException.class, "labels[2]",
                    () -> PowerGrad.compute(cpu, z, rows, classes, new int[] {0, 1, label}, o.withoutIgnoreIndex(), new float[12]));
        }
        refuses("PowerGrad label -100 without ignore index", IllegalArgumentException.class, "labels[0]",
                () -> PowerGrad.compute(cpu, z, rows, classes, new int[] {-100, 1, 2}, o.withoutIgnoreIndex(), new float[12]));
        float[] nonFinite = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
        for (float v : nonFinite) {
            for (int at : new int[] {0, 5, 11}) {
                float[] t = oneHot(rows, classes, y);
                t[at] = v;
                refuses("PowerGrad targets[" + at + "] = " + v, IllegalArgumentException.class, "targets[" + at + "]",
                        () -> PowerGrad.computeWithTargets(cpu, z, rows, classes, t, o, new float[12]));
                refusesInChild("PowerGrad host targets[" + at + "] = " + v, IllegalArgumentException.class, "targets[" + at + "]", () -> {
                    try (HostBuffer h = HostBuffer.of(t)) {
                        PowerGrad.computeWithTargets(cpu, Memory.of(z), rows, classes, h.memory(), o, Memory.of(new float[12]));
                    }
                });
                refusesInChild("PowerGrad stream call, targets[" + at + "] = " + v, IllegalArgumentException.class, "targets[" + at + "]", () -> {
                    try (PowerGrad p = new PowerGrad(cpu)) {
                        p.computeWithTargets(Memory.of(z), rows, classes, Memory.of(t), o, Memory.of(new float[12]),
                                Memory.of(new float[1]), 0);
                    }
                });
                correct("PowerGrad logits[" + at + "] = " + v + ": NONFINITE_INPUT naming logits", true, () -> {
                    float[] bad = z.clone();
                    bad[at] = v;
                    try {
                        PowerGrad.compute(cpu, bad, rows, classes, y, o, new float[12]);
                        throw new AssertionError("accepted non-finite logits");
                    } catch (GradshapeException e) {
                        check(e.status() == Status.NONFINITE_INPUT && e.getMessage().contains("logits"), e.getMessage());
                    }
                });
            }
        }
        refuses("PowerGrad gradOut partly overlapping logits", IllegalArgumentException.class, "gradOut", () -> {
            float[] shared = new float[16];
            PowerGrad.compute(cpu, Memory.of(shared, 0, 12), rows, classes, Memory.of(y), o, Memory.of(shared, 2, 12));
        });
        refuses("PowerGrad gradOut overlapping targets", IllegalArgumentException.class, "gradOut", () -> {
            float[] shared = new float[24];
            PowerGrad.computeWithTargets(cpu, Memory.of(z), rows, classes, Memory.of(shared, 0, 12), o, Memory.of(shared, 8, 12));
        });
        refuses("PowerGrad read-only mapped gradOut", IllegalArgumentException.class, "gradOut",
                () -> PowerGrad.compute(cpu, Memory.of(z), rows, classes, Memory.of(y), o, Memory.of(readOnlyMapping(new float[12]))));
        refuses("PowerGrad read-only logits in place", IllegalArgumentException.class, "gradOut", () -> {
            Memory ro = Memory.of(readOnlyMapping(z));
            PowerGrad.compute(cpu, ro, rows, classes, Memory.of(y), o, ro);
        });
        refuses("PowerGrad read-only direct gradOut (targets)", IllegalArgumentException.class, "gradOut",
                () -> PowerGrad.computeWithTargets(cpu, Memory.of(z), rows, classes, Memory.of(oneHot(rows, classes, y)), o,
                        Memory.of(readOnlyDirect(new float[12]))));
        refuses("PowerGrad read-only lossOut", IllegalArgumentException.class, "lossOut", () -> {
            try (PowerGrad p = new PowerGrad(cpu)) {
                p.compute(Memory.of(z), rows, classes, Memory.of(y), o, Memory.of(new float[12]), Memory.of(readOnlyDirect(new float[1])), 0);
            }
        });
        refuses("PowerGrad lossOut of 3 for MEAN", IllegalArgumentException.class, "lossOut", () -> {
            try (PowerGrad p = new PowerGrad(cpu)) {
                p.compute(Memory.of(z), rows, classes, Memory.of(y), o, Memory.of(new float[12]), Memory.of(new float[3]), 0);
            }
        });
        refuses("PowerGrad device logits on the CPU", IllegalArgumentException.class, "logits",
                () -> PowerGrad.compute(cpu, Memory.device(4096, DType.FLOAT32, 12, 0), rows, classes, Memory.of(y), o,
                        Memory.of(new float[12])));
        refuses("PowerGrad closed host logits", IllegalStateException.class, "closed",
                () -> PowerGrad.compute(cpu, closedHostBufferMemory(12), rows, classes, Memory.of(y), o, Memory.of(new float[12])));
        for (String m : new String[] {"compute", "computeWithTargets", "lastResult"}) {
            refuses("PowerGrad." + m + " after close", IllegalStateException.class, "closed", () -> {
                PowerGrad p = new PowerGrad(cpu);
                p.compute(Memory.of(z), rows, classes, Memory.of(y), o, Memory.of(new float[12]));
                p.close();
                p.close();
                switch (m) {
                    case "compute" -> p.compute(Memory.of(z), rows, classes, Memory.of(y), o, Memory.of(new float[12]));
                    case "computeWithTargets" -> p.computeWithTargets(Memory.of(z), rows, classes, Memory.of(oneHot(rows, classes, y)), o,
                            Memory.of(new float[12]));
                    default -> p.lastResult();
                }
            });
        }
        correct("PowerGrad.lastResult after a refused call does not return the previous result", false, () -> {
            try (PowerGrad p = new PowerGrad(cpu)) {
                p.compute(Memory.of(z), rows, classes, Memory.of(y), o, Memory.of(new float[12]), null, 0);
                p.lastResult();
                expectRefusal(IllegalArgumentException.class, "labels[0]",
                        () -> p.compute(Memory.of(z), rows, classes, Memory.of(new int[] {9, 0, 0}), o, Memory.of(new float[12]), null, 0));
                expectRefusal(IllegalStateException.class, "refused", p::lastResult);
                expectRefusal(IllegalArgumentException.class, "rows",
                        () -> p.compute(Memory.of(z), -1, classes, Memory.of(y), o, Memory.of(new float[12])));
                expectRefusal(IllegalStateException.class, "refused", p::lastResult);
            }
        });
        // Correct results on edge inputs against the float64 oracle.
        int[][] shapes = {{0, 1}, {0, 5}, {1, 1}, {1, 2}, {2, 1}, {5, 3}, {3, 17}};
        for (int[] s : shapes) {
            for (PowerGrad.Reduction red : PowerGrad.Reduction.values()) {
                for (double alpha : new double[] {0, 0.25, 1}) {
                    correct("PowerGrad " + s[0] + " x " + s[1] + " " + red + " alpha " + alpha + " vs oracle", false,
                            () -> powerGradOracle(s[0], s[1], red, alpha));
                }
            }
        }
        correct("PowerGrad every row ignored: loss 0, gradient 0", false, () -> {
            float[] g = new float[12];
            Arrays.fill(g, 7f);
            PowerGrad.Result r = PowerGrad.compute(cpu, z, rows, classes, new int[] {-100, -100, -100}, o, g);
            check(r.loss() == 0 && r.countedRows() == 0, r.toString());
            for (float v : g) {
                check(v == 0f, "gradient " + Arrays.toString(g));
            }
        });
        correct("PowerGrad read-only mapped logits and targets are fine (only read)", false, () -> {
            float[] t = oneHot(rows, classes, y);
            float[] expected = new float[12];
            float[] actual = new float[12];
            double a = PowerGrad.computeWithTargets(cpu, z, rows, classes, t, o, expected).loss();
            double b = PowerGrad.computeWithTargets(cpu, Memory.of(readOnlyMapping(z)), rows, classes, Memory.of(readOnlyMapping(t)), o,
                    Memory.of(actual)).loss();
            check(a == b && Arrays.equals(expected, actual), "same loss and gradient");
        });
    }

    private static float[] oneHot(int rows, int classes, int[] labels) {
        float[] t = new float[rows * classes];
        for (int r = 0; r < rows; r++) {
            t[r * classes + labels[r]] = 1f;
        }
        return t;
    }

    private void powerGradOracle(int rows, int classes, PowerGrad.Reduction reduction, double alpha) {
        float[] z = random(12 + rows * 7 + classes, rows * classes);
        for (int i = 0; i < z.length; i++) {
            z[i] *= 30; // large logits: softmax saturates, exp must not overflow
        }
        int[] y = new int[rows];
        for (int r = 0; r < rows; r++) {
            y[r] = r == 1 ? -100 : (r * 5) % classes;
        }
        PowerGrad.Options o = PowerGrad.Options.of(alpha).withSmoothing(0.1).withReduction(reduction);
        float[] g = new float[rows * classes];
        PowerGrad.Result r = PowerGrad.compute(cpu, z, rows, classes, y, o, g);
        PowerGradOracle.Out e = PowerGradOracle.compute(z, rows, classes, y, null, alpha, 0.1, reduction, -100);
        String where = rows + " x " + classes + " " + reduction + " alpha " + alpha;
        check(r.countedRows() == e.counted, where + ": counted " + r.countedRows() + ", expected " + e.counted);
        check(Math.abs(r.loss() - e.loss) <= 1e-5 + 1e-5 * Math.abs(e.loss), where + ": loss " + r.loss() + ", expected " + e.loss);
        for (int i = 0; i < g.length; i++) {
            check(Math.abs(g[i] - e.grad[i]) <= 1e-6 + 1e-5 * Math.abs(e.grad[i]),
                    where + ": grad[" + i + "] = " + g[i] + ", expected " + e.grad[i]);
        }
        if (reduction == PowerGrad.Reduction.NONE) {
            for (int i = 0; i < rows; i++) {
                check(Math.abs(r.rowLosses()[i] - e.rowLoss[i]) <= 1e-5 + 1e-5 * Math.abs(e.rowLoss[i]),
                        where + ": row loss " + i + " = " + r.rowLosses()[i] + ", expected " + e.rowLoss[i]);
            }
        }
    }
}
