package io.gradshape.pytorch;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.DType;
import io.gradshape.Memory;
import io.gradshape.PowerGrad;
import java.util.Objects;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.pytorch.BoolOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorArrayRefOptional;
import org.bytedeco.pytorch.global.torch;

/**
 * PowerGrad as the loss of a libtorch model: from the logits and the labels as libtorch holds them
 * (int64 class indices), one call gives the ordinary cross-entropy loss and the PGT gradient
 * {@code softmax(alpha z) - q} (divided by the batch, as the mean loss), and feeds that gradient into
 * libtorch's backward ({@code logits.backward(gradient)}). With {@code alpha = 1} it is exactly the
 * gradient of {@code cross_entropy(logits, labels)}.
 *
 * <p>The logits are read in place (a float32 contiguous CPU tensor, as a linear layer returns) and the
 * gradient is written into a tensor this object keeps and reuses, so a step allocates nothing but the
 * labels' int32 copy ({@link PowerGrad} takes int32 labels; the batch is small). Labels outside
 * {@code [0, classes)} other than the ignore index are an {@link IllegalArgumentException}, non-finite
 * logits a {@link io.gradshape.GradshapeException}, both before backward runs.
 *
 * <p>Not thread-safe. {@link #nanosSpent()} is the time spent inside gradshape's loss (not libtorch's
 * backward), for a trainer's overhead report.
 */
public final class PowerGradLoss implements AutoCloseable {
    private final PowerGrad pgt;
    private final PowerGrad.Options options;
    private Tensor gradient;
    private int[] labels32 = new int[0];
    private double lastLoss = Double.NaN;
    private long nanos;
    private boolean closed;

    /** PowerGrad with {@code options} (alpha, smoothing, reduction, ignore index), on the CPU backend. */
    public PowerGradLoss(PowerGrad.Options options) {
        this(options, Backends.cpu());
    }

    public PowerGradLoss(PowerGrad.Options options, Backend backend) {
        this.options = Objects.requireNonNull(options, "options");
        if (options.reduction() == PowerGrad.Reduction.NONE) {
            throw new IllegalArgumentException("options: reduction NONE gives no scalar loss to return; use MEAN or SUM");
        }
        this.pgt = new PowerGrad(Objects.requireNonNull(backend, "backend"));
    }

    /** PowerGrad with this alpha and PyTorch's defaults otherwise (mean, no smoothing, ignore index -100). */
    public static PowerGradLoss of(double alpha) {
        return new PowerGradLoss(PowerGrad.Options.of(alpha));
    }

    /**
     * Computes the loss and the PGT gradient of {@code logits} ({@code [batch, classes]}, requiring a
     * gradient) for {@code labels} ({@code [batch]} int64), runs {@code logits.backward(gradient)} and
     * returns the loss.
     */
    public double backward(Tensor logits, Tensor labels) {
        Tensor g = gradient(logits, labels);
        logits.backward(g, new BoolOptional(), false, new TensorArrayRefOptional());
        return lastLoss;
    }

    /**
     * As {@link #backward} without running backward: returns the gradient (a tensor this object owns
     * and overwrites at the next call; do not close it) and keeps the loss for {@link #lastLoss()}.
     */
    public Tensor gradient(Tensor logits, Tensor labels) {
        checkOpen();
        Objects.requireNonNull(logits, "logits");
        Objects.requireNonNull(labels, "labels");
        if (logits.dim() != 2 || logits.scalar_type().value != torch.ScalarType.Float.value || !logits.is_cpu() || !logits.is_contiguous()) {
            throw new IllegalArgumentException("logits: expected a contiguous float32 CPU tensor [batch, classes], got "
                    + logits.scalar_type().intern() + " with " + logits.dim() + " dimensions");
        }
        long rows = logits.size(0);
        long classes = logits.size(1);
        if (rows < 1 || classes < 1 || rows > Integer.MAX_VALUE || classes > Integer.MAX_VALUE
                || rows * classes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("logits: shape [" + rows + ", " + classes + "] out of range");
        }
        if (labels.dim() != 1 || labels.size(0) != rows || labels.scalar_type().value != torch.ScalarType.Long.value || !labels.is_cpu()
                || !labels.is_contiguous()) {
            throw new IllegalArgumentException("labels: expected a contiguous int64 CPU tensor [" + rows + "], got "
                    + labels.scalar_type().intern() + " with " + labels.dim() + " dimensions" + (labels.dim() == 1 ? " of " + labels.size(0) : ""));
        }
        long t0 = System.nanoTime();
        int n = (int) rows;
        if (labels32.length != n) {
            labels32 = new int[n];
        }
        try (Pointer base = labels.data_ptr(); LongPointer values = new LongPointer(base)) {
            for (int i = 0; i < n; i++) {
                long v = values.get(i);
                if (v != (int) v) {
                    throw new IllegalArgumentException("labels[" + i + "]: " + v + " is outside the int32 range of class indices");
                }
                labels32[i] = (int) v;
            }
        }
        if (gradient == null || gradient.size(0) != rows || gradient.size(1) != classes) {
            if (gradient != null) {
                gradient.close();
            }
            gradient = Scopes.keep(torch.empty(rows, classes));
        }
        long address;
        try (Pointer p = logits.data_ptr()) {
            address = p.address();
        }
        Memory in = Memory.host(address, DType.FLOAT32, rows * classes, logits);
        Memory out = Memory.host(GradshapeSgd.address(gradient), DType.FLOAT32, rows * classes, gradient);
        PowerGrad.Result r = pgt.compute(in, n, (int) classes, Memory.of(labels32), options, out);
        lastLoss = r.loss();
        nanos += System.nanoTime() - t0;
        return gradient;
    }

    /** The loss of the last call. */
    public double lastLoss() {
        return lastLoss;
    }

    public PowerGrad.Options options() {
        return options;
    }

    /** Wall time spent computing losses and gradients, in nanoseconds. */
    public long nanosSpent() {
        return nanos;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("PowerGradLoss is closed");
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        pgt.close();
        if (gradient != null) {
            gradient.close();
        }
    }
}
