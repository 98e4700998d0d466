package io.gradshape;

import io.gradshape.natives.CudaNative;
import io.gradshape.natives.Natives;
import io.gradshape.natives.ScaledSgdNative;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

/**
 * SGD with the spatial gradient scale of SGS applied inside the step (SPEC.md section 2): exactly
 * {@code torch.optim.SGD} on the gradient multiplied, for each conv weight, by its kernel-position scale
 * G. All parameter tensors of a model are updated by one call (one kernel launch on CUDA), reading each
 * gradient once: no separate scaling pass.
 *
 * <p>A trainer builds one optimizer for the whole run and keeps it:
 *
 * <pre>{@code
 * try (ScaledSgd sgd = ScaledSgd.builder(backend).lr(0.1f).momentum(0.9f).weightDecay(1e-4f)
 *         .addParameter(ScaledSgd.Parameter.of(convW, convG).withKernel(3, 3))
 *         .addParameter(ScaledSgd.Parameter.of(bnW, bnG).withWeightDecay(false))
 *         .build()) {
 *     for (...) {
 *         // backward pass fills the gradients
 *         sgd.setLearningRate(schedule(step));
 *         sgd.step();
 *         if (sgsRefreshed) sgd.setScale(0, g);
 *     }
 * }
 * }</pre>
 *
 * <p>Parameters are numbered in registration order ({@link Builder#addParameter} and each segment of
 * {@link Builder#addFlat}), and {@link #setScale}, {@link #momentumBuffer} take that index. Every scale
 * starts as all ones. Weights, gradients and momentum buffers are float32 and must be native memory the
 * backend uses in place (host memory for the CPU backend, device memory of its device for CUDA): the
 * optimizer keeps their addresses across steps, so they must stay allocated until it is closed. Not
 * thread-safe: one trainer thread steps it.
 */
public final class ScaledSgd implements AutoCloseable {

    /** Memory layout of a conv weight: where the kernel position of an element is. */
    public enum Layout {
        /** {@code [Cout][Cin][kh][kw]} (PyTorch, DL4J): position of element i is {@code i mod (kh*kw)}. */
        OIHW,
        /** {@code [kh][kw][Cin][Cout]} (TensorFlow): position of element i is {@code i / (Cin*Cout)}. */
        HWIO
    }

    /**
     * The kernel shape of a conv weight, which the scale G (kh x kw) is broadcast over. {@code Cin} is
     * the input channels per group.
     */
    public static final class Kernel {
        private final int height;
        private final int width;
        private final Layout layout;
        private final long channels; // Cin * Cout, or -1 when not given (OIHW only)

        private Kernel(int height, int width, Layout layout, long channels) {
            this.height = height;
            this.width = width;
            this.layout = layout;
            this.channels = channels;
        }

        /** A {@code kh x kw} kernel in OIHW layout; the weight length must be a multiple of kh*kw. */
        public static Kernel of(int kh, int kw) {
            checkKernelSize(kh, kw);
            return new Kernel(kh, kw, Layout.OIHW, -1);
        }

        /** A {@code kh x kw} kernel with {@code cin} input channels (per group) and {@code cout} outputs. */
        public static Kernel of(int kh, int kw, Layout layout, long cin, long cout) {
            checkKernelSize(kh, kw);
            Objects.requireNonNull(layout, "layout");
            if (cin < 1) {
                throw new IllegalArgumentException("cin: expected >= 1, got " + cin);
            }
            if (cout < 1) {
                throw new IllegalArgumentException("cout: expected >= 1, got " + cout);
            }
            long channels;
            try {
                channels = Math.multiplyExact(cin, cout);
                Math.multiplyExact(channels, (long) kh * kw);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("cin * cout * kh * kw: overflows (cin = " + cin + ", cout = " + cout + ")");
            }
            if (layout == Layout.HWIO && channels > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("cin * cout: " + channels + " exceeds " + Integer.MAX_VALUE + " (HWIO)");
            }
            return new Kernel(kh, kw, layout, channels);
        }

