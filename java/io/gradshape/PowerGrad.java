package io.gradshape;

import io.gradshape.natives.CudaNative;
import io.gradshape.natives.Natives;
import io.gradshape.natives.PowerGradNative;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.OptionalInt;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;

/**
 * The PowerGrad transform (PGT) fused with softmax cross entropy: one pass over the logits yields the
 * ordinary cross-entropy loss and the PGT gradient {@code softmax(alpha z) - q} in place of
 * {@code softmax(z) - q} (SPEC.md section 3; see docs/power_grad.md). With {@code alpha = 1} it is the
 * ordinary fused softmax-cross-entropy backward.
 *
 * <p>An instance is a small plan for one backend: it owns the float64 loss report and, on CUDA, the
 * device workspace in which the blocks reduce the loss without a second launch, so repeated calls
 * allocate nothing. Calls on one instance are ordered (the instance is synchronized, and its CUDA
 * calls must go to one stream at a time: use one instance per stream). Close it when done. The static
 * {@code compute} methods make a temporary instance per call, for convenience.
 *
 * <pre>{@code
 * try (PowerGrad pgt = new PowerGrad(Backends.auto())) {
 *     PowerGrad.Options options = PowerGrad.Options.of(0.25);       // ResNet-18 in the paper
 *     PowerGrad.Result r = pgt.compute(logits, batch, classes, labels, options, logits); // in place
 *     double loss = r.loss();
 * }
 * }</pre>
 *
 * <p>Errors: arguments are checked before any native call ({@link IllegalArgumentException} or
 * {@link NullPointerException} naming the argument), host labels included. What only the kernel can
 * see is reported when the result reaches the host: a row whose logits hold NaN or infinity
 * ({@link GradshapeException} with {@link Status#NONFINITE_INPUT}) and, for labels in device memory, a
 * label outside {@code [0, classes)} that is not the ignore index ({@link Status#INVALID_ARGUMENT}).
 * Either way the call has finished, the offending rows of the gradient hold NaN (and so does the loss),
 * and every other row is correct.
 */
public final class PowerGrad implements AutoCloseable {

    /** How the row losses are combined; the gradient is scaled to match. */
    public enum Reduction {
        /** Mean over the rows counted (rows not ignored); the gradient is divided by their number. */
        MEAN,
        /** Sum over the rows; the gradient is not scaled. */
        SUM,
        /** One loss per row; the gradient is not scaled (as if every row loss had upstream gradient 1). */
        NONE
    }

    /**
     * The transform's settings; immutable, validated when built. {@code Options.of(alpha)} gives label
     * smoothing 0, reduction {@link Reduction#MEAN} and ignore index -100 (PyTorch's defaults).
     */
    public static final class Options {
        /** PyTorch's default ignore index. */
        public static final int DEFAULT_IGNORE_INDEX = -100;

        private final double alpha;
        private final double smoothing;
        private final Reduction reduction;
        private final boolean ignoring;
        private final int ignoreIndex;

        private Options(double alpha, double smoothing, Reduction reduction, boolean ignoring, int ignoreIndex) {
            this.alpha = alpha;
            this.smoothing = smoothing;
            this.reduction = reduction;
            this.ignoring = ignoring;
            this.ignoreIndex = ignoreIndex;
        }

        /**
         * PGT with exponent {@code alpha} (finite, {@code >= 0}; the paper uses 0.25 for ResNet-18 and 0.3
         * for ResNet-50; 1 is plain cross entropy, 0 a uniform {@code p'}).
         */
        public static Options of(double alpha) {
            return new Options(checkAlpha(alpha), 0.0, Reduction.MEAN, true, DEFAULT_IGNORE_INDEX);
        }

        /** The ordinary softmax cross entropy: {@code alpha = 1}. */
        public static Options crossEntropy() {
            return of(1.0);
        }

        public Options withAlpha(double alpha) {
            return new Options(checkAlpha(alpha), smoothing, reduction, ignoring, ignoreIndex);
        }

        /** Label smoothing {@code epsilon} in [0, 1]: {@code q = (1 - epsilon) target + epsilon / classes}. */
        public Options withSmoothing(double epsilon) {
            if (!(epsilon >= 0.0 && epsilon <= 1.0)) {
                throw new IllegalArgumentException("smoothing: expected a value in [0, 1], got " + epsilon);
            }
            return new Options(alpha, epsilon, reduction, ignoring, ignoreIndex);
        }

