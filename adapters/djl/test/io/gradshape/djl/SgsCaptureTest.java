package io.gradshape.djl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.training.ParameterStore;
import io.gradshape.Backends;
import io.gradshape.Memory;
import io.gradshape.SgsRefresh;
import io.gradshape.SgsSchedule;
import io.gradshape.SpatialDependence;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The capture's G against SpatialDependence.compute on the same conv inputs, taken by DJL itself. */
class SgsCaptureTest {
    @Test
    void gEqualsSpatialDependenceOnTheSameInputs() {
        long seed = System.nanoTime();
        int batch = 8;
        try (NDManager manager = NDManager.newBaseManager()) {
            SequentialBlock block = TestNets.initialized(manager, seed, batch);
            Random random = new Random(seed);
            NDArray x1 = TestNets.images(manager, random, batch);
            NDArray x2 = TestNets.images(manager, random, 5); // batches of different sizes merge exactly too
            try (SgsCapture capture = SgsCapture.of(block, new SgsSchedule(5, 2, 1))) {
                List<SgsRefresh.Conv> convs = capture.convs();
                assertEquals(List.of(new SgsRefresh.Conv("01Conv2d", 3, 3, 1, 1), new SgsRefresh.Conv("03Conv2d", 3, 3, 1, 1)), convs);
                assertEquals(false, capture.dueAt(0));
                assertEquals(true, capture.dueAt(1));
                capture.observe(new NDList(x1));
                capture.observe(new NDList(x2));
                List<SgsRefresh.Update> updates = capture.refresh();
                // The oracle: each child's output from DJL's own forward (returnIntermediate), concatenated.
                block.setReturnIntermediate(true);
                ParameterStore store = new ParameterStore(manager, false);
                NDList all1 = block.forward(store, new NDList(x1), false);
                NDList all2 = block.forward(store, new NDList(x2), false);
                block.setReturnIntermediate(false);
                NDArray[] inputs = {
                    x1.concat(x2, 0),
                    all1.get(1).concat(all2.get(1), 0) // conv 2's input: the ReLU after conv 1
                };
                for (int c = 0; c < 2; c++) {
                    Shape s = inputs[c].getShape();
                    SpatialDependence.Result r = SpatialDependence.compute(Backends.cpu(), Memory.of(inputs[c].toFloatArray()),
                            (int) s.get(0), (int) s.get(1), (int) s.get(2), (int) s.get(3),
                            SpatialDependence.Options.defaults().kernel(3, 3).padding(1, 1));
                    float[] expected = r.g();
                    float[] got = capture.g(c);
                    assertEquals(false, updates.get(c).keptPrevious(), updates.get(c).reason());
                    for (int i = 0; i < 9; i++) {
                        assertEquals(expected[i], got[i], 1e-6 * Math.abs(expected[i]),
                                convs.get(c).name() + " G[" + i + "], seed " + seed);
                    }
                    assertTrue(Math.abs(got[4] - 1) > 1e-3, "G is not all ones, seed " + seed);
                }
                assertTrue(capture.nanosSpent() > 0);
            }
        }
    }

    @Test
    void aConstantInputKeepsThePreviousGAndSaysSo() {
        try (NDManager manager = NDManager.newBaseManager()) {
            SequentialBlock block = TestNets.initialized(manager, 7, 4);
            try (SgsCapture capture = SgsCapture.of(block, SgsSchedule.defaults())) {
                // all zeros, padding included: every pair in one cell, H(P,Q) = 0, NMI NaN
                capture.observe(new NDList(manager.zeros(new Shape(4, 1, TestNets.SIDE, TestNets.SIDE))));
                List<SgsRefresh.Update> u = capture.refresh();
                assertTrue(u.get(0).keptPrevious(), "a blank image has no spread: " + u.get(0));
                assertTrue(u.get(0).reason().contains("01Conv2d"), u.get(0).reason());
                for (float v : capture.g(0)) {
                    assertEquals(1f, v);
                }
            }
        }
    }

    @Test
    void refusesConvsItCannotReach() {
        try (NDManager manager = NDManager.newBaseManager()) {
            ParallelBlock parallel = new ParallelBlock(l -> new NDList(l.get(0).head().add(l.get(1).head())), List.of(
                    Conv2d.builder().setKernelShape(new Shape(3, 3)).optPadding(new Shape(1, 1)).setFilters(2).build(),
                    Conv2d.builder().setKernelShape(new Shape(1, 1)).setFilters(2).build()));
            SequentialBlock residual = new SequentialBlock().add(parallel).add(Activation::relu);
            residual.initialize(manager, DataType.FLOAT32, new Shape(1, 1, 6, 6));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> SgsCapture.of(residual, SgsSchedule.defaults()));
            assertTrue(e.getMessage().contains("not a SequentialBlock"), e.getMessage());
            SequentialBlock onlyPointwise = new SequentialBlock().add(Conv2d.builder().setKernelShape(new Shape(1, 1)).setFilters(2).build());
            onlyPointwise.initialize(manager, DataType.FLOAT32, new Shape(1, 1, 6, 6));
            assertThrows(IllegalArgumentException.class, () -> SgsCapture.of(onlyPointwise, SgsSchedule.defaults()));
        }
    }
}