        /** From the 4-D weight shape: OIHW {@code [Cout, Cin, kh, kw]}, HWIO {@code [kh, kw, Cin, Cout]}. */
        public static Kernel ofWeightShape(Layout layout, long... shape) {
            Objects.requireNonNull(layout, "layout");
            Objects.requireNonNull(shape, "shape");
            if (shape.length != 4) {
                throw new IllegalArgumentException("shape: expected 4 dimensions (" + (layout == Layout.OIHW
                        ? "Cout, Cin, kh, kw" : "kh, kw, Cin, Cout") + "), got " + Arrays.toString(shape));
            }
            boolean oihw = layout == Layout.OIHW;
            long kh = oihw ? shape[2] : shape[0];
            long kw = oihw ? shape[3] : shape[1];
            if (kh < 1 || kw < 1 || kh > Integer.MAX_VALUE || kw > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("shape: kernel " + kh + " x " + kw + " in " + Arrays.toString(shape));
            }
            return of((int) kh, (int) kw, layout, oihw ? shape[1] : shape[2], oihw ? shape[0] : shape[3]);
        }

        public int height() {
            return height;
        }

        public int width() {
            return width;
        }

        public Layout layout() {
            return layout;
        }

        /** kh * kw: the number of scale values. */
        public int area() {
            return height * width;
        }

        /** The weight length the shape implies, or -1 when only kh x kw was given. */
        public long expectedLength() {
            return channels < 0 ? -1 : channels * area();
        }

        @Override
        public String toString() {
            return height + " x " + width + " " + layout + (channels < 0 ? "" : ", Cin * Cout = " + channels);
        }

        private static void checkKernelSize(int kh, int kw) {
            if (kh < 1) {
                throw new IllegalArgumentException("kh: expected >= 1, got " + kh);
            }
            if (kw < 1) {
                throw new IllegalArgumentException("kw: expected >= 1, got " + kw);
            }
            if ((long) kh * kw > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("kh * kw: " + ((long) kh * kw) + " exceeds " + Integer.MAX_VALUE);
            }
        }
    }

    /**
     * One parameter tensor: weights, gradient, optionally a momentum buffer the caller owns (else the
     * optimizer allocates one), optionally a conv kernel shape (then it takes a scale G), and whether
     * weight decay applies (default true; trainers usually turn it off for biases and norms).
     * Immutable: each {@code with...} returns a new description.
     */
    public static final class Parameter {
        private final Memory weights;
        private final Memory grads;
        private final Memory momentumBuffer;
        private final Kernel kernel;
        private final boolean weightDecay;

        private Parameter(Memory weights, Memory grads, Memory momentumBuffer, Kernel kernel, boolean weightDecay) {
            this.weights = weights;
            this.grads = grads;
            this.momentumBuffer = momentumBuffer;
            this.kernel = kernel;
            this.weightDecay = weightDecay;
        }

        /** A tensor without a kernel (no scale), with weight decay. */
        public static Parameter of(Memory weights, Memory grads) {
            return new Parameter(Objects.requireNonNull(weights, "weights"), Objects.requireNonNull(grads, "grads"),
                    null, null, true);
        }

        /** Uses {@code buffer} (same length as the weights) as this tensor's momentum buffer. */
        public Parameter withMomentumBuffer(Memory buffer) {
            return new Parameter(weights, grads, Objects.requireNonNull(buffer, "buffer"), kernel, weightDecay);
        }

        /** A conv weight with this kernel: its gradient is scaled by G. */
        public Parameter withKernel(Kernel kernel) {
            return new Parameter(weights, grads, momentumBuffer, Objects.requireNonNull(kernel, "kernel"), weightDecay);
        }

        /** A conv weight with a {@code kh x kw} kernel in OIHW layout. */
        public Parameter withKernel(int kh, int kw) {
            return withKernel(Kernel.of(kh, kw));
        }

        public Parameter withWeightDecay(boolean apply) {
            return new Parameter(weights, grads, momentumBuffer, kernel, apply);
        }

        public Memory weights() {
            return weights;
        }

        public Memory grads() {
            return grads;
        }

        /** The caller's momentum buffer, or null. */
        public Memory momentumBuffer() {
            return momentumBuffer;
        }

        /** The kernel, or null for a tensor without a scale. */
        public Kernel kernel() {
            return kernel;
        }

        public boolean weightDecay() {
            return weightDecay;
        }
    }

    /**
     * One tensor inside flat parameter buffers (as Deeplearning4j keeps a network's parameters):
     * elements {@code [offset, offset + length)} of the flat weights, gradients and momentum.
     */
    public static final class Segment {
        private final long offset;
        private final long length;
        private final Kernel kernel;
        private final boolean weightDecay;

        private Segment(long offset, long length, Kernel kernel, boolean weightDecay) {
            this.offset = offset;
            this.length = length;
            this.kernel = kernel;
            this.weightDecay = weightDecay;
        }