        public Options withReduction(Reduction reduction) {
            return new Options(alpha, smoothing, Objects.requireNonNull(reduction, "reduction"), ignoring, ignoreIndex);
        }

        /** Rows whose class-index label equals {@code index} contribute no loss and a zero gradient row. */
        public Options withIgnoreIndex(int index) {
            return new Options(alpha, smoothing, reduction, true, index);
        }

        /** Every label must be a class. */
        public Options withoutIgnoreIndex() {
            return new Options(alpha, smoothing, reduction, false, 0);
        }

        public double alpha() {
            return alpha;
        }

        public double smoothing() {
            return smoothing;
        }

        public Reduction reduction() {
            return reduction;
        }

        /** The ignore index, or empty when every label must be a class. Unused with probability targets. */
        public OptionalInt ignoreIndex() {
            return ignoring ? OptionalInt.of(ignoreIndex) : OptionalInt.empty();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Options other && Double.compare(alpha, other.alpha) == 0
                    && Double.compare(smoothing, other.smoothing) == 0 && reduction == other.reduction
                    && ignoring == other.ignoring && ignoreIndex == other.ignoreIndex;
        }

        @Override
        public int hashCode() {
            return Objects.hash(alpha, smoothing, reduction, ignoring, ignoreIndex);
        }

        @Override
        public String toString() {
            return "PowerGrad.Options[alpha=" + alpha + ", smoothing=" + smoothing + ", reduction=" + reduction
                    + ", ignoreIndex=" + (ignoring ? Integer.toString(ignoreIndex) : "none") + "]";
        }

        private static double checkAlpha(double alpha) {
            if (!(alpha >= 0.0 && alpha <= Float.MAX_VALUE)) {
                throw new IllegalArgumentException("alpha: expected a finite value >= 0, got " + alpha);
            }
            return alpha;
        }
    }

    /** What a call returns to the host. */
    public static final class Result {
        private final double loss;
        private final long countedRows;
        private final float[] rowLosses;

        Result(double loss, long countedRows, float[] rowLosses) {
            this.loss = loss;
            this.countedRows = countedRows;
            this.rowLosses = rowLosses;
        }

        /**
         * The loss, accumulated in float64: MEAN: the mean over the rows counted (0 when every row is
         * ignored); SUM: the sum; NONE: the sum of the row losses.
         */
        public double loss() {
            return loss;
        }

        /** Rows counted: not ignored (with probability targets, every row). MEAN divides by this. */
        public long countedRows() {
            return countedRows;
        }

        /** Reduction NONE through a host-returning {@code compute}: the loss of every row (0 for ignored rows); else null. */
        public float[] rowLosses() {
            return rowLosses;
        }

        @Override
        public String toString() {
            return "PowerGrad.Result[loss=" + loss + ", countedRows=" + countedRows
                    + (rowLosses != null ? ", rowLosses=" + rowLosses.length : "") + "]";
        }
    }

    private final Backend backend;
    private final HostBuffer report;     // gs_pg_report, read on the host
    private final DeviceBuffer device;   // CUDA: the kernel's report, then its workspace
    private final long workspaceBytes;
    private DeviceBuffer rowLossScratch; // CUDA: row losses of host-returning NONE calls
    private long lastStream;
    private String lastCall;             // what the last call was, for the error messages; null: none, or refused
    private boolean anyCall;             // a call was attempted (lastCall null then means it was refused or failed)
    private boolean lastLabelsOnDevice;
    private int lastClasses;
    private Result emptyResult;          // the last call had no rows: nothing ran

    /** A plan for {@code backend}; allocates its few workspace bytes now. */
    public PowerGrad(Backend backend) {
        this.backend = Objects.requireNonNull(backend, "backend");
        HostBuffer r = HostBuffer.allocate(DType.INT64, PowerGradNative.REPORT_BYTES / 8);
        try {
            if (backend instanceof CudaBackend cuda) {
                try (CudaBackend.Current on = cuda.activate()) {
                    long[] bytes = new long[1];
                    Natives.check(PowerGradNative.gs_pg_workspace_cuda(bytes));
                    this.workspaceBytes = bytes[0];
                    long total = PowerGradNative.REPORT_BYTES + workspaceBytes;
                    this.device = DeviceBuffer.allocate(cuda, DType.INT64, (total + 7) / 8);
                    try {
                        // The workspace must start zeroed; every call leaves it so.
                        Natives.check(CudaNative.gs_cuda_memset(device.address(), 0, device.bytes(), Streams.DEFAULT));
                        Natives.check(CudaNative.gs_cuda_stream_synchronize(Streams.DEFAULT));
                    } catch (RuntimeException e) {
                        device.close();
                        throw e;
                    }
                }
            } else {
                this.workspaceBytes = 0;
                this.device = null;
            }
        } catch (RuntimeException e) {
            r.close();
            throw e;
        }
        this.report = r;
    }

