package io.gradshape.pytorch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.CrossEntropyLossImpl;
import org.bytedeco.pytorch.OptimizerParamGroup;
import org.bytedeco.pytorch.SGD;
import org.bytedeco.pytorch.SGDOptions;
import org.bytedeco.pytorch.StepLR;
import org.bytedeco.pytorch.StringTensorDict;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class GradshapeSgdTest {
    static final int BATCH = 16;

    @BeforeAll
    static void warm() {
        TestNet.libtorch();
    }

    /** torch.optim.SGD with the ImageNet recipe's groups: decay on weights (dim > 1), none on biases. */
    static SGD torchSgd(TestNet net, double lr, double momentum, double wd) {
        TensorVector decay = new TensorVector();
        TensorVector noDecay = new TensorVector();
        try (StringTensorDict named = net.named_parameters()) {
            for (long i = 0; i < named.size(); i++) {
                Tensor p = named.get(i).value();
                (p.dim() > 1 ? decay : noDecay).push_back(p);
            }
        }
        SGDOptions withDecay = new SGDOptions(lr);
        withDecay.momentum().put(momentum);
        withDecay.weight_decay().put(wd);
        SGDOptions without = new SGDOptions(lr);
        without.momentum().put(momentum);
        SGD sgd = new SGD(decay, withDecay);
        sgd.add_param_group(new OptimizerParamGroup(noDecay, without));
        return sgd;
    }

    @Test
    void equalsTorchSgdAndCrossEntropyOver40Steps() {
        long seed = 901;
        torch.manual_seed(seed);
        TestNet reference = new TestNet();
        TestNet ours = new TestNet();
        ours.copyFrom(reference);
        double lr = 0.05, momentum = 0.9, wd = 5e-3;
        SGD torchSgd = torchSgd(reference, lr, momentum, wd);
        CrossEntropyLossImpl ce = new CrossEntropyLossImpl();
        Random r = new Random(seed);
        int steps = 45;
        // A few fixed batches, cycled: the network can fit them, so the run visibly trains.
        int pool = 4;
        float[][] images = new float[pool][];
        long[][] labels = new long[pool][];
        for (int i = 0; i < pool; i++) {
            images[i] = TestNet.images(r, BATCH);
            labels[i] = TestNet.labels(r, BATCH);
        }
        try (GradshapeSgd sgd = GradshapeSgd.builder(ours).lr(lr).momentum(momentum).weightDecay(wd).build();
             PowerGradLoss loss = PowerGradLoss.of(1.0)) {
            double firstLoss = Double.NaN, lastLoss = Double.NaN;
            for (int step = 0; step < steps; step++) {
                try (PointerScope scope = new PointerScope()) {
                    Tensor x = TestNet.tensor(images[step % pool], BATCH, 1, TestNet.SIDE, TestNet.SIDE);
                    Tensor y = Tensor.create(labels[step % pool], BATCH);

                    torchSgd.zero_grad();
                    Tensor l = ce.forward(reference.forward(x, null), y);
                    l.backward();
                    torchSgd.step();
                    double expected = l.item_double();

                    sgd.zeroGrad();
                    double actual = loss.backward(ours.forward(x, null), y);
                    sgd.step();
                    assertEquals(expected, actual, 2e-6 + 2e-5 * Math.abs(expected),
                            "loss at step " + step + " (seed " + seed + ")");
                    if (step == 0) {
                        firstLoss = actual;
                    }
                    if (step % pool == 0) {
                        lastLoss = actual; // same batch as step 0
                    }
                }
            }
            assertTrue(lastLoss < firstLoss, "the run trains: loss " + firstLoss + " -> " + lastLoss);
            assertEquals(0, sgd.rebinds(), "zeroGrad keeps the gradients bound");
            assertEquals(steps, sgd.stepCount());
            try (StringTensorDict a = reference.named_parameters(); StringTensorDict b = ours.named_parameters()) {
                for (long i = 0; i < a.size(); i++) {
                    String name = a.get(i).key().getString();
                    float[] wa = TestNet.floats(a.get(i).value());
                    float[] wb = TestNet.floats(b.get(i).value());
                    double scale = 0;
                    for (float v : wa) {
                        scale = Math.max(scale, Math.abs(v));
                    }
                    for (int k = 0; k < wa.length; k++) {
                        assertEquals(wa[k], wb[k], 1e-4 * scale + 1e-6, name + "[" + k + "] after " + steps + " steps (seed " + seed + ")");
                    }
                }
            }
        }
    }

    @Test
    void recognisesConvKernelsAndExemptsBiasesFromDecay() {
        torch.manual_seed(3);
        TestNet net = new TestNet();
        try (GradshapeSgd sgd = GradshapeSgd.builder(net).lr(0.1).weightDecay(1e-4).build()) {
            assertEquals(List.of("conv1.weight", "conv2.weight", "conv3.weight", "conv4.weight"), sgd.scaledParameters());
            assertEquals(12, sgd.parameters().size());
            assertTrue(sgd.decays("conv1.weight"));
            assertTrue(sgd.decays("fc1.weight"));
            assertFalse(sgd.decays("conv1.bias"));
            assertFalse(sgd.decays("fc2.bias"));
            assertEquals(9, sgd.scale("conv3.weight").length);
            assertThrows(IllegalArgumentException.class, () -> sgd.scale("fc1.weight"));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> sgd.scale("nope"));
            assertTrue(e.getMessage().contains("nope"), e.getMessage());
        }
        try (GradshapeSgd sgd = GradshapeSgd.builder(net).decay((name, p) -> name.startsWith("fc")).build()) {
            assertFalse(sgd.decays("conv1.weight"));
            assertTrue(sgd.decays("fc1.bias"));
        }
    }

    /**
     * The first step with a scale G on every conv equals, in float64, {@code grad *= G} (per kernel
     * position) followed by torch's SGD step (momentum buffer = d on the first step); and it is done in
     * the module's own storage: libtorch reads the weights gradshape wrote, and gradshape read the
     * gradients libtorch's backward wrote, at the same addresses.
     */
    @Test
    void firstScaledStepEqualsFloat64ReferenceInTheModulesOwnStorage() {
        long seed = 77;
        torch.manual_seed(seed);
        Random r = new Random(seed);
        TestNet net = new TestNet();
        double lr = 0.1, momentum = 0.9, wd = 1e-2;
        try (GradshapeSgd sgd = GradshapeSgd.builder(net).lr(lr).momentum(momentum).weightDecay(wd).build();
             PointerScope scope = new PointerScope()) {
            for (String name : sgd.scaledParameters()) {
                float[] g = new float[9];
                for (int i = 0; i < 9; i++) {
                    g[i] = 0.5f + r.nextFloat();
                }
                sgd.setScale(name, g);
            }
            Tensor x = TestNet.tensor(TestNet.images(r, BATCH), BATCH, 1, TestNet.SIDE, TestNet.SIDE);
            Tensor y = Tensor.create(TestNet.labels(r, BATCH), BATCH);
            try (CrossEntropyLossImpl ce = new CrossEntropyLossImpl()) {
                ce.forward(net.forward(x, null), y).backward();
            }
            checkScaledStep(net, sgd, lr, wd, "seed " + seed);
        }
    }

    /** Steps {@code sgd} once and checks every parameter against the float64 reference. */
    static void checkScaledStep(TestNet net, GradshapeSgd sgd, double lr, double wd, String what) {
        List<String> names = sgd.parameters();
        double[][] w0 = new double[names.size()][];
        double[][] g0 = new double[names.size()][];
        try (StringTensorDict named = net.named_parameters()) {
            for (int i = 0; i < names.size(); i++) {
                Tensor p = named.get(names.get(i));
                assertEquals(GradshapeSgd.address(p), sgd.weightsAddress(names.get(i)), "weights of " + names.get(i) + " bound in place");
                assertEquals(GradshapeSgd.address(p.grad()), sgd.gradientAddress(names.get(i)),
                        "gradient of " + names.get(i) + " is the one backward wrote");
                w0[i] = toDouble(TestNet.floats(p));
                g0[i] = toDouble(TestNet.floats(p.grad()));
            }
        }
        sgd.step();
        try (StringTensorDict named = net.named_parameters()) {
            for (int i = 0; i < names.size(); i++) {
                String name = names.get(i);
                Tensor p = named.get(name);
                boolean scaled = sgd.scaledParameters().contains(name);
                float[] g = scaled ? sgd.scale(name) : null;
                double expectedSum = 0;
                float[] after = TestNet.floats(p);
                for (int k = 0; k < after.length; k++) {
                    double d = g0[i][k] * (scaled ? g[k % 9] : 1) + (sgd.decays(name) ? wd * w0[i][k] : 0);
                    double expected = w0[i][k] - lr * d;
                    expectedSum += expected;
                    assertEquals(expected, after[k], 1e-6 + 1e-6 * Math.abs(expected), name + "[" + k + "] (" + what + ")");
                }
                // libtorch's own reduction over the storage gradshape wrote
                try (Tensor sum = p.sum()) {
                    assertEquals(expectedSum, sum.item_double(), 1e-5 + 1e-5 * Math.abs(expectedSum), "torch's sum of " + name);
                }
            }
        }
    }

    static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    /** libtorch's module.zero_grad() frees the gradients; the next backward allocates new ones elsewhere. */
    @Test
    void rebindsGradientsThatLibtorchMoved() {
        long seed = 5;
        torch.manual_seed(seed);
        Random r = new Random(seed);
        TestNet reference = new TestNet();
        TestNet ours = new TestNet();
        ours.copyFrom(reference);
        SGD torchSgd = torchSgd(reference, 0.05, 0, 0);
        try (GradshapeSgd sgd = GradshapeSgd.builder(ours).lr(0.05).build();
             PowerGradLoss loss = PowerGradLoss.of(1.0);
             CrossEntropyLossImpl ce = new CrossEntropyLossImpl()) {
            long bound = sgd.gradientAddress("conv2.weight");
            for (int step = 0; step < 3; step++) {
                try (PointerScope scope = new PointerScope()) {
                    Tensor x = TestNet.tensor(TestNet.images(r, BATCH), BATCH, 1, TestNet.SIDE, TestNet.SIDE);
                    Tensor y = Tensor.create(TestNet.labels(r, BATCH), BATCH);
                    torchSgd.zero_grad();
                    ce.forward(reference.forward(x, null), y).backward();
                    torchSgd.step();
                    ours.zero_grad(true); // set_to_none: libtorch's default
                    loss.backward(ours.forward(x, null), y);
                    sgd.step();
                    try (Tensor g = ours.conv2.weight().grad()) {
                        assertEquals(bound, GradshapeSgd.address(g), "gradient bound again after step " + step);
                    }
                }
            }
            assertEquals(3L * sgd.parameters().size(), sgd.rebinds());
            float[] a = TestNet.floats(reference.conv2.weight());
            float[] b = TestNet.floats(ours.conv2.weight());
            for (int k = 0; k < a.length; k++) {
                assertEquals(a[k], b[k], 1e-6, "conv2.weight[" + k + "] (seed " + seed + ")");
            }
        }
    }

    @Test
    void missingGradientOrReplacedParameterIsAClearError() {
        torch.manual_seed(11);
        TestNet net = new TestNet();
        try (GradshapeSgd sgd = GradshapeSgd.builder(net).lr(0.1).build()) {
            net.zero_grad(true);
            IllegalStateException e = assertThrows(IllegalStateException.class, sgd::step);
            assertTrue(e.getMessage().contains("conv1.weight") && e.getMessage().contains("zeroGrad"), e.getMessage());
            sgd.zeroGrad(); // binds the gradients again
            sgd.step();
            // Module.to moves every parameter to new storage (set_data): gradshape would update the old one
            net.to(torch.ScalarType.Double, false);
            e = assertThrows(IllegalStateException.class, sgd::step);
            assertTrue(e.getMessage().contains("conv1.weight") && e.getMessage().contains("moved"), e.getMessage());
        }
        sgdClosedIsAnError(new TestNet());
    }

    private static void sgdClosedIsAnError(TestNet net) {
        GradshapeSgd sgd = GradshapeSgd.builder(net).build();
        sgd.close();
        sgd.close();
        assertThrows(IllegalStateException.class, sgd::step);
    }

    @Test
    void rejectsParametersGradshapeCannotStepInPlace() {
        TestNet net = new TestNet();
        net.to(torch.ScalarType.Double, false);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GradshapeSgd.builder(net).build());
        assertTrue(e.getMessage().contains("conv1.weight") && e.getMessage().contains("float32"), e.getMessage());
        TestNet ok = new TestNet();
        assertThrows(IllegalArgumentException.class, () -> GradshapeSgd.builder(ok).lr(Double.NaN).build());
        assertThrows(IllegalArgumentException.class, () -> GradshapeSgd.builder(ok).momentum(-1).build());
    }

    /** A libtorch scheduler stepping a (never stepped) libtorch optimizer drives gradshape's rate. */
    @Test
    void followsALibtorchLearningRateScheduler() {
        torch.manual_seed(2);
        TestNet net = new TestNet();
        SGD holder = new SGD(net.parameters(), new SGDOptions(0.4));
        StepLR schedule = new StepLR(holder, 2, 0.5);
        try (GradshapeSgd sgd = GradshapeSgd.builder(net).learningRateFrom(holder).build()) {
            for (int epoch = 0; epoch < 6; epoch++) {
                sgd.step();
                double torchLr = holder.param_groups().get(0).options().get_lr();
                assertEquals((float) torchLr, sgd.learningRate(), 0, "lr in epoch " + epoch);
                schedule.step();
            }
            // libtorch's StepLR halves from its third step on (it counts from 0): 0.4 0.4 0.4 0.2 0.2 0.1
            assertEquals(0.1f, sgd.learningRate(), 0);
        }
    }
}
