package io.gradshape.dl4j;

import io.gradshape.Backends;
import io.gradshape.Memory;
import io.gradshape.PowerGrad;
import java.util.Arrays;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.activations.impl.ActivationSoftmax;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.lossfunctions.ILossFunction;
import org.nd4j.common.primitives.Pair;
import org.nd4j.shade.jackson.annotation.JsonIgnore;

/**
 * PowerGrad (SPEC.md section 3) as a DL4J loss, in place of {@code LossMCXENT} on a softmax output
 * layer: the reported score is the ordinary cross entropy, the gradient with respect to the
 * pre-softmax logits is {@code softmax(alpha z) - target}. {@code alpha = 1} is MCXENT's gradient.
 *
 * <pre>{@code
 * .layer(new OutputLayer.Builder(new PowerGradLoss(0.25)).nOut(10).activation(Activation.SOFTMAX).build())
 * }</pre>
 *
 * <p>DL4J asks a loss for its score and for its gradient in two calls on the same logits; the
 * transform runs once and the second call reuses it (the logits and labels of the call are compared
 * with the ones computed, exactly). As DL4J's losses do, the gradient is per example (summed over the
 * minibatch: DL4J's updater divides by the minibatch size) and {@code computeScore(..., average)}
 * averages only when asked. Labels are DL4J's rows of class probabilities (one-hot). Per-example
 * masks are refused. The logits (minibatch x classes, a few KB) are copied to the heap for the
 * comparison; parameters and gradients elsewhere are zero-copy.
 *
 * <p>Serialises with DL4J's JSON configuration (property {@code alpha}).
 */
public final class PowerGradLoss implements ILossFunction {
    private static final long serialVersionUID = 1L;

    private double alpha = 1;

    // the last computation, reused by the second of DL4J's two calls
    @JsonIgnore private transient float[] lastLogits;
    @JsonIgnore private transient float[] lastLabels;
    @JsonIgnore private transient float[] lastGradient;
    @JsonIgnore private transient float[] lastRowLosses;
    @JsonIgnore private transient long nanos;
    @JsonIgnore private transient long computations;
    @JsonIgnore private transient long reuses;

    /** For DL4J's JSON deserialisation: alpha = 1 (cross entropy). */
    public PowerGradLoss() {}

    /** PowerGrad with this alpha (finite, > 0; the paper uses 0.25 for ResNet-18). */
    public PowerGradLoss(double alpha) {
        setAlpha(alpha);
    }

    public double getAlpha() {
        return alpha;
    }

    public void setAlpha(double alpha) {
        // PowerGrad.Options validates too; checked here so a bad JSON value fails when read, naming the loss
        PowerGrad.Options.of(alpha);
        this.alpha = alpha;
    }

    /** Wall time spent computing the transform, in nanoseconds (both DL4J calls counted). */
    @JsonIgnore
    public long nanosSpent() {
        return nanos;
    }

    /** How many times the transform ran, and how many calls reused the previous run. */
    @JsonIgnore
    public long computations() {
        return computations;
    }

    @JsonIgnore
    public long reuses() {
        return reuses;
    }

    @Override
    public double computeScore(INDArray labels, INDArray preOutput, IActivation activationFn, INDArray mask, boolean average) {
        float[] rows = compute(labels, preOutput, activationFn, mask);
        double sum = 0;
        for (float r : rows) {
            sum += r;
        }
        return average ? sum / rows.length : sum;
    }

    @Override
    public INDArray computeScoreArray(INDArray labels, INDArray preOutput, IActivation activationFn, INDArray mask) {
        float[] rows = compute(labels, preOutput, activationFn, mask);
        return Nd4j.create(rows.clone(), new long[] {rows.length, 1}, 'c');
    }

    @Override
    public INDArray computeGradient(INDArray labels, INDArray preOutput, IActivation activationFn, INDArray mask) {
        compute(labels, preOutput, activationFn, mask);
        return Nd4j.create(lastGradient.clone(), preOutput.shape(), 'c');
    }

    @Override
    public Pair<Double, INDArray> computeGradientAndScore(INDArray labels, INDArray preOutput, IActivation activationFn,
            INDArray mask, boolean average) {
        double score = computeScore(labels, preOutput, activationFn, mask, average);
        return new Pair<>(score, computeGradient(labels, preOutput, activationFn, mask));
    }

    @Override
    public String name() {
        return "PowerGradLoss(alpha=" + alpha + ")";
    }

    @Override
    public String toString() {
        return name();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PowerGradLoss other && other.alpha == alpha;
    }

    @Override
    public int hashCode() {
        return Double.hashCode(alpha);
    }

    /** Runs the transform, or reuses the last run for the same logits and labels; returns the row losses. */
    private synchronized float[] compute(INDArray labels, INDArray preOutput, IActivation activationFn, INDArray mask) {
        long t0 = System.nanoTime();
        if (!(activationFn instanceof ActivationSoftmax)) {
            throw new IllegalArgumentException("activation: PowerGradLoss needs the output layer's activation to be SOFTMAX"
                    + " (it takes the logits and applies softmax itself), got " + activationFn);
        }
        if (mask != null) {
            throw new IllegalArgumentException("mask: PowerGradLoss does not support per-example or per-output masks");
        }
        if (preOutput == null || labels == null) {
            throw new IllegalArgumentException((preOutput == null ? "preOutput" : "labels") + ": null");
        }
        if (preOutput.rank() != 2 || !Arrays.equals(preOutput.shape(), labels.shape())) {
            throw new IllegalArgumentException("labels, preOutput: expected two [minibatch, classes] arrays of one shape, got "
                    + Arrays.toString(labels.shape()) + " and " + Arrays.toString(preOutput.shape()));
        }
        long rows = preOutput.size(0);
        long classes = preOutput.size(1);
        if (rows < 1 || classes < 1 || rows * classes > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("preOutput: " + rows + " x " + classes + " is not a usable logits shape");
        }
        float[] z = toFloats(preOutput);
        float[] y = toFloats(labels);
        if (lastLogits != null && Arrays.equals(z, lastLogits) && Arrays.equals(y, lastLabels)) {
            reuses++;
            nanos += System.nanoTime() - t0;
            return lastRowLosses;
        }
        float[] grad = new float[z.length];
        PowerGrad.Result r = PowerGrad.computeWithTargets(Backends.cpu(), Memory.of(z), (int) rows, (int) classes, Memory.of(y),
                PowerGrad.Options.of(alpha).withReduction(PowerGrad.Reduction.NONE), Memory.of(grad));
        lastLogits = z;
        lastLabels = y;
        lastGradient = grad;
        lastRowLosses = r.rowLosses();
        computations++;
        nanos += System.nanoTime() - t0;
        return lastRowLosses;
    }

    private static float[] toFloats(INDArray a) {
        INDArray c = a.dataType() == DataType.FLOAT ? a : a.castTo(DataType.FLOAT);
        return c.dup('c').data().asFloat();
    }
}
