package io.gradshape.djl;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import java.util.Random;

/** A small CNN of the reference net's kind (3x3 convs, padding 1, ReLU, max-pool, linear) for quick tests. */
final class TestNets {
    static final int SIDE = 12;
    static final int CLASSES = 10;

    private TestNets() {}

    static SequentialBlock cnn() {
        return new SequentialBlock()
                .add(Conv2d.builder().setKernelShape(new Shape(3, 3)).optPadding(new Shape(1, 1)).setFilters(4).build())
                .add(Activation::relu)
                .add(Conv2d.builder().setKernelShape(new Shape(3, 3)).optPadding(new Shape(1, 1)).setFilters(6).build())
                .add(Activation::relu)
                .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
                .add(Blocks.batchFlattenBlock())
                .add(Linear.builder().setUnits(CLASSES).build());
    }

    /**
     * {@link #cnn()} with tanh and average pooling. Two runs that differ only by float rounding drift
     * apart quickly through ReLU and max-pool kinks (a value of 1e-9 against 0 switches a gradient path
     * on or off), which says nothing about the optimizer; a smooth net keeps them at rounding distance,
     * so trajectories can be compared over many steps.
     */
    static SequentialBlock smoothCnn() {
        return new SequentialBlock()
                .add(Conv2d.builder().setKernelShape(new Shape(3, 3)).optPadding(new Shape(1, 1)).setFilters(4).build())
                .add(Activation::tanh)
                .add(Conv2d.builder().setKernelShape(new Shape(3, 3)).optPadding(new Shape(1, 1)).setFilters(6).build())
                .add(Activation::tanh)
                .add(Pool.avgPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
                .add(Blocks.batchFlattenBlock())
                .add(Linear.builder().setUnits(CLASSES).build());
    }

    /** A freshly initialized {@link #cnn()}; the same seed gives the same weights. */
    static SequentialBlock initialized(NDManager manager, long seed, int batch) {
        Engine.getInstance().setRandomSeed((int) seed);
        SequentialBlock b = cnn();
        b.initialize(manager, DataType.FLOAT32, new Shape(batch, 1, SIDE, SIDE));
        return b;
    }

    /** Images with spatial structure (smoothed noise), so G differs from ones. */
    static NDArray images(NDManager manager, Random random, int batch) {
        float[] x = new float[batch * SIDE * SIDE];
        for (int n = 0; n < batch; n++) {
            float[] raw = new float[SIDE * SIDE];
            for (int i = 0; i < raw.length; i++) {
                raw[i] = random.nextFloat();
            }
            for (int i = 0; i < SIDE; i++) {
                for (int j = 0; j < SIDE; j++) {
                    float s = 0;
                    int c = 0;
                    for (int di = -1; di <= 1; di++) {
                        for (int dj = -1; dj <= 1; dj++) {
                            int a = i + di;
                            int b = j + dj;
                            if (a >= 0 && a < SIDE && b >= 0 && b < SIDE) {
                                s += raw[a * SIDE + b];
                                c++;
                            }
                        }
                    }
                    x[n * SIDE * SIDE + i * SIDE + j] = s / c;
                }
            }
        }
        return manager.create(x, new Shape(batch, 1, SIDE, SIDE));
    }

    static NDArray labels(NDManager manager, Random random, int batch) {
        long[] y = new long[batch];
        for (int i = 0; i < batch; i++) {
            y[i] = random.nextInt(CLASSES);
        }
        return manager.create(y);
    }

    static NDList list(NDArray a) {
        return new NDList(a);
    }
}