        /** A segment without a kernel (no scale), with weight decay. */
        public static Segment of(long offset, long length) {
            if (offset < 0) {
                throw new IllegalArgumentException("offset: expected >= 0, got " + offset);
            }
            if (length < 0) {
                throw new IllegalArgumentException("length: expected >= 0, got " + length);
            }
            return new Segment(offset, length, null, true);
        }

        public Segment withKernel(Kernel kernel) {
            return new Segment(offset, length, Objects.requireNonNull(kernel, "kernel"), weightDecay);
        }

        /** A conv weight with a {@code kh x kw} kernel in OIHW layout. */
        public Segment withKernel(int kh, int kw) {
            return withKernel(Kernel.of(kh, kw));
        }

        public Segment withWeightDecay(boolean apply) {
            return new Segment(offset, length, kernel, apply);
        }

        public long offset() {
            return offset;
        }

        public long length() {
            return length;
        }

        public Kernel kernel() {
            return kernel;
        }

        public boolean weightDecay() {
            return weightDecay;
        }
    }

    /** Hyperparameters and parameter list; {@link #build()} validates everything and allocates the state. */
    public static final class Builder {
        private final Backend backend;
        private float lr = 1e-3f; // torch.optim.SGD's default
        private float momentum;
        private float dampening;
        private float weightDecay;
        private boolean nesterov;
        private boolean maximize;
        private long initialStepCount;
        private final List<Entry> entries = new ArrayList<>();
        private final List<Flat> flats = new ArrayList<>();

        private Builder(Backend backend) {
            this.backend = Objects.requireNonNull(backend, "backend");
        }

        /** Learning rate (finite, >= 0; default 1e-3 as PyTorch). Can change every step: {@link ScaledSgd#setLearningRate}. */
        public Builder lr(float lr) {
            this.lr = checkNonNegative("lr", lr);
            return this;
        }

        /** Momentum factor (finite, >= 0; default 0: no momentum buffers). */
        public Builder momentum(float momentum) {
            this.momentum = checkNonNegative("momentum", momentum);
            return this;
        }

        /** Dampening of the momentum (finite; default 0). */
        public Builder dampening(float dampening) {
            if (!Float.isFinite(dampening)) {
                throw new IllegalArgumentException("dampening: expected a finite value, got " + dampening);
            }
            this.dampening = dampening;
            return this;
        }

        /** L2 penalty added to the scaled gradient of every tensor whose decay flag is set (finite, >= 0). */
        public Builder weightDecay(float weightDecay) {
            this.weightDecay = checkNonNegative("weightDecay", weightDecay);
            return this;
        }

        /** Nesterov momentum; requires momentum > 0 and dampening == 0. */
        public Builder nesterov(boolean nesterov) {
            this.nesterov = nesterov;
            return this;
        }

        /** Maximize the objective: {@code w += lr * d}. */
        public Builder maximize(boolean maximize) {
            this.maximize = maximize;
            return this;
        }

        /**
         * The step count to start from (default 0). Resuming from a checkpoint: pass the saved
         * {@link ScaledSgd#stepCount()} and the saved momentum buffers (as the parameters' buffers, or copied
         * into {@link ScaledSgd#momentumBuffer} before the first step); a count above 0 means the first step
         * continues the buffers instead of starting them.
         */
        public Builder initialStepCount(long steps) {
            if (steps < 0) {
                throw new IllegalArgumentException("initialStepCount: expected >= 0, got " + steps);
            }
            this.initialStepCount = steps;
            return this;
        }

        /** Registers one tensor; it gets the next parameter index. */
        public Builder addParameter(Parameter parameter) {
            Objects.requireNonNull(parameter, "parameter");
            entries.add(new Entry("parameters[" + entries.size() + "]", parameter.weights, parameter.grads,
                    parameter.momentumBuffer, parameter.kernel, parameter.weightDecay, -1, null));
            return this;
        }

        /** As {@link #addFlat(Memory, Memory, Memory, List)}, the optimizer owning the momentum. */
        public Builder addFlat(Memory weights, Memory grads, List<Segment> segments) {
            return addFlat(weights, grads, null, segments);
        }