    public Backend backend() {
        return backend;
    }

    // ---- host-returning calls --------------------------------------------------------------------

    /**
     * Loss and PGT gradient for class-index targets, the loss returned to the host (this waits for the
     * device).
     *
     * @param logits  float32 [rows][classes], row-major
     * @param labels  int32 [rows]: a class in [0, classes), or the ignore index
     * @param gradOut float32 [rows][classes]; may be {@code logits} itself (in place), must not
     *                otherwise overlap it
     * @throws GradshapeException for non-finite logits or out-of-range device labels (see the class comment)
     */
    public synchronized Result compute(Memory logits, int rows, int classes, Memory labels, Options options,
            Memory gradOut) {
        return computeToHost(logits, rows, classes, Objects.requireNonNull(labels, "labels"), null, options, gradOut);
    }

    /**
     * As {@link #compute(Memory, int, int, Memory, Options, Memory)} with probability targets:
     * float32 [rows][classes] rows (one-hot rows, as Deeplearning4j passes them, or soft rows summing to
     * 1). Every row counts; the ignore index does not apply.
     */
    public synchronized Result computeWithTargets(Memory logits, int rows, int classes, Memory targets, Options options,
            Memory gradOut) {
        return computeToHost(logits, rows, classes, null, Objects.requireNonNull(targets, "targets"), options, gradOut);
    }

    // ---- stream calls ----------------------------------------------------------------------------

    /**
     * Queues the call on {@code stream} and returns without waiting for the device (the CPU backend
     * runs it at once). The loss goes to {@code lossOut}: float32 [1] for MEAN and SUM, [rows] for NONE
     * (may be null: {@link #lastResult()} still has it). Inputs not already on the backend's device are
     * staged synchronously; pass device memory on the hot path. Errors the kernel detects surface in
     * {@link #lastResult()}.
     */
    public synchronized void compute(Memory logits, int rows, int classes, Memory labels, Options options,
            Memory gradOut, Memory lossOut, long stream) {
        run(logits, rows, classes, Objects.requireNonNull(labels, "labels"), null, options, gradOut, lossOut, stream);
    }

    /** The stream variant of {@link #computeWithTargets(Memory, int, int, Memory, Options, Memory)}. */
    public synchronized void computeWithTargets(Memory logits, int rows, int classes, Memory targets, Options options,
            Memory gradOut, Memory lossOut, long stream) {
        run(logits, rows, classes, null, Objects.requireNonNull(targets, "targets"), options, gradOut, lossOut, stream);
    }

    /**
     * The result of the last call on this instance: waits for its stream, then reads the report.
     *
     * @throws IllegalStateException when no call was made yet
     * @throws GradshapeException when that call met non-finite logits or out-of-range device labels
     */
    public synchronized Result lastResult() {
        checkOpen();
        if (lastCall == null) {
            throw new IllegalStateException(anyCall
                    ? "lastResult: the last call on this PowerGrad was refused or failed, so it left no result"
                    : "lastResult: no call was made on this PowerGrad yet");
        }
        if (emptyResult != null) {
            return emptyResult;
        }
        if (device != null) {
            try (CudaBackend.Current on = ((CudaBackend) backend).activate()) {
                Natives.check(CudaNative.gs_cuda_memcpy(report.address(), device.address(), PowerGradNative.REPORT_BYTES, lastStream));
                Natives.check(CudaNative.gs_cuda_stream_synchronize(lastStream));
            }
        }
        ByteBuffer r = report.asByteBuffer();
        long bad = r.getLong(PowerGradNative.REPORT_BAD_LABELS);
        if (bad > 0) {
            throw new GradshapeException(Status.INVALID_ARGUMENT, lastCall + ": labels: " + bad + " label(s) outside [0, "
                    + lastClasses + ") and not the ignore index (first at row "
                    + r.getLong(PowerGradNative.REPORT_FIRST_BAD_LABEL_ROW) + "); their gradient rows and losses are NaN"
                    + (lastLabelsOnDevice ? "" : " (host labels should have been rejected: please report this)"));
        }
        long nonfinite = r.getLong(PowerGradNative.REPORT_NONFINITE_ROWS);
        if (nonfinite > 0) {
            throw new GradshapeException(Status.NONFINITE_INPUT, lastCall + ": logits: " + nonfinite
                    + " row(s) hold NaN or infinite values (first: row " + r.getLong(PowerGradNative.REPORT_FIRST_NONFINITE_ROW)
                    + "); their gradient rows and losses are NaN");
        }
        return new Result(r.getDouble(PowerGradNative.REPORT_LOSS), r.getLong(PowerGradNative.REPORT_COUNTED_ROWS), null);
    }

