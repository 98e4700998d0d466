package io.gradshape.pytorch;

import io.gradshape.SgsRefresh;
import io.gradshape.SgsSchedule;
import java.util.List;
import java.util.Objects;
import java.util.function.Function;
import org.bytedeco.pytorch.Conv2dImpl;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Tensor;

/**
 * The three adapter pieces in one object, so that a libtorch training loop needs a few lines of glue:
 * a {@link GradshapeSgd} over the module, optionally an {@link SgsCapture} (SGS) and a
 * {@link PowerGradLoss} (PGT; alpha = 1 is plain cross-entropy). See docs/adapter-pytorch.md for the
 * complete loop.
 *
 * <pre>{@code
 * TorchWarmup.ensureCache();   // first line of main: the fresh-cache crash of the presets
 * try (GradshapeTraining gs = GradshapeTraining.builder(net).lr(0.05).momentum(0.9).weightDecay(5e-4)
 *         .sgs(SgsSchedule.defaults()).powerGrad(0.25).build()) {
 *     for (int epoch = 0; epoch < epochs; epoch++) {
 *         gs.beginEpoch(epoch, firstBatches, x -> net.forward(x, gs));
 *         for (...) { gs.zeroGrad(); double loss = gs.backward(net.forward(x, gs), y); gs.step(); }
 *     }
 * }
 * // in the forward: x = relu(conv1.forward(gs.input(conv1, x)));
 * }</pre>
 */
public final class GradshapeTraining implements AutoCloseable {
    private final GradshapeSgd sgd;
    private final SgsCapture sgs;
    private final PowerGradLoss loss;
    private boolean closed;

    private GradshapeTraining(GradshapeSgd sgd, SgsCapture sgs, PowerGradLoss loss) {
        this.sgd = sgd;
        this.sgs = sgs;
        this.loss = loss;
    }

    public static Builder builder(Module module) {
        return new Builder(module);
    }

    /** The optimizer's options (as {@link GradshapeSgd.Builder}), plus SGS and PGT. */
    public static final class Builder {
        private final Module module;
        private final GradshapeSgd.Builder sgd;
        private SgsSchedule schedule;
        private double alpha = 1;

        private Builder(Module module) {
            this.module = Objects.requireNonNull(module, "module");
            this.sgd = GradshapeSgd.builder(module);
        }

        public Builder lr(double lr) {
            sgd.lr(lr);
            return this;
        }

        public Builder momentum(double momentum) {
            sgd.momentum(momentum);
            return this;
        }

        public Builder weightDecay(double weightDecay) {
            sgd.weightDecay(weightDecay);
            return this;
        }

        public Builder nesterov(boolean nesterov) {
            sgd.nesterov(nesterov);
            return this;
        }

        /** Spatial gradient scaling on {@code schedule} (default: off, G = 1). */
        public Builder sgs(SgsSchedule schedule) {
            this.schedule = Objects.requireNonNull(schedule, "schedule");
            return this;
        }

        /** PowerGrad with this alpha as the loss's gradient (default 1: the cross-entropy gradient). */
        public Builder powerGrad(double alpha) {
            this.alpha = alpha;
            return this;
        }

        /** The underlying optimizer builder, for its other options (decay rule, lr from a libtorch optimizer). */
        public GradshapeSgd.Builder optimizer() {
            return sgd;
        }

        public GradshapeTraining build() {
            PowerGradLoss l = PowerGradLoss.of(alpha);
            GradshapeSgd s = null;
            try {
                s = sgd.build();
                SgsCapture c = schedule == null ? null : new SgsCapture(module, s, schedule);
                return new GradshapeTraining(s, c, l);
            } catch (RuntimeException e) {
                l.close();
                if (s != null) {
                    s.close();
                }
                throw e;
            }
        }
    }

    /** The input of {@code conv}, unchanged (captured during an SGS refresh; see {@link SgsCapture#input}). */
    public Tensor input(Conv2dImpl conv, Tensor x) {
        return sgs == null ? x : sgs.input(conv, x);
    }

    /** At the start of each epoch: the SGS refresh when due (see {@link SgsCapture#beginEpoch}); nothing without SGS. */
    public List<SgsRefresh.Update> beginEpoch(int epoch, Iterable<Tensor> batches, Function<Tensor, Tensor> forward) {
        checkOpen();
        return sgs == null ? List.of() : sgs.beginEpoch(epoch, batches, forward);
    }

    /** {@link GradshapeSgd#zeroGrad()}. */
    public void zeroGrad() {
        checkOpen();
        sgd.zeroGrad();
    }

    /** Loss and gradient of the logits, fed into libtorch's backward ({@link PowerGradLoss#backward}); returns the loss. */
    public double backward(Tensor logits, Tensor labels) {
        checkOpen();
        return loss.backward(logits, labels);
    }

    /** {@link GradshapeSgd#step()}. */
    public void step() {
        checkOpen();
        sgd.step();
    }

    public GradshapeSgd optimizer() {
        return sgd;
    }

    /** The SGS capture, or null when SGS is off. */
    public SgsCapture sgs() {
        return sgs;
    }

    public PowerGradLoss loss() {
        return loss;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("GradshapeTraining is closed");
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (sgs != null) {
            sgs.close();
        }
        loss.close();
        sgd.close();
    }
}
