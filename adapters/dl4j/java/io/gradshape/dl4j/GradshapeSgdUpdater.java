package io.gradshape.dl4j;

import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.GradientUpdater;

/**
 * DL4J's per-block updater instance for {@link GradshapeSgd}. DL4J calls {@link #applyUpdater} with
 * the block's gradient view (already divided by the minibatch size) and then subtracts what that
 * view holds from the parameters. The step itself is gradshape's fused step on the bound flat buffers
 * ({@link FlatStep}), which updates the parameters and the momentum in place; the gradient view is
 * then zeroed so that DL4J's subtraction leaves the parameters as gradshape wrote them.
 */
final class GradshapeSgdUpdater implements GradientUpdater<GradshapeSgd> {
    private final GradshapeSgd config;
    private INDArray state;
    private FlatStep step;

    GradshapeSgdUpdater(GradshapeSgd config) {
        this.config = config;
    }

    @Override
    public GradshapeSgd getConfig() {
        return config;
    }

    @Override
    public void setState(Map<String, INDArray> stateMap, boolean initialize) {
        if (config.getMomentum() == 0) {
            state = null;
            return;
        }
        INDArray m = stateMap == null ? null : stateMap.get(GradshapeSgd.STATE_MOMENTUM);
        if (m == null) {
            throw new IllegalArgumentException("updater state: no \"" + GradshapeSgd.STATE_MOMENTUM
                    + "\" (momentum) array for GradshapeSgd with momentum " + config.getMomentum());
        }
        state = m;
        if (initialize) {
            state.assign(0);
        }
    }

    @Override
    public Map<String, INDArray> getState() {
        return state == null ? Map.of() : Map.of(GradshapeSgd.STATE_MOMENTUM, state);
    }

    @Override
    public void setStateViewArray(INDArray viewArray, long[] gradientShape, char gradientOrder, boolean initialize) {
        if (config.getMomentum() == 0) {
            state = null;
            return;
        }
        if (viewArray == null) {
            throw new IllegalArgumentException("updater state: null view for GradshapeSgd with momentum " + config.getMomentum());
        }
        state = viewArray;
        if (initialize) {
            state.assign(0);
        }
    }

    /** The momentum view DL4J gave this block (null without momentum). */
    INDArray state() {
        return state;
    }

    FlatStep step() {
        return step;
    }

    void bind(FlatStep step) {
        this.step = step;
    }

    @Override
    public void applyUpdater(INDArray gradient, int iteration, int epoch) {
        FlatStep s = step;
        if (s == null) {
            throw new IllegalStateException("GradshapeSgd: the network has no GradshapeListener, so its updater is not bound"
                    + " to the network's parameters: add one with net.addListeners(new GradshapeListener()) before fit()");
        }
        s.step(gradient, (float) config.getLearningRate(iteration, epoch));
    }
}