        /**
         * Registers the segments of flat buffers, each as one parameter (the next indices, in list order).
         * {@code momentum} (may be null: owned by the optimizer) has the length of {@code weights}, as
         * {@code grads} does. Elements outside every segment are left alone.
         */
        public Builder addFlat(Memory weights, Memory grads, Memory momentum, List<Segment> segments) {
            int f = flats.size();
            String name = "flat[" + f + "]";
            Objects.requireNonNull(weights, name + ".weights");
            Objects.requireNonNull(grads, name + ".grads");
            Objects.requireNonNull(segments, name + ".segments");
            Flat flat = new Flat(name, weights, grads, momentum);
            flats.add(flat);
            for (int s = 0; s < segments.size(); s++) {
                Segment seg = Objects.requireNonNull(segments.get(s), name + ".segments[" + s + "]");
                String segName = "parameters[" + entries.size() + "] (" + name + ".segments[" + s + "])";
                entries.add(new Entry(segName, null, null, null, seg.kernel, seg.weightDecay, seg.offset, flat).withLength(seg.length));
            }
            return this;
        }

        /** Validates the hyperparameters and every tensor, then allocates the optimizer's state. */
        public ScaledSgd build() {
            if (nesterov && (momentum <= 0 || dampening != 0)) {
                throw new IllegalArgumentException("nesterov: Nesterov momentum requires a momentum > 0 and zero dampening (momentum = "
                        + momentum + ", dampening = " + dampening + ")");
            }
            if (entries.isEmpty()) {
                throw new IllegalArgumentException("parameters: none registered (the optimizer got an empty parameter list)");
            }
            for (Flat flat : flats) {
                flat.validate(backend, momentum);
            }
            List<Entry> resolved = new ArrayList<>(entries.size());
            for (Entry e : entries) {
                resolved.add(e.resolve());
            }
            for (Entry e : resolved) {
                e.validate(backend, momentum);
            }
            checkOverlaps(resolved);
            return new ScaledSgd(this, resolved);
        }
    }

    /** Starts an optimizer on {@code backend}. */
    public static Builder builder(Backend backend) {
        return new Builder(backend);
    }

    // ---- state --------------------------------------------------------------------------------------

    private final Backend backend;
    private final float momentum;
    private final float dampening;
    private final float weightDecay;
    private final boolean nesterov;
    private final boolean maximize;
    private final Entry[] entries;
    private final int[] scaleOffsets;      // first scale of each tensor in the scale table
    private final Memory[] momentumViews;  // null entries when momentum == 0
    private final long elements;
    private final List<OwnedBuffer> owned = new ArrayList<>();
    private final HostBuffer scalesHost;   // the scale table (CPU) or its host mirror (CUDA)
    private final DeviceBuffer scalesDevice;
    private final OwnedBuffer table;
    private final long blocks;
    private float lr;
    private long stepCount;
    private boolean scalesDirty;
    private boolean closed;

