package io.gradshape.train;

import io.gradshape.SgsSchedule;

/**
 * One arm of the training comparison: what is switched on, and the recipe shared by every arm of a
 * run (same seed, same data order, same network). Built by {@code TrainCommand}; each trainer's
 * {@link ArmRunner} follows it exactly.
 *
 * @param name         "baseline", "sgs", "pgt" or "sgs+pgt"
 * @param sgs          true: conv gradients scaled by G (gradshape's scaled SGD + SGS refresh);
 *                     false with {@code pgtAlpha} NaN: the trainer's own SGD and cross-entropy
 * @param pgtAlpha     PowerGrad's alpha, or NaN for the ordinary cross-entropy gradient
 * @param gradshapeSgd true: the step is gradshape's scaled SGD (G = 1 unless {@code sgs}); false:
 *                     the trainer's own optimizer (the baseline arm)
 * @param seed         weight init and data order
 * @param epochs       passes over the training subset
 * @param trainSize    training images used (a prefix of the shuffled training set)
 * @param testSize     test images evaluated
 * @param batchSize    minibatch size
 * @param lr           learning rate (constant, or the schedule's base)
 * @param momentum     SGD momentum
 * @param weightDecay  L2 weight decay on conv and linear weights (biases exempt where the trainer's own SGD
 *                     can exempt them; DJL's Sgd cannot, so {@code DjlArms} decays every parameter in
 *                     every arm)
 * @param schedule     when G is refreshed and from how many batches
 * @param threads      CPU threads for the trainer and for gradshape
 */
public record ArmSpec(String name, boolean sgs, float pgtAlpha, boolean gradshapeSgd, long seed, int epochs,
                      int trainSize, int testSize, int batchSize, float lr, float momentum, float weightDecay,
                      SgsSchedule schedule, int threads) {
    public boolean pgt() {
        return !Float.isNaN(pgtAlpha);
    }
}
