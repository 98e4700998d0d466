package io.gradshape.pytorch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.SgsSchedule;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The loop of docs/adapter-pytorch.md, as written there, with SGS and PGT on. */
class GradshapeTrainingTest {
    @BeforeAll
    static void warm() {
        TestNet.libtorch();
    }

    @Test
    void theDocumentedLoopTrainsWithSgsAndPgt() {
        long seed = 12;
        torch.manual_seed(seed);
        Random r = new Random(seed);
        TestNet net = new TestNet();
        int batch = 16, batches = 3, epochs = 4;
        float[][] x = new float[batches][];
        long[][] y = new long[batches][];
        for (int b = 0; b < batches; b++) {
            x[b] = TestNet.images(r, batch);
            y[b] = TestNet.labels(r, batch);
        }
        double first = Double.NaN, last = Double.NaN;
        try (GradshapeTraining gs = GradshapeTraining.builder(net).lr(0.05).momentum(0.9).weightDecay(5e-4)
                .sgs(new SgsSchedule(2, 1, 1)).powerGrad(0.5).build()) {
            for (int epoch = 0; epoch < epochs; epoch++) {
                try (PointerScope scope = new PointerScope()) {
                    List<Tensor> firstBatch = List.of(TestNet.tensor(x[0], batch, 1, TestNet.SIDE, TestNet.SIDE));
                    gs.beginEpoch(epoch, firstBatch, in -> net.forward(in, gs.sgs()));
                }
                for (int b = 0; b < batches; b++) {
                    try (PointerScope scope = new PointerScope()) {
                        Tensor in = TestNet.tensor(x[b], batch, 1, TestNet.SIDE, TestNet.SIDE);
                        gs.zeroGrad();
                        double loss = gs.backward(net.forward(in, gs.sgs()), Tensor.create(y[b], batch));
                        gs.step();
                        if (epoch == 0 && b == 0) {
                            first = loss;
                        }
                        if (b == 0) {
                            last = loss;
                        }
                    }
                }
            }
            assertEquals(2, gs.sgs().refreshes(), "refreshes at epochs 1 and 2");
            float[] ones = new float[9];
            Arrays.fill(ones, 1f);
            assertFalse(Arrays.equals(ones, gs.optimizer().scale("conv4.weight")));
            assertEquals(epochs * batches, gs.optimizer().stepCount());
            assertTrue(last < first, "loss on the first batch " + first + " -> " + last + " (seed " + seed + ")");
        }
    }

    @Test
    void withoutSgsTheInputPassesThroughAndBeginEpochDoesNothing() {
        TestNet net = new TestNet();
        try (GradshapeTraining gs = GradshapeTraining.builder(net).build()) {
            Tensor t = torch.zeros(1, 1, 4, 4);
            assertTrue(gs.input(net.conv1, t) == t);
            assertTrue(gs.beginEpoch(1, List.of(), in -> in).isEmpty());
            assertTrue(gs.sgs() == null);
            gs.close();
            assertThrows(IllegalStateException.class, gs::step);
        }
    }
}