    private ScaledSgd(Builder b, List<Entry> list) {
        this.backend = b.backend;
        this.lr = b.lr;
        this.momentum = b.momentum;
        this.dampening = b.dampening;
        this.weightDecay = b.weightDecay;
        this.nesterov = b.nesterov;
        this.maximize = b.maximize;
        this.stepCount = b.initialStepCount;
        this.entries = list.toArray(new Entry[0]);
        int n = entries.length;
        this.scaleOffsets = new int[n];
        this.momentumViews = new Memory[n];
        long total = 0;
        long scaleCount = 0;
        for (int i = 0; i < n; i++) {
            total += entries[i].length;
            // Tensors without a kernel never read the scale table; their offset is unused.
            scaleOffsets[i] = (int) Math.min(scaleCount, Integer.MAX_VALUE);
            if (entries[i].kernel != null) {
                scaleCount += entries[i].kernel.area();
            }
        }
        if (scaleCount > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("parameters: " + scaleCount + " scale values in all, more than " + Integer.MAX_VALUE);
        }
        this.elements = total;
        CudaBackend cuda = backend instanceof CudaBackend c ? c : null;
        boolean ok = false;
        // The device is current for the whole construction; the caller's is back afterwards.
        CudaBackend.Current on = cuda != null ? cuda.activate() : null;
        try {
            allocateMomentum(cuda);

            scalesHost = keep(HostBuffer.allocate(DType.FLOAT32, Math.max(1, scaleCount)));
            float[] ones = new float[(int) Math.max(1, scaleCount)];
            Arrays.fill(ones, 1f);
            HostCopy.arrayToNative(Memory.of(ones), scalesHost.address());
            scalesDevice = cuda == null ? null : keep(DeviceBuffer.allocate(cuda, DType.FLOAT32, Math.max(1, scaleCount)));
            scalesDirty = cuda != null;

            long[] lengths = new long[n];
            long[] w = new long[n];
            long[] g = new long[n];
            long[] m = new long[n];
            int[] area = new int[n];
            int[] layout = new int[n];
            long[] channels = new long[n];
            int[] decay = new int[n];
            for (int i = 0; i < n; i++) {
                Entry e = entries[i];
                lengths[i] = e.length;
                w[i] = e.weights.address();
                g[i] = e.grads.address();
                m[i] = momentumViews[i] == null ? 0 : momentumViews[i].address();
                Kernel k = e.kernel;
                area[i] = k == null ? 0 : k.area();
                layout[i] = k != null && k.layout == Layout.HWIO ? ScaledSgdNative.LAYOUT_HWIO : ScaledSgdNative.LAYOUT_OIHW;
                channels[i] = k != null && k.layout == Layout.HWIO ? k.channels : 1;
                decay[i] = e.weightDecay ? 1 : 0;
            }
            long[] tableBytes = new long[1];
            long[] blockCount = new long[1];
            Natives.check(ScaledSgdNative.gs_ssgd_table_bytes(n, lengths, cuda != null ? 1 : 0, tableBytes, blockCount));
            this.blocks = blockCount[0];
            long words = Math.max(1, (tableBytes[0] + 7) / 8);
            if (cuda == null) {
                table = keep(HostBuffer.allocate(DType.INT64, words));
                Natives.check(ScaledSgdNative.gs_ssgd_table_build(n, w, g, m, lengths, area, layout, channels, decay,
                        scaleOffsets, 0, table.address(), table.bytes()));
            } else {
                table = keep(DeviceBuffer.allocate(cuda, DType.INT64, words));
                try (HostBuffer staging = HostBuffer.allocate(DType.INT64, words)) {
                    Natives.check(ScaledSgdNative.gs_ssgd_table_build(n, w, g, m, lengths, area, layout, channels, decay,
                            scaleOffsets, 1, staging.address(), staging.bytes()));
                    cuda.copy(table.memory(), staging.memory());
                }
            }
            ok = true;
        } finally {
            try {
                if (!ok) {
                    close();
                }
            } finally {
                if (on != null) {
                    on.close();
                }
            }
        }
    }

    /**
     * One buffer for every tensor without a caller-provided one, zeroed; each tensor's slice starts at
     * the same address modulo 16 bytes as its weights so that the CUDA kernel can use vector accesses.
     */
    private void allocateMomentum(CudaBackend cuda) {
        if (momentum == 0) {
            return;
        }
        long[] offsets = new long[entries.length];
        long cursor = 0;
        boolean needed = false;
        for (int i = 0; i < entries.length; i++) {
            if (entries[i].momentum == null) {
                long phase = (entries[i].weights.address() & 15) / 4;
                cursor = (cursor + 3) / 4 * 4 + phase;
                offsets[i] = cursor;
                cursor += entries[i].length;
                needed = true;
            }
        }
        OwnedBuffer buffer = null;
        if (needed) {
            long length = Math.max(1, cursor);
            if (cuda != null) {
                buffer = keep(DeviceBuffer.allocate(cuda, DType.FLOAT32, length));
                Natives.check(CudaNative.gs_cuda_memset(buffer.address(), 0, buffer.bytes(), Streams.DEFAULT));
                Natives.check(CudaNative.gs_cuda_stream_synchronize(Streams.DEFAULT));
            } else {
                buffer = keep(HostBuffer.allocate(DType.FLOAT32, length));
                Pointer.memset(new BytePointer(HostBuffer.rawPointer(buffer.address(), buffer.bytes())), 0, buffer.bytes());
            }
        }
        for (int i = 0; i < entries.length; i++) {
            momentumViews[i] = entries[i].momentum != null ? entries[i].momentum
                    : buffer.memory().slice(offsets[i], entries[i].length);
        }
    }

    private <T extends OwnedBuffer> T keep(T buffer) {
        owned.add(buffer);
        return buffer;
    }

    // ---- stepping -----------------------------------------------------------------------------------

    /** One step on the default stream (CUDA) with no unscaling. */
    public void step() {
        step(1f, false, Streams.DEFAULT);
    }

    /** One step, queued on {@code stream} (CUDA; ignored by the CPU backend). */
    public void step(long stream) {
        step(1f, false, stream);
    }

