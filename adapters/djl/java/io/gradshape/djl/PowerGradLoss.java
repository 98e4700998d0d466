package io.gradshape.djl;

import ai.djl.engine.EngineException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;
import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.Memory;
import io.gradshape.PowerGrad;
import java.util.Objects;

/**
 * PowerGrad as the loss of a DJL (PyTorch engine) training step: from the logits, the ordinary
 * cross-entropy loss and the PowerGrad gradient {@code softmax(alpha z) - onehot(y)} (mean over the
 * batch) in one call, the gradient fed straight into libtorch's backward.
 *
 * <p>How the gradient enters backward: {@code JniUtils.backward(logits, gradient)}, libtorch's
 * {@code tensor.backward(gradient)}, exactly what DJL's {@code GradientCollector.backward(loss)} does with
 * a tensor of ones. The alternative, a surrogate loss {@code sum(logits * g)} with {@code g} detached, has
 * the same gradient (its backward multiplies {@code g} by 1) but costs two more ops forward and backward
 * and would report the surrogate's value instead of the cross entropy. PowerGrad writes the gradient
 * straight into the tensor handed to libtorch (no copy).
 *
 * <p>Labels as DJL holds them: class indices in an int64, int32 or float array of shape {@code [B]} or
 * {@code [B, 1]} (float labels must be whole numbers).
 *
 * <pre>{@code
 * try (GradientCollector gc = trainer.newGradientCollector()) {
 *     NDArray logits = trainer.forward(batch.getData()).singletonOrThrow();
 *     double loss = pgt.backward(logits, batch.getLabels().singletonOrThrow());
 * }
 * }</pre>
 */
public final class PowerGradLoss implements AutoCloseable {
    private final PowerGrad.Options options;
    private final PowerGrad powerGrad;
    private final NDManager manager;
    private int[] labels = new int[0];
    private long nanos;
    private boolean closed;

    private PowerGradLoss(Backend backend, PowerGrad.Options options) {
        this.options = Objects.requireNonNull(options, "options");
        if (options.reduction() != PowerGrad.Reduction.MEAN) {
            throw new IllegalArgumentException("options: reduction must be MEAN (one loss value per batch), got "
                    + options.reduction());
        }
        this.powerGrad = new PowerGrad(Objects.requireNonNull(backend, "backend"));
        this.manager = NDManager.newBaseManager("PyTorch");
    }

    /** PowerGrad with {@code alpha} (0.25 for ResNet-18 in the paper; 1 is the ordinary cross entropy), on the CPU. */
    public static PowerGradLoss of(double alpha) {
        return of(PowerGrad.Options.of(alpha));
    }

    /** Options with mean reduction (label smoothing and the ignore index as given), on the CPU. */
    public static PowerGradLoss of(PowerGrad.Options options) {
        return new PowerGradLoss(Backends.cpu(), options);
    }

    public PowerGrad.Options options() {
        return options;
    }

    /**
     * Computes the loss and runs libtorch's backward from {@code logits} with the PowerGrad gradient.
     * Call it inside a {@code GradientCollector}, once per forward.
     *
     * @param logits float32 {@code [B, C]}, the output of a training forward (it requires a gradient)
     * @param labels class indices, {@code [B]} or {@code [B, 1]}
     * @return the mean cross-entropy loss over the rows counted
     */
    public double backward(NDArray logits, NDArray labels) {
        checkOpen();
        long t0 = System.nanoTime();
        PtNDArray z = DjlArrays.requireFloatCpu(logits, "logits");
        Shape s = z.getShape();
        if (s.dimension() != 2 || s.get(0) < 1 || s.get(1) < 1) {
            throw new IllegalArgumentException("logits: expected [batch, classes], got shape " + s);
        }
        int rows = Math.toIntExact(s.get(0));
        int classes = Math.toIntExact(s.get(1));
        int[] y = readLabels(labels, rows);
        // A fresh tensor per call: libtorch may keep the incoming gradient itself as a leaf's .grad
        // (AccumulateGrad steals a tensor nobody else holds), so it must not be written again later.
        try (PtNDArray gradient = (PtNDArray) manager.create(s, DataType.FLOAT32)) {
            PowerGrad.Result r = powerGrad.compute(DjlArrays.read(z, "logits"), rows, classes, Memory.of(y, 0, rows),
                    options, DjlArrays.bind(gradient, "PowerGrad gradient").memory());
            nanos += System.nanoTime() - t0;
            JniUtils.backward(z, gradient, false, false);
            return r.loss();
        } catch (EngineException e) {
            // DJL's requiresGrad() is false for every non-leaf tensor, so libtorch is the one to ask
            throw new IllegalStateException("backward from the logits failed (" + e.getMessage().lines().findFirst().orElse("")
                    + "): call it inside a GradientCollector, on the output of a training forward", e);
        }
    }

    private int[] readLabels(NDArray labels, int rows) {
        Objects.requireNonNull(labels, "labels");
        Shape s = labels.getShape();
        boolean column = s.dimension() == 2 && s.get(1) == 1;
        if (!(s.dimension() == 1 || column) || s.get(0) != rows) {
            throw new IllegalArgumentException("labels: expected [" + rows + "] or [" + rows + ", 1] class indices, got shape " + s);
        }
        if (this.labels.length < rows) {
            this.labels = new int[rows];
        }
        int[] out = this.labels;
        DataType t = labels.getDataType();
        switch (t) {
            case INT32 -> System.arraycopy(labels.toIntArray(), 0, out, 0, rows);
            case INT64 -> {
                long[] v = labels.toLongArray();
                for (int i = 0; i < rows; i++) {
                    if (v[i] != (int) v[i]) {
                        throw new IllegalArgumentException("labels[" + i + "]: " + v[i] + " is not a class index");
                    }
                    out[i] = (int) v[i];
                }
            }
            case FLOAT32, FLOAT64 -> {
                double[] v = t == DataType.FLOAT64 ? labels.toDoubleArray() : toDouble(labels.toFloatArray());
                for (int i = 0; i < rows; i++) {
                    if (v[i] != Math.rint(v[i]) || Math.abs(v[i]) > Integer.MAX_VALUE) {
                        throw new IllegalArgumentException("labels[" + i + "]: " + v[i] + " is not a class index");
                    }
                    out[i] = (int) v[i];
                }
            }
            default -> throw new IllegalArgumentException("labels: expected int64, int32 or float class indices, got " + t);
        }
        return out;
    }

    private static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }

    /** Wall time spent computing loss and gradient (libtorch's backward itself not included), in nanoseconds. */
    public long nanosSpent() {
        return nanos;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            powerGrad.close();
            manager.close();
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("PowerGradLoss is closed");
        }
    }
}