    // ---- static convenience ------------------------------------------------------------------------

    /** One call with a temporary plan: {@link #compute(Memory, int, int, Memory, Options, Memory)}. */
    public static Result compute(Backend backend, Memory logits, int rows, int classes, Memory labels, Options options,
            Memory gradOut) {
        try (PowerGrad pgt = new PowerGrad(backend)) {
            return pgt.compute(logits, rows, classes, labels, options, gradOut);
        }
    }

    /** One call with a temporary plan: {@link #computeWithTargets(Memory, int, int, Memory, Options, Memory)}. */
    public static Result computeWithTargets(Backend backend, Memory logits, int rows, int classes, Memory targets,
            Options options, Memory gradOut) {
        try (PowerGrad pgt = new PowerGrad(backend)) {
            return pgt.computeWithTargets(logits, rows, classes, targets, options, gradOut);
        }
    }

    /** Arrays: {@code gradOut} may be {@code logits} itself. */
    public static Result compute(Backend backend, float[] logits, int rows, int classes, int[] labels, Options options,
            float[] gradOut) {
        Memory z = Memory.of(Objects.requireNonNull(logits, "logits"));
        Memory g = gradOut == logits ? z : Memory.of(Objects.requireNonNull(gradOut, "gradOut"));
        return compute(backend, z, rows, classes, Memory.of(Objects.requireNonNull(labels, "labels")), options, g);
    }

    /** Arrays: {@code gradOut} may be {@code logits} itself. */
    public static Result computeWithTargets(Backend backend, float[] logits, int rows, int classes, float[] targets,
            Options options, float[] gradOut) {
        Memory z = Memory.of(Objects.requireNonNull(logits, "logits"));
        Memory g = gradOut == logits ? z : Memory.of(Objects.requireNonNull(gradOut, "gradOut"));
        return computeWithTargets(backend, z, rows, classes, Memory.of(Objects.requireNonNull(targets, "targets")),
                options, g);
    }

    // ---- lifecycle ----------------------------------------------------------------------------------

    public synchronized boolean isClosed() {
        return report.isClosed();
    }

    /** Frees the workspace; calling it again does nothing. */
    @Override
    public synchronized void close() {
        report.close();
        if (device != null) {
            device.close();
        }
        if (rowLossScratch != null) {
            rowLossScratch.close();
        }
    }

    // ---- implementation -----------------------------------------------------------------------------

    private Result computeToHost(Memory logits, int rows, int classes, Memory labels, Memory targets, Options options,
            Memory gradOut) {
        checkOpen();
        forgetLastCall();
        Objects.requireNonNull(options, "options");
        checkLogits(logits, rows, classes); // before the row-loss array is allocated
        boolean none = options.reduction() == Reduction.NONE;
        float[] rowLosses = none ? new float[Math.max(rows, 0)] : null;
        Memory lossOut = null;
        if (none && rows > 0) {
            if (device != null) {
                if (rowLossScratch == null || rowLossScratch.length() < rows) {
                    if (rowLossScratch != null) {
                        rowLossScratch.close();
                        rowLossScratch = null;
                    }
                    rowLossScratch = DeviceBuffer.allocate((CudaBackend) backend, DType.FLOAT32, rows);
                }
                lossOut = rowLossScratch.memory().slice(0, rows);
            } else {
                lossOut = Memory.of(rowLosses);
            }
        }
        run(logits, rows, classes, labels, targets, options, gradOut, lossOut, Streams.DEFAULT);
        Result r = lastResult();
        if (none && rows > 0 && device != null) {
            ((CudaBackend) backend).copy(Memory.of(rowLosses), lossOut);
        }
        return new Result(r.loss(), r.countedRows(), rowLosses);
    }

