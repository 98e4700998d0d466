package io.gradshape.cli;

import io.gradshape.PowerGrad;
import io.gradshape.io.NpyArray;
import java.nio.file.Path;
import java.util.List;

/** {@code gradshape pgt}: the PowerGrad gradient and the cross-entropy loss of logits. */
final class PgtCommand implements Command {
    @Override
    public String name() {
        return "pgt";
    }

    @Override
    public String summary() {
        return "PowerGrad gradient softmax(alpha z) - q and the cross-entropy loss of logits (SPEC section 3)";
    }

    @Override
    public String details() {
        return "Writes DIR/grad.npy [B][C] (dL/dz, divided by the rows counted for mean) and DIR/loss.npy (float32):\n"
                + "a scalar () for mean and sum, [B] for none (0 for ignored rows). The loss is the ordinary cross\n"
                + "entropy -sum q log softmax(z); with mean and every row ignored it is 0. Give exactly one of\n"
                + "--labels (class indices y[B], int32 or int64) and --targets (probability rows q[B][C]).\n"
                + "alpha = 1 is plain softmax cross entropy. See docs/power_grad.md.\n";
    }

    @Override
    public List<Option> options() {
        return List.of(
                Option.required("logits", "FILE", "logits z[B][C], .npy"),
                Option.optional("labels", "FILE", "class indices y[B], .npy (int32 or int64):\neach in [0, C) or the ignore index", null),
                Option.optional("targets", "FILE", "probability rows q[B][C], .npy, each summing to 1 (e.g. one-hot)", null),
                Option.required("alpha", "X", "the PowerGrad exponent, >= 0 (1: plain cross entropy;\nthe paper uses 0.25 for ResNet-18, 0.3 for ResNet-50)"),
                Option.optional("smoothing", "X", "label smoothing epsilon in [0, 1]:\nq = (1 - epsilon) q + epsilon / C", "0"),
                Option.choice("reduction", "how rows combine: mean over the rows counted, sum,\nor none (one loss per row)",
                        "mean", "mean", "sum", "none"),
                Option.optional("ignore-index", "N", "rows whose label is N get no loss, a zero gradient row, and do not\n"
                        + "count (with --labels only)", Integer.toString(PowerGrad.Options.DEFAULT_IGNORE_INDEX)),
                Option.required("out", "DIR", "output folder (created)"));
    }

    @Override
    public int run(Args args, Terminal terminal) throws Exception {
        boolean labelled = args.has("labels");
        if (labelled == args.has("targets")) {
            throw new UsageException(labelled ? "--labels and --targets cannot be combined: give one of them"
                    : "give --labels (class indices) or --targets (probability rows)");
        }
        if (!labelled && args.has("ignore-index")) {
            throw new UsageException("--ignore-index applies only with --labels (probability targets count every row)");
        }
        float alpha = args.floatValue("alpha");
        args.check(alpha >= 0, "alpha", "must be >= 0");
        float smoothing = args.floatValue("smoothing");
        args.check(smoothing >= 0 && smoothing <= 1, "smoothing", "must be in [0, 1]");
        int ignoreIndex = args.intValue("ignore-index");
        PowerGrad.Reduction reduction = switch (args.string("reduction")) {
            case "sum" -> PowerGrad.Reduction.SUM;
            case "none" -> PowerGrad.Reduction.NONE;
            default -> PowerGrad.Reduction.MEAN;
        };
        PowerGrad.Options options = PowerGrad.Options.of(alpha).withSmoothing(smoothing).withReduction(reduction)
                .withIgnoreIndex(ignoreIndex);

        Path logitsFile = args.path("logits");
        NpyArray z = Inputs.float32(logitsFile, "[B][C]");
        int rows = z.dim(0);
        int classes = z.dim(1);
        if (classes == 0) {
            throw new InputException(logitsFile + ": no classes " + z.shapeString());
        }
        float[] logits = z.floats();
        for (int i = 0; i < logits.length; i++) {
            if (!Float.isFinite(logits[i])) {
                throw new InputException(logitsFile + ": z[" + i / classes + "][" + i % classes + "] is " + logits[i]
                        + "; logits must be finite");
            }
        }
        int[] labels = null;
        NpyArray targets = null;
        if (labelled) {
            Path labelsFile = args.path("labels");
            NpyArray y = Inputs.int64(labelsFile);
            Inputs.requireShape(labelsFile, y, new int[] {rows}, "one label per row of " + logitsFile);
            long[] values = y.longs();
            labels = new int[rows];
            for (int i = 0; i < rows; i++) {
                long v = values[i];
                if ((v < 0 || v >= classes) && v != ignoreIndex) {
                    throw new InputException(labelsFile + ": y[" + i + "] = " + v + " is outside [0, " + classes
                            + ") and is not the ignore index " + ignoreIndex);
                }
                labels[i] = (int) v;
            }
        } else {
            Path targetsFile = args.path("targets");
            targets = Inputs.float32(targetsFile);
            Inputs.requireShape(targetsFile, targets, z.shape(), "the shape of " + logitsFile);
        }

        float[] grad = new float[logits.length];
        PowerGrad.Result r = labelled
                ? PowerGrad.compute(args.backend(), logits, rows, classes, labels, options, grad)
                : PowerGrad.computeWithTargets(args.backend(), logits, rows, classes, targets.floats(), options, grad);

        terminal.out().println("loss " + r.loss() + " (" + args.string("reduction")
                + (reduction == PowerGrad.Reduction.NONE ? ": the sum of the row losses" : "") + "), " + r.countedRows()
                + " of " + rows + " rows counted");
        OutputDir out = OutputDir.create(args.path("out"), terminal.out());
        out.write("grad.npy", NpyArray.of(grad, rows, classes));
        out.write("loss.npy", reduction == PowerGrad.Reduction.NONE ? NpyArray.of(r.rowLosses(), rows)
                : NpyArray.of(new float[] {(float) r.loss()}));
        return Main.EXIT_OK;
    }
}
