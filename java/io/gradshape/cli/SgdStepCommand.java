package io.gradshape.cli;

import io.gradshape.Backend;
import io.gradshape.OwnedBuffer;
import io.gradshape.ScaledSgd;
import io.gradshape.Streams;
import io.gradshape.io.NpyArray;
import java.nio.file.Path;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code gradshape sgd-step}: one {@code torch.optim.SGD} step on the G-scaled gradient of one tensor. */
@Command(name = "sgd-step",
        header = "one SGD step (torch.optim.SGD semantics) on the gradient scaled by G (SPEC section 2)",
        description = {
            "Writes DIR/weights.npy and, with --momentum > 0, DIR/momentum.npy (the momentum buffer after the",
            "step), float32 in the shape of the weights. Without --momentum no buffer exists (as in PyTorch):",
            "momentum.npy is not written, and one left in DIR by an earlier run is removed. Without",
            "--momentum-buffer the step is the first one (buffer = d); with it the step continues that buffer,",
            "so a second sgd-step fed the first one's outputs equals two steps of one optimizer. --scale G.npy",
            "[kh][kw] makes the weights a conv weight: OIHW [Cout][Cin][kh][kw] or HWIO [kh][kw][Cin][Cout];",
            "without it d = g. See docs/scaled_sgd.md."})
final class SgdStepCommand extends KernelCommand {
    @Option(names = "--weights", required = true, paramLabel = "FILE", converter = OptionValues.FileName.class,
            description = "the parameter tensor w, .npy (any shape; 4-D with --scale)")
    Path weightsFile;

    @Option(names = "--grads", required = true, paramLabel = "FILE", converter = OptionValues.FileName.class,
            description = "its gradient g, .npy, the shape of the weights")
    Path gradsFile;

    @Option(names = "--momentum-buffer", paramLabel = "FILE", converter = OptionValues.FileName.class,
            description = {"the momentum buffer of the previous step, .npy, the shape",
                "of the weights (needs --momentum > 0); default: this is the first step"})
    Path bufferFile;

    @Option(names = "--scale", paramLabel = "FILE", converter = OptionValues.FileName.class,
            description = "the SGS scale G [kh][kw], .npy: the gradient is multiplied by it")
    Path scaleFile;

    @Option(names = "--layout", paramLabel = "oihw|hwio", defaultValue = "oihw",
            description = {"where the kernel axes of the weights are (with --scale):",
                "oihw [Cout][Cin][kh][kw], hwio [kh][kw][Cin][Cout]"})
    ScaledSgd.Layout layout;

    @Option(names = "--lr", required = true, paramLabel = "X", converter = OptionValues.Float32.class,
            description = "learning rate, >= 0")
    float lr;

    @Option(names = "--momentum", paramLabel = "X", defaultValue = "0", converter = OptionValues.Float32.class,
            description = "momentum factor, >= 0 (0: no momentum buffer)")
    float momentum;

    @Option(names = "--dampening", paramLabel = "X", defaultValue = "0", converter = OptionValues.Float32.class,
            description = "dampening of the momentum")
    float dampening;

    @Option(names = "--weight-decay", paramLabel = "X", defaultValue = "0", converter = OptionValues.Float32.class,
            description = "L2 penalty, >= 0, added after the scaling (not scaled by G)")
    float weightDecay;

    @Option(names = "--nesterov", description = "Nesterov momentum (needs --momentum > 0 and --dampening 0)")
    boolean nesterov;

    @Option(names = "--maximize", description = "maximize the objective: w += lr * d")
    boolean maximize;

    @Option(names = "--out", required = true, paramLabel = "DIR", converter = OptionValues.FileName.class,
            description = "output folder (created; written all or nothing)")
    Path out;