    /** One mixed-precision step: see {@link #step(float, boolean, long)}. */
    public void step(float unscale, boolean skip) {
        step(unscale, skip, Streams.DEFAULT);
    }

    /**
     * One step: every gradient is multiplied by {@code unscale} first (mixed precision: 1 / loss scale).
     * With {@code skip} (the gradients overflowed) nothing changes: not the weights, not the momentum
     * buffers, not {@link #stepCount()}; the next step that runs is the first one if none ran before.
     * On CUDA the step is queued on {@code stream} and returns at once.
     */
    public void step(float unscale, boolean skip, long stream) {
        checkOpen();
        if (!Float.isFinite(unscale) || unscale <= 0) {
            throw new IllegalArgumentException("unscale: expected a finite value > 0, got " + unscale);
        }
        if (skip) {
            return;
        }
        for (int i = 0; i < entries.length; i++) {
            // Registered memory that its owner closed would be written after free: refuse instead.
            entries[i].weights.address();
            entries[i].grads.address();
            if (momentumViews[i] != null) {
                momentumViews[i].address();
            }
        }
        int first = stepCount == 0 ? 1 : 0;
        if (backend instanceof CudaBackend cuda) {
            try (CudaBackend.Current on = cuda.activate()) {
                if (scalesDirty) {
                    // The mirror is pageable host memory, and an asynchronous copy from it need not have
                    // read it when the call returns (F6): wait for it, so that a later setScale cannot
                    // change the floats under the copy. Only after a setScale, so rarely.
                    Natives.check(CudaNative.gs_cuda_memcpy(scalesDevice.address(), scalesHost.address(), scalesHost.bytes(), stream));
                    Natives.check(CudaNative.gs_cuda_stream_synchronize(stream));
                    scalesDirty = false;
                }
                Natives.check(ScaledSgdNative.gs_ssgd_step_cuda(table.address(), entries.length, blocks, scalesDevice.address(),
                        lr, momentum, dampening, weightDecay, nesterov ? 1 : 0, maximize ? 1 : 0, unscale, first, stream));
            }
        } else {
            Natives.check(ScaledSgdNative.gs_ssgd_step_cpu(table.address(), entries.length, scalesHost.address(),
                    lr, momentum, dampening, weightDecay, nesterov ? 1 : 0, maximize ? 1 : 0, unscale, first));
        }
        stepCount++;
    }

    /** Sets the learning rate of the following steps (finite, >= 0). */
    public void setLearningRate(float lr) {
        checkOpen();
        this.lr = checkNonNegative("lr", lr);
    }

    public float learningRate() {
        return lr;
    }

    /**
     * Replaces the scale G ({@code kh*kw} finite values, row-major {@code [kh][kw]}) of conv weight
     * {@code parameterIndex}; the next step uses it. Cheap: no table is rebuilt (on CUDA, the next step
     * copies the few floats to the device on its stream).
     */
    public void setScale(int parameterIndex, float[] g) {
        checkOpen();
        Objects.requireNonNull(g, "g");
        Kernel k = scaledKernel(parameterIndex);
        if (g.length != k.area()) {
            throw new IllegalArgumentException("g: expected " + k.area() + " elements (the " + k.height + " x " + k.width
                    + " kernel of " + entries[parameterIndex].name + "), got " + g.length);
        }
        for (int i = 0; i < g.length; i++) {
            if (!Float.isFinite(g[i])) {
                throw new IllegalArgumentException("g[" + i + "]: expected a finite value, got " + g[i]);
            }
        }
        HostCopy.arrayToNative(Memory.of(g), scalesHost.address() + 4L * scaleOffsets[parameterIndex]);
        scalesDirty = backend instanceof CudaBackend;
    }

    /**
     * As {@link #setScale(int, float[])}, from float32 memory: a Java array, host memory, or device
     * memory of this backend's device (read with a blocking copy of {@code kh*kw} floats).
     */
    public void setScale(int parameterIndex, Memory g) {
        checkOpen();
        Objects.requireNonNull(g, "g");
        Kernel k = scaledKernel(parameterIndex);
        g.require("g", DType.FLOAT32, k.area());
        float[] values = new float[k.area()];
        switch (g.location()) {
            case HEAP -> System.arraycopy((float[]) g.array(), g.arrayOffset(), values, 0, values.length);
            case HOST -> HostCopy.nativeToArray(g.address(), Memory.of(values));
            case DEVICE -> {
                if (!(backend instanceof CudaBackend cuda) || cuda.device() != g.device()) {
                    throw new IllegalArgumentException("g: device memory of cuda:" + g.device() + " given to " + backend.description());
                }
                cuda.copy(Memory.of(values), g);
            }
        }
        setScale(parameterIndex, values);
    }

