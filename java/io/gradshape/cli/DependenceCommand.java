package io.gradshape.cli;

import io.gradshape.SpatialDependence;
import io.gradshape.io.Npy;
import io.gradshape.io.NpyArray;
import java.nio.file.Path;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code gradshape dependence}: per-channel NMI, S and G of one convolution's input feature map. */
@Command(name = "dependence",
        header = "spatial dependence of a feature map: per-channel NMI, S and G (SGS)",
        description = {
            "Writes DIR/nmi.npy [C][kh][kw] (raw NMI per channel, before T_k), DIR/S.npy and DIR/G.npy",
            "[kh][kw] (float32). The defaults reproduce the reference code (Sturges bins, one range per",
            "pair set, zeros kept, k = 5, T_k per channel then the NaN-mean). See docs/spatial_dependence.md."})
final class DependenceCommand extends KernelCommand {
    /** Largest kernel size per axis: the library's limit (far above any convolution trained today). */
    static final int MAX_KERNEL = io.gradshape.SpatialDependence.MAX_KERNEL;
    /** The kernels index one padded plane with 32-bit integers: (H + 2 PH)(W + 2 PW) must fit. */
    static final long MAX_PLANE = Integer.MAX_VALUE;

    @Option(names = "--input", required = true, paramLabel = "FILE", converter = OptionValues.FileName.class,
            description = "the convolution's input feature map, .npy [N][C][H][W] (or [N][H][W][C] with --layout nhwc)")
    Path input;

    @Option(names = "--kernel", paramLabel = "KHxKW", defaultValue = "3x3", converter = OptionValues.Kernel.class,
            description = "kernel size, both odd and >= 3")
    OptionValues.KernelSize kernel;

    @Option(names = "--padding", paramLabel = "PH,PW", converter = OptionValues.Pair.class,
            description = "the convolution's zero padding (default: (k-1)/2 per axis)")
    OptionValues.IntPair padding;

    @Option(names = "--bins", paramLabel = "sturges|N", defaultValue = "sturges",
            description = "bins per axis: Sturges' rule per pair set, or a fixed 2..256")
    String bins;

    @Option(names = "--range", paramLabel = "pairs|channel|LO,HI", defaultValue = "pairs",
            description = {"value range of the bins: per pair set (reference),", "per channel (one pass), or fixed"})
    String range;

    @Option(names = "--remove-zeros", description = "drop pairs with a zero and ignore the diagonal (ReLU inputs)")
    boolean removeZeros;

    @Option(names = "--k", paramLabel = "K", defaultValue = "5", converter = OptionValues.Float32.class,
            description = "the T_k transform, k >= 1 (1 = identity)")
    float k;

    @Option(names = "--order", paramLabel = "reference|paper", defaultValue = "reference",
            description = "T_k per channel then mean (reference), or mean then T_k (paper)")
    SpatialDependence.Order order;

    @Option(names = "--layout", paramLabel = "nchw|nhwc", defaultValue = "nchw", description = "memory layout of the input")
    SpatialDependence.Layout layout;

    @Option(names = "--out", required = true, paramLabel = "DIR", converter = OptionValues.FileName.class,
            description = "output folder (created; written all or nothing)")
    Path out;

