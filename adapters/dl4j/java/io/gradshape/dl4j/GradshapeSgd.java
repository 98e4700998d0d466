package io.gradshape.dl4j;

import java.util.Map;
import java.util.Objects;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.schedule.ISchedule;

/**
 * gradshape's scaled SGD as a DL4J updater: set it as DL4J's {@code .updater(...)} and DL4J's own
 * {@code fit()} runs gradshape's fused step (SPEC.md section 2: conv weights scaled by their SGS
 * {@code G}, momentum, Nesterov, weight decay, one native call for all the layers that share this
 * updater). Needs a {@link GradshapeListener} on the network: it binds the step to the network's
 * flat parameter, gradient and updater-state buffers (zero-copy).
 *
 * <pre>{@code
 * .updater(GradshapeSgd.nesterovs(0.05, 0.9).weightDecay(5e-4))   // as DL4J's new Nesterovs(0.05, 0.9)
 * }</pre>
 *
 * <ul>
 * <li>{@code new GradshapeSgd(lr)}: plain SGD, as DL4J's {@code Sgd(lr)};</li>
 * <li>{@link #momentum(double)}: heavy-ball momentum ({@code torch.optim.SGD(momentum=m)});</li>
 * <li>{@link #nesterovs(double, double)}: Nesterov momentum; with a constant learning rate it is
 *     exactly DL4J's {@code Nesterovs(lr, m)} (the two formulas are one recurrence written twice);</li>
 * <li>{@link #weightDecay(double)}: the L2 penalty of {@code torch.optim.SGD} ({@code d += wd * w}
 *     before momentum, not scaled by G), on DL4J's weight parameters only (biases exempt, as DL4J's
 *     own {@code .l2()} and {@code .weightDecay()} do). DL4J's own {@code .l2()/.l1()/.weightDecay()}
 *     on a layer stepped by this updater are refused when the network is bound: DL4J adds them to the
 *     gradient before the updater, where G would scale them.</li>
 * </ul>
 * The learning rate may be an {@link ISchedule} (DL4J's), evaluated at each step's iteration and
 * epoch. Momentum state is DL4J's updater state (saved with the model, key {@code "M"}).
 * Serialises with DL4J's JSON configuration (plain bean properties).
 */
public final class GradshapeSgd implements IUpdater {
    private static final long serialVersionUID = 1L;
    /** The momentum buffer's key in DL4J's updater state map. */
    public static final String STATE_MOMENTUM = "M";

    private double learningRate = 1e-3;
    private ISchedule learningRateSchedule;
    private double momentum;
    private boolean nesterov;
    private double weightDecay;

    /** For DL4J's JSON deserialisation; {@code lr = 1e-3}, no momentum. */
    public GradshapeSgd() {}

    /** Plain SGD at learning rate {@code lr}. */
    public GradshapeSgd(double lr) {
        setLearningRate(lr);
    }

    /** SGD with a DL4J learning-rate schedule. */
    public GradshapeSgd(ISchedule schedule) {
        setLearningRateSchedule(Objects.requireNonNull(schedule, "schedule"));
    }

    /** Nesterov momentum, as DL4J's {@code new Nesterovs(lr, momentum)}. */
    public static GradshapeSgd nesterovs(double lr, double momentum) {
        return new GradshapeSgd(lr).momentum(momentum).nesterov(true);
    }

    /** Momentum factor (finite, in [0, 1)). */
    public GradshapeSgd momentum(double momentum) {
        setMomentum(momentum);
        return this;
    }

    /** Nesterov momentum on or off; on requires momentum > 0 (checked when the network is bound). */
    public GradshapeSgd nesterov(boolean nesterov) {
        setNesterov(nesterov);
        return this;
    }

    /** L2 penalty on the weight parameters (finite, >= 0). */
    public GradshapeSgd weightDecay(double weightDecay) {
        setWeightDecay(weightDecay);
        return this;
    }

    // ---- bean properties (DL4J's JSON) ------------------------------------------------------------

    public double getLearningRate() {
        return learningRate;
    }

    public void setLearningRate(double lr) {
        if (!Double.isFinite(lr) || lr < 0 || lr > Float.MAX_VALUE) {
            throw new IllegalArgumentException("learningRate: expected a finite float32 value >= 0, got " + lr);
        }
        this.learningRate = lr;
    }

    public ISchedule getLearningRateSchedule() {
        return learningRateSchedule;
    }

    public void setLearningRateSchedule(ISchedule schedule) {
        this.learningRateSchedule = schedule;
    }

    public double getMomentum() {
        return momentum;
    }

    public void setMomentum(double momentum) {
        if (!Double.isFinite(momentum) || momentum < 0 || momentum >= 1) {
            throw new IllegalArgumentException("momentum: expected a finite value in [0, 1), got " + momentum);
        }
        this.momentum = momentum;
    }

    public boolean isNesterov() {
        return nesterov;
    }

    public void setNesterov(boolean nesterov) {
        this.nesterov = nesterov;
    }

    public double getWeightDecay() {
        return weightDecay;
    }

    public void setWeightDecay(double weightDecay) {
        if (!Double.isFinite(weightDecay) || weightDecay < 0 || weightDecay > Float.MAX_VALUE) {
            throw new IllegalArgumentException("weightDecay: expected a finite float32 value >= 0, got " + weightDecay);
        }
        this.weightDecay = weightDecay;
    }

    // ---- IUpdater ---------------------------------------------------------------------------------

    @Override
    public long stateSize(long numParams) {
        return momentum > 0 ? numParams : 0;
    }

    @Override
    public GradientUpdater instantiate(INDArray viewArray, boolean initializeViewArray) {
        GradshapeSgdUpdater u = new GradshapeSgdUpdater(this);
        if (momentum > 0) {
            u.setStateViewArray(viewArray, viewArray == null ? null : viewArray.shape(), 'c', initializeViewArray);
        }
        return u;
    }

    @Override
    public GradientUpdater instantiate(Map<String, INDArray> updaterState, boolean initializeStateArrays) {
        GradshapeSgdUpdater u = new GradshapeSgdUpdater(this);
        u.setState(updaterState, initializeStateArrays);
        return u;
    }

    @Override
    public GradshapeSgd clone() {
        GradshapeSgd c = new GradshapeSgd();
        c.learningRate = learningRate;
        c.learningRateSchedule = learningRateSchedule == null ? null : learningRateSchedule.clone();
        c.momentum = momentum;
        c.nesterov = nesterov;
        c.weightDecay = weightDecay;
        return c;
    }

    @Override
    public double getLearningRate(int iteration, int epoch) {
        return learningRateSchedule != null ? learningRateSchedule.valueAt(iteration, epoch) : learningRate;
    }

    @Override
    public boolean hasLearningRate() {
        return true;
    }

    @Override
    public void setLrAndSchedule(double lr, ISchedule schedule) {
        setLearningRate(lr);
        this.learningRateSchedule = schedule;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof GradshapeSgd other)) {
            return false;
        }
        return learningRate == other.learningRate && momentum == other.momentum && nesterov == other.nesterov
                && weightDecay == other.weightDecay && Objects.equals(learningRateSchedule, other.learningRateSchedule);
    }

    @Override
    public int hashCode() {
        return Objects.hash(learningRate, momentum, nesterov, weightDecay, learningRateSchedule);
    }

    @Override
    public String toString() {
        return "GradshapeSgd(lr = " + (learningRateSchedule != null ? learningRateSchedule : learningRate)
                + ", momentum = " + momentum + ", nesterov = " + nesterov + ", weightDecay = " + weightDecay + ")";
    }
}
