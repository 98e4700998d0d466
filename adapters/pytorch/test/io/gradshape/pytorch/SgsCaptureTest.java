package io.gradshape.pytorch;

import static org.bytedeco.pytorch.global.torch.max_pool2d;
import static org.bytedeco.pytorch.global.torch.relu;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.Backends;
import io.gradshape.SgsRefresh;
import io.gradshape.SgsSchedule;
import io.gradshape.SpatialDependence;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Conv2dImpl;
import org.bytedeco.pytorch.Conv2dOptions;
import org.bytedeco.pytorch.CrossEntropyLossImpl;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class SgsCaptureTest {
    static final int BATCH = 8;

    @BeforeAll
    static void warm() {
        TestNet.libtorch();
    }

    static List<Tensor> batches(Random r, int count) {
        List<Tensor> list = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            list.add(TestNet.tensor(TestNet.images(r, BATCH), BATCH, 1, TestNet.SIDE, TestNet.SIDE));
        }
        return list;
    }

    /** Concatenation of the batches' float data, as one [n][c][h][w] array. */
    static float[] concat(List<float[]> parts) {
        int n = parts.stream().mapToInt(p -> p.length).sum();
        float[] out = new float[n];
        int at = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    /**
     * G of every conv, from the adapter's capture over B = 2 batches in eval mode, equals
     * SpatialDependence.compute on the same conv inputs (all images at once), computed here by libtorch
     * layer by layer; and the optimizer got it.
     */
    @Test
    void gOfEachConvEqualsSpatialDependenceOnTheSameInputs() {
        long seed = 4242;
        torch.manual_seed(seed);
        Random r = new Random(seed);
        TestNet net = new TestNet();
        try (PointerScope scope = new PointerScope();
             GradshapeSgd sgd = GradshapeSgd.builder(net).lr(0.1).build();
             SgsCapture sgs = new SgsCapture(net, sgd, SgsSchedule.defaults())) {
            assertEquals(List.of(TestNet.CONVS), sgs.convs());
            List<Tensor> data = batches(r, 3);
            List<SgsRefresh.Update> updates = sgs.refreshNow(data, x -> net.forward(x, sgs));
            assertEquals(4, updates.size());
            assertTrue(net.is_training(), "training mode restored");

            // the conv inputs, layer by layer, of the two batches the schedule measures (B = 2)
            List<List<float[]>> inputs = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                inputs.add(new ArrayList<>());
            }
            int[][] shapes = new int[4][];
            try (NoGradGuard g = new NoGradGuard()) {
                net.eval();
                for (Tensor x : data.subList(0, 2)) {
                    Tensor a = x;
                    inputs.get(0).add(TestNet.floats(a));
                    a = relu(net.conv1.forward(a));
                    inputs.get(1).add(TestNet.floats(a));
                    a = max_pool2d(relu(net.conv2.forward(a)), 2, 2);
                    inputs.get(2).add(TestNet.floats(a));
                    shapes[2] = new int[] {(int) a.size(1), (int) a.size(2), (int) a.size(3)};
                    a = relu(net.conv3.forward(a));
                    inputs.get(3).add(TestNet.floats(a));
                    shapes[3] = new int[] {(int) a.size(1), (int) a.size(2), (int) a.size(3)};
                }
                net.train(true);
            }
            shapes[0] = new int[] {1, TestNet.SIDE, TestNet.SIDE};
            shapes[1] = new int[] {TestNet.C1, TestNet.SIDE, TestNet.SIDE};
            for (int i = 0; i < 4; i++) {
                int[] s = shapes[i];
                SpatialDependence.Result expected = SpatialDependence.compute(Backends.cpu(), concat(inputs.get(i)), 2 * BATCH,
                        s[0], s[1], s[2], SpatialDependence.Options.defaults().kernel(3, 3).padding(1, 1));
                String name = TestNet.CONVS[i];
                assertFalse(updates.get(i).keptPrevious(), name);
                assertArrayEquals(expected.g(), updates.get(i).g(), 1e-6f, "G of " + name + " (seed " + seed + ")");
                assertArrayEquals(updates.get(i).g(), sgs.g(name), 0f);
                assertArrayEquals(updates.get(i).g(), sgd.scale(name + ".weight"), 0f, "optimizer's scale of " + name);
                assertFalse(Arrays.equals(expected.g(), ones(9)), "G of " + name + " is not trivially all ones");
            }
        }
    }

    /** With SGS on, the first step equals grad *= G (the captured G) then torch's SGD step, in float64. */
    @Test
    void firstStepWithCapturedGEqualsFloat64Reference() {
        long seed = 17;
        torch.manual_seed(seed);
        Random r = new Random(seed);
        TestNet net = new TestNet();
        double lr = 0.05, wd = 1e-3;
        try (PointerScope scope = new PointerScope();
             GradshapeSgd sgd = GradshapeSgd.builder(net).lr(lr).momentum(0.9).weightDecay(wd).build();
             SgsCapture sgs = new SgsCapture(net, sgd, SgsSchedule.defaults());
             CrossEntropyLossImpl ce = new CrossEntropyLossImpl()) {
            sgs.refreshNow(batches(r, 2), x -> net.forward(x, sgs));
            Tensor x = TestNet.tensor(TestNet.images(r, BATCH), BATCH, 1, TestNet.SIDE, TestNet.SIDE);
            Tensor y = Tensor.create(TestNet.labels(r, BATCH), BATCH);
            ce.forward(net.forward(x, sgs), y).backward();
            GradshapeSgdTest.checkScaledStep(net, sgd, lr, wd, "captured G, seed " + seed);
        }
    }

    @Test
    void refreshesOnThePapersSchedule() {
        torch.manual_seed(8);
        Random r = new Random(8);
        TestNet net = new TestNet();
        try (PointerScope scope = new PointerScope();
             GradshapeSgd sgd = GradshapeSgd.builder(net).build();
             SgsCapture sgs = new SgsCapture(net, sgd, new SgsSchedule(3, 1, 1))) {
            List<Tensor> data = batches(r, 1);
            List<Integer> refreshedAt = new ArrayList<>();
            for (int epoch = 0; epoch < 8; epoch++) {
                if (epoch == 0) {
                    assertArrayEquals(ones(9), sgd.scale("conv2.weight"), 0f, "G = 1 before the first refresh");
                }
                if (!sgs.beginEpoch(epoch, data, x -> net.forward(x, sgs)).isEmpty()) {
                    refreshedAt.add(epoch);
                }
            }
            assertEquals(List.of(1, 3, 6), refreshedAt);
            assertEquals(3, sgs.refreshes());
        }
    }

    /** Black images: the first conv sees one dead channel, its G is not finite, so it keeps its previous G and says so. */
    @Test
    void aConvWhoseGIsNotFiniteKeepsItsPreviousG() {
        torch.manual_seed(9);
        Random r = new Random(9);
        TestNet net = new TestNet();
        try (PointerScope scope = new PointerScope();
             GradshapeSgd sgd = GradshapeSgd.builder(net).build();
             SgsCapture sgs = new SgsCapture(net, sgd, new SgsSchedule(1, 1, 0))) {
            sgs.refreshNow(batches(r, 1), x -> net.forward(x, sgs));
            float[] before = sgs.g("conv1");
            float[] black = new float[BATCH * TestNet.SIDE * TestNet.SIDE];
            List<SgsRefresh.Update> u = sgs.refreshNow(List.of(TestNet.tensor(black, BATCH, 1, TestNet.SIDE, TestNet.SIDE)),
                    x -> net.forward(x, sgs));
            assertTrue(u.get(0).keptPrevious(), "conv1 on black images");
            assertTrue(u.get(0).reason().contains("conv1"), u.get(0).reason());
            assertArrayEquals(before, sgs.g("conv1"), 0f);
            assertArrayEquals(before, sgd.scale("conv1.weight"), 0f);
        }
    }

    @Test
    void aForwardThatDoesNotPassConvInputsIsAClearError() {
        TestNet net = new TestNet();
        Random r = new Random(1);
        try (PointerScope scope = new PointerScope();
             GradshapeSgd sgd = GradshapeSgd.builder(net).build();
             SgsCapture sgs = new SgsCapture(net, sgd, SgsSchedule.defaults())) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> sgs.refreshNow(batches(r, 2), x -> net.forward(x, null)));
            assertTrue(e.getMessage().contains("conv1") && e.getMessage().contains("input"), e.getMessage());
            IllegalArgumentException few = assertThrows(IllegalArgumentException.class,
                    () -> sgs.refreshNow(batches(r, 1), x -> net.forward(x, sgs)));
            assertTrue(few.getMessage().contains("2 batches"), few.getMessage());
            assertTrue(net.is_training());
        }
    }

    /** Convs the dependence cannot measure stay at G = 1 and are listed; 1 x 1 convs are not scaled at all. */
    @Test
    void listsConvsItCannotMeasure() {
        Module m = new Module();
        Conv2dImpl three = m.register_module("three", new Conv2dImpl(TestNet.conv(1, 2)));
        m.register_module("two", new Conv2dImpl(new Conv2dOptions(2, 2, new LongPointer(2, 2))));
        Conv2dOptions dilated = TestNet.conv(2, 2);
        dilated.dilation().put(0, 2).put(1, 2);
        m.register_module("dilated", new Conv2dImpl(dilated));
        Conv2dOptions reflect = TestNet.conv(2, 2);
        reflect.padding_mode().put(new org.bytedeco.pytorch.kReflect());
        m.register_module("reflect", new Conv2dImpl(reflect));
        m.register_module("one", new Conv2dImpl(new Conv2dOptions(2, 2, new LongPointer(1, 1))));
        try (GradshapeSgd sgd = GradshapeSgd.builder(m).build();
             SgsCapture sgs = new SgsCapture(m, sgd, SgsSchedule.defaults())) {
            assertEquals(List.of("three.weight", "two.weight", "dilated.weight", "reflect.weight"), sgd.scaledParameters());
            assertEquals(List.of("three"), sgs.convs());
            assertEquals(List.of("two", "dilated", "reflect"), List.copyOf(sgs.unscaled().keySet()));
            assertTrue(sgs.unscaled().get("two").contains("even"), sgs.unscaled().toString());
            assertTrue(sgs.unscaled().get("dilated").contains("dilation"), sgs.unscaled().toString());
            assertTrue(sgs.unscaled().get("reflect").contains("padding mode"), sgs.unscaled().toString());
            assertEquals(1, three.options().padding().get0().get(0));
        }
    }

    static float[] ones(int n) {
        float[] a = new float[n];
        Arrays.fill(a, 1f);
        return a;
    }
}