    @Override
    int run(Terminal terminal) throws Exception {
        check(kernel.height() >= 3 && kernel.width() >= 3 && kernel.height() % 2 == 1 && kernel.width() % 2 == 1,
                "--kernel", "must have both sizes odd and >= 3");
        check(kernel.height() <= MAX_KERNEL && kernel.width() <= MAX_KERNEL, "--kernel", "is too large: at most "
                + MAX_KERNEL + " per axis");
        SpatialDependence.Options options = SpatialDependence.Options.defaults().kernel(kernel.height(), kernel.width());
        OptionValues.IntPair pad = padding != null ? padding
                : new OptionValues.IntPair((kernel.height() - 1) / 2, (kernel.width() - 1) / 2);
        check(pad.first() >= 0 && pad.second() >= 0, "--padding", "must be two integers >= 0");
        // Even a 1x1 map padded this much is too large: refused before the input is read.
        checkPlane(pad, 1, 1, "is too large");
        options = options.padding(pad.first(), pad.second());

        if (!bins.equals("sturges")) {
            int b = number("--bins", bins, "must be 'sturges' or an integer from 2 to " + SpatialDependence.MAX_BINS);
            check(b >= 2 && b <= SpatialDependence.MAX_BINS, "--bins",
                    "must be 'sturges' or an integer from 2 to " + SpatialDependence.MAX_BINS);
            options = options.bins(b);
        }
        switch (range) {
            case "pairs" -> options = options.range(SpatialDependence.RangeMode.PAIRS);
            case "channel" -> options = options.range(SpatialDependence.RangeMode.CHANNEL);
            default -> {
                OptionValues.Range r;
                try {
                    r = new OptionValues.ValueRange().convert(range);
                } catch (picocli.CommandLine.TypeConversionException e) {
                    throw invalid("--range", e.getMessage() + " (expected pairs|channel|LO,HI)");
                }
                check(Math.abs(r.lo()) <= Float.MAX_VALUE && Math.abs(r.hi()) <= Float.MAX_VALUE, "--range",
                        "is out of range for float32");
                check((float) r.lo() < (float) r.hi(), "--range", "is not a range in float32: LO and HI round to the same value");
                options = options.fixedRange((float) r.lo(), (float) r.hi());
            }
        }
        check(Float.isFinite(k) && k >= 1, "--k", "must be a number >= 1");
        options = options.removeZeros(removeZeros).k(k).order(order).layout(layout);

        OutputDir results = OutputDir.prepare(out, "nmi.npy", "S.npy", "G.npy");
        boolean nhwc = layout == SpatialDependence.Layout.NHWC;
        NpyArray x = Inputs.float32(input, nhwc ? "[N][H][W][C]" : "[N][C][H][W]");
        int n = x.dim(0);
        int c = nhwc ? x.dim(3) : x.dim(1);
        int h = nhwc ? x.dim(1) : x.dim(2);
        int w = nhwc ? x.dim(2) : x.dim(3);
        if ((long) n * c * h * w == 0) {
            throw new InputException(input + ": empty feature map " + x.shapeString());
        }
        checkPlane(pad, h, w, "is too large for the " + h + "x" + w + " maps of " + input);
        // nmi.npy holds C x kh x kw floats: one Java array.
        check((long) c * kernel.height() * kernel.width() <= Npy.MAX_ELEMENTS, "--kernel", "is too large for the " + c
                + " channels of " + input + ": nmi.npy [C][kh][kw] would exceed " + Npy.MAX_ELEMENTS + " elements");
        SpatialDependence.Result r = SpatialDependence.compute(common.backend(), x.memory(), n, c, h, w, options);

        terminal.out().print(r);
        if (r.gKeptPrevious()) {
            terminal.out().println("note: S has entries that are NaN for every channel (dead or constant channels): G is all ones");
        }
        results.add("nmi.npy", NpyArray.of(r.nmi(), c, options.kernelH(), options.kernelW()))
                .add("S.npy", NpyArray.of(r.s(), options.kernelH(), options.kernelW()))
                .add("G.npy", NpyArray.of(r.g(), options.kernelH(), options.kernelW()))
                .commit(terminal.out());
        return Main.EXIT_OK;
    }

    /** Refuses a padding whose padded h x w plane the kernels cannot index. */
    private void checkPlane(OptionValues.IntPair pad, int h, int w, String expectation) {
        long hp = h + 2L * pad.first();
        long wp = w + 2L * pad.second();
        // Each side checked first: both below 2^31, their product cannot overflow a long.
        check(hp <= MAX_PLANE && wp <= MAX_PLANE && hp * wp <= MAX_PLANE, "--padding", expectation + ": the padded map "
                + hp + " x " + wp + " exceeds 2^31 - 1 positions");
    }

    private int number(String name, String value, String expectation) {
        try {
            return OptionValues.integer(value);
        } catch (picocli.CommandLine.TypeConversionException e) {
            throw invalid(name, e.getMessage().equals("is not an integer") ? "is not an integer (expected sturges|N)" : expectation);
        }
    }
}
