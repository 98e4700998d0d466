package io.gradshape.train;

/**
 * The reference network every trainer builds, layer for layer the same (so arms and trainers compare):
 * a small VGG-style CNN for 1 x 28 x 28 inputs, without batch normalisation.
 * <pre>
 *   conv1 3x3  1 -> C1, pad 1, ReLU
 *   conv2 3x3 C1 -> C1, pad 1, ReLU, max-pool 2x2      (14 x 14)
 *   conv3 3x3 C1 -> C2, pad 1, ReLU
 *   conv4 3x3 C2 -> C2, pad 1, ReLU, max-pool 2x2      (7 x 7)
 *   fc1   C2*7*7 -> HIDDEN, ReLU
 *   fc2   HIDDEN -> 10 (logits)
 * </pre>
 * Convs and linears have biases. Weights: each trainer's default initialisation, seeded. SGS scales the
 * four 3x3 convs (conv1 included: its input is the image itself).
 */
public final class Network {
    public static final int C1 = 16;
    public static final int C2 = 32;
    public static final int HIDDEN = 64;
    public static final int CLASSES = 10;
    public static final int KERNEL = 3;
    public static final int PADDING = 1;
    /** Names of the scaled convs, in forward order. */
    public static final String[] CONVS = {"conv1", "conv2", "conv3", "conv4"};

    private Network() {}
}
