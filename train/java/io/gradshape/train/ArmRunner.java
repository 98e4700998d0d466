package io.gradshape.train;

/**
 * Trains the reference network (a small VGG-style CNN, see {@link Network}) with one trainer, for one
 * arm. One implementation per trainer (DJL, the JavaCPP PyTorch presets, DL4J), each using its
 * gradshape adapter; the baseline arm uses the trainer's own SGD and cross-entropy.
 */
public interface ArmRunner {
    /** The {@code --trainer} name: "djl", "pytorch" or "dl4j". */
    String trainer();

    /** Trains and evaluates one arm; {@code progress} receives one tick per step. */
    ArmResult run(ArmSpec spec, FashionMnist data, StepListener progress) throws Exception;

    /** Progress of an arm: called after every optimizer step and after every epoch's evaluation. */
    interface StepListener {
        void step(int epoch, long stepInEpoch, long stepsPerEpoch, double loss);

        default void epoch(int epoch, double trainLoss, double testAccuracy) {}
    }
}