    /** The current scale of conv weight {@code parameterIndex} (a copy; all ones until set). */
    public float[] scale(int parameterIndex) {
        checkOpen();
        Kernel k = scaledKernel(parameterIndex);
        float[] values = new float[k.area()];
        HostCopy.nativeToArray(scalesHost.address() + 4L * scaleOffsets[parameterIndex], Memory.of(values));
        return values;
    }

    /** Steps taken (skipped steps do not count), from {@link Builder#initialStepCount}. */
    public long stepCount() {
        return stepCount;
    }

    /**
     * The momentum buffer of parameter {@code parameterIndex}: the caller's, or a view of the optimizer's
     * own (valid until close). For checkpoints and tests; it can be written before a step.
     */
    public Memory momentumBuffer(int parameterIndex) {
        checkOpen();
        checkIndex(parameterIndex);
        if (momentum == 0) {
            throw new IllegalStateException("momentumBuffer: momentum is 0, so the optimizer keeps no momentum buffers");
        }
        return momentumViews[parameterIndex];
    }

    /** Number of registered parameter tensors (flat segments included). */
    public int parameterCount() {
        return entries.length;
    }

    /** Total number of parameters updated per step. */
    public long elementCount() {
        return elements;
    }

    public Backend backend() {
        return backend;
    }

