package io.gradshape.cli;

import io.gradshape.Backend;
import io.gradshape.OwnedBuffer;
import io.gradshape.ScaledSgd;
import io.gradshape.Streams;
import io.gradshape.io.NpyArray;
import java.nio.file.Path;
import java.util.List;

/** {@code gradshape sgd-step}: one {@code torch.optim.SGD} step on the G-scaled gradient of one tensor. */
final class SgdStepCommand implements Command {
    @Override
    public String name() {
        return "sgd-step";
    }

    @Override
    public String summary() {
        return "one SGD step (torch.optim.SGD semantics) on the gradient scaled by G (SPEC section 2)";
    }

    @Override
    public String details() {
        return "Writes DIR/weights.npy and, with --momentum > 0, DIR/momentum.npy (the momentum buffer after the\n"
                + "step), float32 in the shape of the weights. Without --momentum no buffer exists (as in PyTorch) and\n"
                + "momentum.npy is not written. Without --momentum-buffer the step is the first one (buffer = d);\n"
                + "with it the step continues that buffer, so a second sgd-step fed the first one's outputs equals\n"
                + "two steps of one optimizer. --scale G.npy [kh][kw] makes the weights a conv weight: OIHW\n"
                + "[Cout][Cin][kh][kw] or HWIO [kh][kw][Cin][Cout]; without it d = g. See docs/scaled_sgd.md.\n";
    }

    @Override
    public List<Option> options() {
        return List.of(
                Option.required("weights", "FILE", "the parameter tensor w, .npy (any shape; 4-D with --scale)"),
                Option.required("grads", "FILE", "its gradient g, .npy, the shape of the weights"),
                Option.optional("momentum-buffer", "FILE", "the momentum buffer of the previous step, .npy, the shape\n"
                        + "of the weights (needs --momentum > 0); default: this is the first step", null),
                Option.optional("scale", "FILE", "the SGS scale G [kh][kw], .npy: the gradient is multiplied by it", null),
                Option.choice("layout", "where the kernel axes of the weights are (with --scale):\noihw [Cout][Cin][kh][kw], hwio [kh][kw][Cin][Cout]",
                        "oihw", "oihw", "hwio"),
                Option.required("lr", "X", "learning rate, >= 0"),
                Option.optional("momentum", "X", "momentum factor, >= 0 (0: no momentum buffer)", "0"),
                Option.optional("dampening", "X", "dampening of the momentum", "0"),
                Option.optional("weight-decay", "X", "L2 penalty, >= 0, added after the scaling (not scaled by G)", "0"),
                Option.flag("nesterov", "Nesterov momentum (needs --momentum > 0 and --dampening 0)"),
                Option.flag("maximize", "maximize the objective: w += lr * d"),
                Option.required("out", "DIR", "output folder (created)"));
    }

    @Override
    public int run(Args args, Terminal terminal) throws Exception {
        float lr = args.floatValue("lr");
        args.check(lr >= 0, "lr", "must be >= 0");
        float momentum = args.floatValue("momentum");
        args.check(momentum >= 0, "momentum", "must be >= 0");
        float dampening = args.floatValue("dampening");
        float weightDecay = args.floatValue("weight-decay");
        args.check(weightDecay >= 0, "weight-decay", "must be >= 0");
        boolean nesterov = args.flag("nesterov");
        if (nesterov && momentum == 0) {
            throw new UsageException("--nesterov needs --momentum > 0, as in torch.optim.SGD");
        }
        if (nesterov && dampening != 0) {
            throw args.invalid("dampening", "must be 0 with --nesterov (as in torch.optim.SGD)");
        }
        boolean resuming = args.has("momentum-buffer");
        if (resuming && momentum == 0) {
            throw new UsageException("--momentum-buffer needs --momentum > 0 (without momentum no buffer is kept)");
        }
        boolean scaled = args.has("scale");
        if (args.has("layout") && !scaled) {
            throw new UsageException("--layout applies only with --scale (it says where the kernel axes of the weights are)");
        }
        ScaledSgd.Layout layout = args.string("layout").equals("hwio") ? ScaledSgd.Layout.HWIO : ScaledSgd.Layout.OIHW;

        Path weightsFile = args.path("weights");
        NpyArray w = scaled
                ? Inputs.float32(weightsFile, layout == ScaledSgd.Layout.OIHW ? "[Cout][Cin][kh][kw]" : "[kh][kw][Cin][Cout]")
                : Inputs.float32(weightsFile);
        if (w.size() == 0) {
            throw new InputException(weightsFile + ": no elements to update " + w.shapeString());
        }
        Path gradsFile = args.path("grads");
        NpyArray g = Inputs.float32(gradsFile);
        Inputs.requireShape(gradsFile, g, w.shape(), "the shape of " + weightsFile);
        NpyArray buffer = null;
        if (resuming) {
            Path bufferFile = args.path("momentum-buffer");
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
            Path scaleFile = args.path("scale");
            NpyArray s = Inputs.float32(scaleFile);
            Inputs.requireShape(scaleFile, s, new int[] {kernel.height(), kernel.width()},
                    "the " + kernel.height() + "x" + kernel.width() + " kernel of " + weightsFile + " in " + args.string("layout"));
            scale = s.floats();
            for (int i = 0; i < scale.length; i++) {
                if (!Float.isFinite(scale[i])) {
                    throw new InputException(scaleFile + ": G[" + i / kernel.width() + "][" + i % kernel.width() + "] is "
                            + scale[i] + "; the scale must be finite");
                }
            }
        }

        Backend backend = args.backend();
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
                    .weightDecay(weightDecay).nesterov(nesterov).maximize(args.flag("maximize"))
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

        String scaleNote = kernel == null ? "" : ", scale G " + kernel.height() + "x" + kernel.width() + " (" + args.string("layout") + ")";
        terminal.out().println("sgd-step: " + w.size() + " elements" + scaleNote
                + (momentum == 0 ? ", no momentum" : resuming ? ", continuing the momentum buffer" : ", first step (buffer = d)")
                + " on " + backend.description());
        OutputDir out = OutputDir.create(args.path("out"), terminal.out());
        out.write("weights.npy", NpyArray.of(newWeights, w.shape()));
        if (newBuffer != null) {
            out.write("momentum.npy", NpyArray.of(newBuffer, w.shape()));
        }
        return Main.EXIT_OK;
    }
}
