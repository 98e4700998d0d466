package io.gradshape.train;

import java.util.List;

/**
 * What one arm measured. Times are wall-clock per optimizer step; {@code gradshapeMsPerStep} is the
 * time spent inside gradshape (optimizer step + PowerGrad loss + the SGS refreshes amortised over
 * every step), so its share of {@code stepMs} is the library's overhead.
 *
 * @param curve one point per epoch (epoch 1..n): mean training loss over the epoch and test accuracy
 * @param g     the G of each scaled conv at the end of training (all ones when SGS is off)
 */
public record ArmResult(String name, String trainer, double testAccuracy, double finalLoss, double stepMs,
                        double gradshapeMsPerStep, long steps, List<ConvG> g, List<EpochPoint> curve) {
    /** The G of one conv, {@code kernelH x kernelW} row-major. */
    public record ConvG(String conv, int kernelH, int kernelW, float[] g) {}

    /** Mean training loss over epoch {@code epoch} and the test accuracy after it. */
    public record EpochPoint(int epoch, double trainLoss, double testAccuracy) {}
}
