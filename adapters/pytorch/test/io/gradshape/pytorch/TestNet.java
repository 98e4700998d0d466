package io.gradshape.pytorch;

import static org.bytedeco.pytorch.global.torch.max_pool2d;
import static org.bytedeco.pytorch.global.torch.relu;

import java.util.Random;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.pytorch.Conv2dImpl;
import org.bytedeco.pytorch.Conv2dOptions;
import org.bytedeco.pytorch.LinearImpl;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.StringTensorDict;
import org.bytedeco.pytorch.Tensor;

/**
 * A small version of the reference network (4 convs 3x3 pad 1, two max-pools, two linears) on
 * 1 x 12 x 12 inputs, so that the adapter tests run in seconds; plus tensor helpers for the tests.
 */
final class TestNet extends Module {
    static final int SIDE = 12;
    static final int C1 = 4;
    static final int C2 = 6;
    static final int HIDDEN = 16;
    static final int CLASSES = 10;
    static final String[] CONVS = {"conv1", "conv2", "conv3", "conv4"};

    final Conv2dImpl conv1, conv2, conv3, conv4;
    final LinearImpl fc1, fc2;

    /**
     * Loads libtorch safely (the fresh-cache crash) and turns oneDNN off: with it, libtorch 2.10's CPU
     * backward of a conv with one input channel now and then leaves NaN in the weight gradient (seen
     * in about 1 run in 40 of 45 steps, with libtorch alone; none in 200 runs with oneDNN off).
     */
    static void libtorch() {
        TorchWarmup.ensureCache();
        org.bytedeco.pytorch.global.torch.globalContext().setUserEnabledMkldnn(false);
    }

    TestNet() {
        conv1 = register_module("conv1", new Conv2dImpl(conv(1, C1)));
        conv2 = register_module("conv2", new Conv2dImpl(conv(C1, C1)));
        conv3 = register_module("conv3", new Conv2dImpl(conv(C1, C2)));
        conv4 = register_module("conv4", new Conv2dImpl(conv(C2, C2)));
        fc1 = register_module("fc1", new LinearImpl(C2 * (SIDE / 4) * (SIDE / 4), HIDDEN));
        fc2 = register_module("fc2", new LinearImpl(HIDDEN, CLASSES));
    }

    static Conv2dOptions conv(long in, long out) {
        Conv2dOptions o = new Conv2dOptions(in, out, new LongPointer(3, 3));
        o.padding().put(new LongPointer(1, 1));
        return o;
    }

    /** The forward; {@code sgs} may be null (no capture). */
    Tensor forward(Tensor x, SgsCapture sgs) {
        x = relu(conv1.forward(in(sgs, conv1, x)));
        x = max_pool2d(relu(conv2.forward(in(sgs, conv2, x))), 2, 2);
        x = relu(conv3.forward(in(sgs, conv3, x)));
        x = max_pool2d(relu(conv4.forward(in(sgs, conv4, x))), 2, 2);
        x = relu(fc1.forward(x.reshape(x.size(0), -1)));
        return fc2.forward(x);
    }

    private static Tensor in(SgsCapture sgs, Conv2dImpl conv, Tensor x) {
        return sgs == null ? x : sgs.input(conv, x);
    }

    /** Copies every parameter of {@code from} into this network (same architecture). */
    void copyFrom(TestNet from) {
        try (NoGradGuard g = new NoGradGuard(); StringTensorDict mine = named_parameters(); StringTensorDict theirs = from.named_parameters()) {
            for (long i = 0; i < mine.size(); i++) {
                mine.get(i).value().copy_(theirs.get(i).value());
            }
        }
    }

    static Tensor tensor(float[] values, long... shape) {
        return Tensor.create(values, shape);
    }

    static float[] floats(Tensor t) {
        try (Tensor c = t.contiguous(); Pointer p = c.data_ptr(); FloatPointer f = new FloatPointer(p)) {
            float[] out = new float[(int) c.numel()];
            f.get(out);
            return out;
        }
    }

    /** Images in [0, 1] with spatial structure (a random 3 x 3 box blur of noise), so that G is not trivial. */
    static float[] images(Random r, int n) {
        float[] noise = new float[n * SIDE * SIDE];
        for (int i = 0; i < noise.length; i++) {
            noise[i] = r.nextFloat();
        }
        float[] out = new float[noise.length];
        for (int b = 0; b < n; b++) {
            for (int y = 0; y < SIDE; y++) {
                for (int x = 0; x < SIDE; x++) {
                    double s = 0;
                    int c = 0;
                    for (int dy = -1; dy <= 1; dy++) {
                        for (int dx = -1; dx <= 1; dx++) {
                            int yy = y + dy, xx = x + dx;
                            if (yy >= 0 && yy < SIDE && xx >= 0 && xx < SIDE) {
                                s += noise[(b * SIDE + yy) * SIDE + xx];
                                c++;
                            }
                        }
                    }
                    out[(b * SIDE + y) * SIDE + x] = (float) (s / c);
                }
            }
        }
        return out;
    }

    static long[] labels(Random r, int n) {
        long[] l = new long[n];
        for (int i = 0; i < n; i++) {
            l[i] = r.nextInt(CLASSES);
        }
        return l;
    }
}
