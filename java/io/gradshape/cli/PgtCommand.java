package io.gradshape.cli;

import io.gradshape.PowerGrad;
import io.gradshape.io.NpyArray;
import java.nio.file.Path;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code gradshape pgt}: the PowerGrad gradient and the cross-entropy loss of logits. */
@Command(name = "pgt",
        header = "PowerGrad gradient softmax(alpha z) - q and the cross-entropy loss of logits (SPEC section 3)",
        description = {
            "Writes DIR/grad.npy [B][C] (dL/dz, divided by the rows counted for mean) and DIR/loss.npy (float32):",
            "a scalar () for mean and sum, [B] for none (0 for ignored rows). The loss is the ordinary cross",
            "entropy -sum q log softmax(z); with mean and every row ignored it is 0. Give exactly one of",
            "--labels (class indices y[B], int32 or int64) and --targets (probability rows q[B][C]).",
            "alpha = 1 is plain softmax cross entropy. See docs/power_grad.md."})
final class PgtCommand extends KernelCommand {
    @Option(names = "--logits", required = true, paramLabel = "FILE", converter = OptionValues.FileName.class,
            description = "logits z[B][C], .npy")
    Path logitsFile;

    @Option(names = "--labels", paramLabel = "FILE", converter = OptionValues.FileName.class,
            description = {"class indices y[B], .npy (int32 or int64):", "each in [0, C) or the ignore index"})
    Path labelsFile;

    @Option(names = "--targets", paramLabel = "FILE", converter = OptionValues.FileName.class,
            description = "probability rows q[B][C], .npy, each summing to 1 (e.g. one-hot)")
    Path targetsFile;

    @Option(names = "--alpha", required = true, paramLabel = "X", converter = OptionValues.Float32.class,
            description = {"the PowerGrad exponent, >= 0 (1: plain cross entropy;",
                "the paper uses 0.25 for ResNet-18, 0.3 for ResNet-50)"})
    float alpha;

    @Option(names = "--smoothing", paramLabel = "X", defaultValue = "0", converter = OptionValues.Float32.class,
            description = {"label smoothing epsilon in [0, 1]:", "q = (1 - epsilon) q + epsilon / C"})
    float smoothing;

    @Option(names = "--reduction", paramLabel = "mean|sum|none", defaultValue = "mean",
            description = {"how rows combine: mean over the rows counted, sum,", "or none (one loss per row)"})
    PowerGrad.Reduction reduction;

    @Option(names = "--ignore-index", paramLabel = "N", defaultValue = "" + PowerGrad.Options.DEFAULT_IGNORE_INDEX,
            converter = OptionValues.Int.class,
            description = {"rows whose label is N get no loss, a zero gradient row, and do not", "count (with --labels only)"})
    int ignoreIndex;

    @Option(names = "--out", required = true, paramLabel = "DIR", converter = OptionValues.FileName.class,
            description = "output folder (created; written all or nothing)")
    Path out;

    @Override
    int run(Terminal terminal) throws Exception {
        boolean labelled = labelsFile != null;
        if (labelled == (targetsFile != null)) {
            throw usage(labelled ? "--labels and --targets cannot be combined: give one of them"
                    : "give --labels (class indices) or --targets (probability rows)");
        }
        if (!labelled && given("--ignore-index")) {
            throw usage("--ignore-index applies only with --labels (probability targets count every row)");
        }
        check(alpha >= 0, "--alpha", "must be >= 0");
        check(smoothing >= 0 && smoothing <= 1, "--smoothing", "must be in [0, 1]");
        PowerGrad.Options options = PowerGrad.Options.of(alpha).withSmoothing(smoothing).withReduction(reduction)
                .withIgnoreIndex(ignoreIndex);
        OutputDir results = OutputDir.prepare(out, "grad.npy", "loss.npy");

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
            targets = Inputs.float32(targetsFile);
            Inputs.requireShape(targetsFile, targets, z.shape(), "the shape of " + logitsFile);
            float[] q = targets.floats();
            for (int i = 0; i < q.length; i++) {
                // NaN or infinity here would give a NaN loss and gradient without an error
                if (!Float.isFinite(q[i])) {
                    throw new InputException(targetsFile + ": q[" + i / classes + "][" + i % classes + "] is " + q[i]
                            + "; targets must be finite");
                }
            }
        }

        float[] grad = new float[logits.length];
        PowerGrad.Result r = labelled
                ? PowerGrad.compute(common.backend(), logits, rows, classes, labels, options, grad)
                : PowerGrad.computeWithTargets(common.backend(), logits, rows, classes, targets.floats(), options, grad);

        terminal.out().println("loss " + r.loss() + " (" + OptionValues.Word.of(reduction)
                + (reduction == PowerGrad.Reduction.NONE ? ": the sum of the row losses" : "") + "), " + r.countedRows()
                + " of " + rows + " rows counted");
        results.add("grad.npy", NpyArray.of(grad, rows, classes))
                .add("loss.npy", reduction == PowerGrad.Reduction.NONE ? NpyArray.of(r.rowLosses(), rows)
                        : NpyArray.of(new float[] {(float) r.loss()}))
                .commit(terminal.out());
        return Main.EXIT_OK;
    }
}