    /** Frees the optimizer's own memory (momentum buffers it allocated, tables, scales). Idempotent. */
    @Override
    public void close() {
        closed = true;
        for (OwnedBuffer b : owned) {
            b.close();
        }
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("ScaledSgd is closed");
        }
    }

    private void checkIndex(int parameterIndex) {
        if (parameterIndex < 0 || parameterIndex >= entries.length) {
            throw new IllegalArgumentException("parameterIndex: expected 0.." + (entries.length - 1) + " (the parameters"
                    + " registered), got " + parameterIndex);
        }
    }

    private Kernel scaledKernel(int parameterIndex) {
        checkIndex(parameterIndex);
        Kernel k = entries[parameterIndex].kernel;
        if (k == null) {
            throw new IllegalArgumentException("parameterIndex: " + entries[parameterIndex].name
                    + " was registered without a kernel, so it takes no scale");
        }
        return k;
    }

    private static float checkNonNegative(String name, float value) {
        if (!Float.isFinite(value) || value < 0) {
            throw new IllegalArgumentException(name + ": expected a finite value >= 0, got " + value);
        }
        return value;
    }

    /** Checks that memory is float32 and usable in place by the backend across steps. */
    private static void checkLocation(Backend backend, Memory memory, String name) {
        if (memory.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException(name + ": expected FLOAT32 elements, got " + memory.dtype());
        }
        switch (memory.location()) {
            case HEAP -> throw new IllegalArgumentException(name + ": a Java array cannot be registered (the optimizer keeps native"
                    + " addresses across steps); use " + (backend instanceof CudaBackend ? "device memory (DeviceBuffer)"
                    : "native host memory (HostBuffer, a direct buffer)"));
            case HOST -> {
                if (backend instanceof CudaBackend) {
                    throw new IllegalArgumentException(name + ": host memory given to the CUDA backend; register device memory"
                            + " (the optimizer updates it in place)");
                }
            }
            case DEVICE -> {
                if (!(backend instanceof CudaBackend cuda)) {
                    throw new IllegalArgumentException(name + ": CUDA device memory cannot be used by the CPU backend");
                } else if (cuda.device() != memory.device()) {
                    throw new IllegalArgumentException(name + ": device memory of cuda:" + memory.device()
                            + " given to the backend of cuda:" + cuda.device());
                }
            }
        }
        memory.address(); // use-after-close of the owner
    }

    /** Weights and momentum buffers (written by the step) must not overlap each other. */
    private static void checkOverlaps(List<Entry> list) {
        record Range(long start, long end, String name) {}
        List<Range> ranges = new ArrayList<>();
        for (Entry e : list) {
            if (e.length == 0) {
                continue;
            }
            ranges.add(new Range(e.weights.address(), e.weights.address() + 4 * e.length, e.name + ".weights"));
            if (e.momentum != null) {
                ranges.add(new Range(e.momentum.address(), e.momentum.address() + 4 * e.length, e.name + ".momentumBuffer"));
            }
        }
        ranges.sort(Comparator.comparingLong(Range::start));
        for (int i = 1; i < ranges.size(); i++) {
            Range a = ranges.get(i - 1);
            Range b = ranges.get(i);
            if (b.start < a.end) {
                throw new IllegalArgumentException(b.name + ": overlaps " + a.name);
            }
        }
    }

    /** Flat buffers registered with {@link Builder#addFlat}. */
    private record Flat(String name, Memory weights, Memory grads, Memory momentum) {
        void validate(Backend backend, float momentumFactor) {
            checkLocation(backend, weights, name + ".weights");
            weights.requireWritable(name + ".weights");
            checkLocation(backend, grads, name + ".grads");
            if (grads.length() != weights.length()) {
                throw new IllegalArgumentException(name + ".grads: expected " + weights.length() + " elements (as " + name
                        + ".weights), got " + grads.length());
            }
            if (momentum != null) {
                if (momentumFactor == 0) {
                    throw new IllegalArgumentException(name + ".momentum: given, but momentum is 0 (no momentum buffer is kept)");
                }
                checkLocation(backend, momentum, name + ".momentum");
                momentum.requireWritable(name + ".momentum");
                if (momentum.length() != weights.length()) {
                    throw new IllegalArgumentException(name + ".momentum: expected " + weights.length() + " elements (as " + name
                            + ".weights), got " + momentum.length());
                }
            }
        }
    }

    /** One registered tensor; flat segments are resolved into slices of their flat buffers. */
    private static final class Entry {
        final String name;
        final Memory weights;
        final Memory grads;
        final Memory momentum;
        final Kernel kernel;
        final boolean weightDecay;
        final long flatOffset;
        final Flat flat;
        long length;

        Entry(String name, Memory weights, Memory grads, Memory momentum, Kernel kernel, boolean weightDecay,
                long flatOffset, Flat flat) {
            this.name = name;
            this.weights = weights;
            this.grads = grads;
            this.momentum = momentum;
            this.kernel = kernel;
            this.weightDecay = weightDecay;
            this.flatOffset = flatOffset;
            this.flat = flat;
            this.length = weights == null ? 0 : weights.length();
        }

        Entry withLength(long length) {
            this.length = length;
            return this;
        }

        /** Per-tensor entries as they are; flat segments as slices (bounds checked here). */
        Entry resolve() {
            if (flat == null) {
                return this;
            }
            long total = flat.weights.length();
            if (flatOffset > total - length) {
                throw new IllegalArgumentException(name + ": [" + flatOffset + ", " + (flatOffset + length) + ") lies outside the "
                        + total + " elements of " + flat.name + ".weights");
            }
            return new Entry(name, flat.weights.slice(flatOffset, length), flat.grads.slice(flatOffset, length),
                    flat.momentum == null ? null : flat.momentum.slice(flatOffset, length), kernel, weightDecay, -1, null);
        }

        void validate(Backend backend, float momentumFactor) {
            if (flatOffset < 0 && weights != null) {
                checkLocation(backend, weights, name + ".weights");
                weights.requireWritable(name + ".weights");
                checkLocation(backend, grads, name + ".grads");
                if (momentum != null) {
                    if (momentumFactor == 0) {
                        throw new IllegalArgumentException(name + ".momentumBuffer: given, but momentum is 0 (no momentum buffer is kept)");
                    }
                    checkLocation(backend, momentum, name + ".momentumBuffer");
                    momentum.requireWritable(name + ".momentumBuffer");
                    momentum.require(name + ".momentumBuffer", DType.FLOAT32, length);
                }
                grads.require(name + ".grads", DType.FLOAT32, length);
            }
            if (kernel != null) {
                long expected = kernel.expectedLength();
                if (expected >= 0 && expected != length) {
                    throw new IllegalArgumentException(name + ".weights: expected " + expected + " elements (kernel " + kernel
                            + "), got " + length);
                }
                if (length % kernel.area() != 0) {
                    throw new IllegalArgumentException(name + ".weights: " + length + " elements is not a multiple of the "
                            + kernel.height + " x " + kernel.width + " kernel (" + kernel.area() + ")");
                }
            }
        }
    }
}