    private void run(Memory logits, int rows, int classes, Memory labels, Memory targets, Options options, Memory gradOut,
            Memory lossOut, long stream) {
        checkOpen();
        forgetLastCall();
        Objects.requireNonNull(options, "options");
        long elements = checkLogits(logits, rows, classes);
        Objects.requireNonNull(gradOut, "gradOut");
        gradOut.require("gradOut", DType.FLOAT32, elements);
        if (labels != null) {
            labels.require("labels", DType.INT32, rows);
            if (labels.location() != Memory.Location.DEVICE) {
                checkLabels(labels, rows, classes, options);
            }
        } else {
            targets.require("targets", DType.FLOAT32, elements);
            if (targets.location() != Memory.Location.DEVICE) {
                checkTargets(targets);
            }
        }
        gradOut.requireWritable("gradOut");
        boolean none = options.reduction() == Reduction.NONE;
        if (lossOut != null) {
            lossOut.require("lossOut", DType.FLOAT32, none ? rows : 1).requireWritable("lossOut");
        }
        boolean inPlace = Memory.sameMemory(gradOut, logits);
        if (!inPlace && Memory.overlaps(gradOut, logits)) {
            throw new IllegalArgumentException("gradOut: overlaps logits without being the same memory; pass the logits "
                    + "Memory itself to compute in place, or memory disjoint from it");
        }
        Memory inputs = labels != null ? labels : targets;
        String inputName = labels != null ? "labels" : "targets";
        if (Memory.overlaps(gradOut, inputs)) {
            throw new IllegalArgumentException("gradOut: overlaps " + inputName);
        }
        if (lossOut != null && (Memory.overlaps(lossOut, gradOut) || Memory.overlaps(lossOut, logits) || Memory.overlaps(lossOut, inputs))) {
            throw new IllegalArgumentException("lossOut: overlaps logits, gradOut or " + inputName);
        }

        String call = "PowerGrad." + (labels != null ? "compute" : "computeWithTargets") + " (" + rows + " x " + classes
                + ", " + backend.kind() + ")";
        lastClasses = classes;
        lastLabelsOnDevice = labels != null && labels.location() == Memory.Location.DEVICE;
        lastStream = stream;
        if (rows == 0) {
            // Nothing to launch (and zero-length device buffers have no address): the loss is 0.
            if (lossOut != null && !none) {
                writeZero(lossOut, stream);
            }
            emptyResult = new Result(0.0, 0, null);
            lastCall = call;
            return;
        }

        Options o = options;
        int useIgnore = labels != null && o.ignoreIndex().isPresent() ? 1 : 0;
        int ignoreIndex = useIgnore == 1 ? o.ignoreIndex().getAsInt() : 0;
        int reduction = switch (o.reduction()) {
            case MEAN -> PowerGradNative.REDUCTION_MEAN;
            case SUM -> PowerGradNative.REDUCTION_SUM;
            case NONE -> PowerGradNative.REDUCTION_NONE;
        };
        float alpha = (float) o.alpha();
        float smoothing = (float) o.smoothing();
        try (Staged z = inPlace ? Staged.inOut(backend, logits, "logits", stream) : Staged.in(backend, logits, "logits", stream);
                Staged y = labels != null ? Staged.in(backend, labels, "labels", stream) : null;
                Staged t = targets != null ? Staged.in(backend, targets, "targets", stream) : null;
                Staged g = inPlace ? null : Staged.out(backend, gradOut, "gradOut", stream);
                Staged l = lossOut != null ? Staged.out(backend, lossOut, "lossOut", stream) : null) {
            long grad = inPlace ? z.address() : g.address();
            long labelsAddress = y != null ? y.address() : 0L;
            long targetsAddress = t != null ? t.address() : 0L;
            long lossAddress = l != null ? l.address() : 0L;
            if (backend instanceof CudaBackend cuda) {
                try (CudaBackend.Current on = cuda.activate()) {
                    long base = device.address();
                    Natives.check(PowerGradNative.gs_pg_cuda(z.address(), rows, classes, labelsAddress, targetsAddress, useIgnore,
                            ignoreIndex, alpha, smoothing, reduction, grad, lossAddress, base, base + PowerGradNative.REPORT_BYTES,
                            workspaceBytes, stream));
                }
            } else {
                Natives.check(PowerGradNative.gs_pg_cpu(z.address(), rows, classes, labelsAddress, targetsAddress, useIgnore,
                        ignoreIndex, alpha, smoothing, reduction, grad, lossAddress, report.address()));
            }
        }
        lastCall = call;
    }

