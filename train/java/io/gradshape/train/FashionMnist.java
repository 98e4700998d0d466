package io.gradshape.train;

/**
 * Fashion-MNIST in memory: images as float32 in [0, 1] (pixel / 255), {@code [n][28][28]} row-major,
 * labels 0..9. Loaded by {@link FashionMnistLoader}: {@code --data DIR}, else
 * {@code /usr/share/datasets/fashion-mnist} (Debian's dataset-fashion-mnist), else the slice shipped
 * in this module's resources.
 *
 * @param source where the data came from, for the report
 */
public record FashionMnist(float[] trainImages, int[] trainLabels, float[] testImages, int[] testLabels,
                           String source) {
    public static final int SIDE = 28;
    public static final int PIXELS = SIDE * SIDE;

    public int trainCount() {
        return trainLabels.length;
    }

    public int testCount() {
        return testLabels.length;
    }
}