    @Override
    int run(Terminal terminal) throws Exception {
        check(lr >= 0, "--lr", "must be >= 0");
        check(momentum >= 0, "--momentum", "must be >= 0");
        check(weightDecay >= 0, "--weight-decay", "must be >= 0");
        if (nesterov && momentum == 0) {
            throw usage("--nesterov needs --momentum > 0, as in torch.optim.SGD");
        }
        if (nesterov && dampening != 0) {
            throw invalid("--dampening", "must be 0 with --nesterov (as in torch.optim.SGD)");
        }
        boolean resuming = bufferFile != null;
        if (resuming && momentum == 0) {
            throw usage("--momentum-buffer needs --momentum > 0 (without momentum no buffer is kept)");
        }
        boolean scaled = scaleFile != null;
        if (given("--layout") && !scaled) {
            throw usage("--layout applies only with --scale (it says where the kernel axes of the weights are)");
        }
        String layoutName = OptionValues.Word.of(layout);

        OutputDir results = OutputDir.prepare(out, "weights.npy", "momentum.npy");
        NpyArray w = scaled
                ? Inputs.float32(weightsFile, layout == ScaledSgd.Layout.OIHW ? "[Cout][Cin][kh][kw]" : "[kh][kw][Cin][Cout]")
                : Inputs.float32(weightsFile);
        if (w.size() == 0) {
            throw new InputException(weightsFile + ": no elements to update " + w.shapeString());
        }
        NpyArray g = Inputs.float32(gradsFile);
        Inputs.requireShape(gradsFile, g, w.shape(), "the shape of " + weightsFile);
        NpyArray buffer = null;
        if (resuming) {
            buffer = Inputs.float32(bufferFile);
            Inputs.requireShape(bufferFile, buffer, w.shape(), "the shape of " + weightsFile);
        }
        ScaledSgd.Kernel kernel = null;
        float[] scale = null;
        if (scaled) {
            long[] shape = new long[4];
            for (int i = 0; i < 4; i++) {
                shape[i] = w.dim(i);
            }
            kernel = ScaledSgd.Kernel.ofWeightShape(layout, shape);
            NpyArray s = Inputs.float32(scaleFile);
            Inputs.requireShape(scaleFile, s, new int[] {kernel.height(), kernel.width()},
                    "the " + kernel.height() + "x" + kernel.width() + " kernel of " + weightsFile + " in " + layoutName);
            scale = s.floats();
            for (int i = 0; i < scale.length; i++) {
                if (!Float.isFinite(scale[i])) {
                    throw new InputException(scaleFile + ": G[" + i / kernel.width() + "][" + i % kernel.width() + "] is "
                            + scale[i] + "; the scale must be finite");
                }
            }
        }

        Backend backend = common.backend();
        float[] newWeights;
        float[] newBuffer = null;
        // The optimizer keeps the addresses of its tensors: it takes native memory, not Java arrays.
        // The momentum buffer is ours rather than the optimizer's, to read it back the same way as the
        // weights; on a first step its contents do not matter (the step sets it to d). Without
        // momentum there is none (a null resource is skipped).
        try (OwnedBuffer wb = BackendBuffers.upload(backend, w.floats());
                OwnedBuffer gb = BackendBuffers.upload(backend, g.floats());
                OwnedBuffer mb = momentum == 0 ? null
                        : BackendBuffers.upload(backend, buffer != null ? buffer.floats() : new float[w.size()])) {
            ScaledSgd.Parameter p = ScaledSgd.Parameter.of(wb.memory(), gb.memory());
            if (mb != null) {
                p = p.withMomentumBuffer(mb.memory());
            }
            if (kernel != null) {
                p = p.withKernel(kernel);
            }
            try (ScaledSgd sgd = ScaledSgd.builder(backend).lr(lr).momentum(momentum).dampening(dampening)
                    .weightDecay(weightDecay).nesterov(nesterov).maximize(maximize)
                    // A given buffer is history: the step continues it, as PyTorch does when its state holds one.
                    .initialStepCount(resuming ? 1 : 0)
                    .addParameter(p).build()) {
                if (scale != null) {
                    sgd.setScale(0, scale);
                }
                sgd.step();
                backend.synchronize(Streams.DEFAULT);
                newWeights = wb.toFloatArray();
                if (mb != null) {
                    newBuffer = mb.toFloatArray();
                }
            }
        }

        String scaleNote = kernel == null ? "" : ", scale G " + kernel.height() + "x" + kernel.width() + " (" + layoutName + ")";
        terminal.out().println("sgd-step: " + w.size() + " elements" + scaleNote
                + (momentum == 0 ? ", no momentum" : resuming ? ", continuing the momentum buffer" : ", first step (buffer = d)")
                + " on " + backend.description());
        results.add("weights.npy", NpyArray.of(newWeights, w.shape()));
        if (newBuffer != null) {
            results.add("momentum.npy", NpyArray.of(newBuffer, w.shape()));
        }
        results.commit(terminal.out());
        return Main.EXIT_OK;
    }
}