    /** Called before any check: a refused call must not leave the previous call's result readable. */
    private void forgetLastCall() {
        anyCall = true;
        lastCall = null;
        emptyResult = null;
    }

    /** The sizes and the logits; returns rows * classes (cannot overflow a long: two ints). */
    private static long checkLogits(Memory logits, int rows, int classes) {
        Objects.requireNonNull(logits, "logits");
        if (rows < 0) {
            throw new IllegalArgumentException("rows: expected >= 0, got " + rows);
        }
        if (classes < 1) {
            throw new IllegalArgumentException("classes: expected >= 1, got " + classes);
        }
        long elements = (long) rows * classes;
        logits.require("logits", DType.FLOAT32, elements);
        return elements;
    }

    /** Host labels: every one a class in [0, classes) or the ignore index. */
    private static void checkLabels(Memory labels, int rows, int classes, Options options) {
        int[] values;
        int offset;
        if (labels.location() == Memory.Location.HEAP) {
            values = (int[]) labels.array();
            offset = labels.arrayOffset();
        } else {
            values = new int[rows];
            offset = 0;
            new IntPointer(HostBuffer.rawPointer(labels.address(), labels.bytes())).get(values, 0, rows);
        }
        boolean ignoring = options.ignoreIndex().isPresent();
        int ignore = ignoring ? options.ignoreIndex().getAsInt() : 0;
        for (int i = 0; i < rows; i++) {
            int y = values[offset + i];
            if ((y < 0 || y >= classes) && !(ignoring && y == ignore)) {
                throw new IllegalArgumentException("labels[" + i + "]: " + y + " is outside [0, " + classes + ")"
                        + (ignoring ? " and is not the ignore index " + ignore : " (no ignore index is set)"));
            }
        }
    }

    /**
     * Host probability targets: every value finite. A NaN or infinite target would make the loss and its
     * gradient row NaN without any error, so it is refused here, before the native call. Read in chunks
     * through a buffer view: no copy of the targets.
     */
    private static void checkTargets(Memory targets) {
        long n = targets.length();
        if (targets.location() == Memory.Location.HEAP) {
            float[] values = (float[]) targets.array();
            int offset = targets.arrayOffset();
            for (int i = 0; i < n; i++) {
                if (!Float.isFinite(values[offset + i])) {
                    throw nonFiniteTarget(i, values[offset + i]);
                }
            }
            return;
        }
        long address = targets.address();
        final long chunk = 1L << 24;
        for (long start = 0; start < n; start += chunk) {
            int len = (int) Math.min(chunk, n - start);
            java.nio.FloatBuffer view = new FloatPointer(HostBuffer.rawPointer(address + 4 * start, 4L * len)).asBuffer();
            for (int i = 0; i < len; i++) {
                float v = view.get(i);
                if (!Float.isFinite(v)) {
                    throw nonFiniteTarget(start + i, v);
                }
            }
        }
    }

    private static IllegalArgumentException nonFiniteTarget(long index, float value) {
        return new IllegalArgumentException("targets[" + index + "]: expected a finite probability, got " + value
                + " (the first non-finite target)");
    }

    private void writeZero(Memory lossOut, long stream) {
        switch (lossOut.location()) {
            case HEAP -> ((float[]) lossOut.array())[lossOut.arrayOffset()] = 0.0f;
            case HOST -> new FloatPointer(HostBuffer.rawPointer(lossOut.address(), 4)).put(0.0f);
            case DEVICE -> {
                if (!(backend instanceof CudaBackend cuda)) {
                    throw new IllegalArgumentException("lossOut: CUDA device memory cannot be used by the CPU backend");
                }
                try (CudaBackend.Current on = cuda.activate()) {
                    Natives.check(CudaNative.gs_cuda_memset(lossOut.address(), 0, 4, stream));
                }
            }
        }
    }

    private void checkOpen() {
        if (report.isClosed()) {
            throw new IllegalStateException("PowerGrad is closed");
        }
    }
}
