package io.gradshape.cli;

import io.gradshape.SpatialDependence;
import io.gradshape.io.NpyArray;
import java.nio.file.Path;
import java.util.List;

/** {@code gradshape dependence}: per-channel NMI, S and G of one convolution's input feature map. */
final class DependenceCommand implements Command {
    @Override
    public String name() {
        return "dependence";
    }

    @Override
    public String summary() {
        return "spatial dependence of a feature map: per-channel NMI, S and G (SGS)";
    }

    @Override
    public String details() {
        return "Writes DIR/nmi.npy [C][kh][kw] (raw NMI per channel, before T_k), DIR/S.npy and DIR/G.npy\n"
                + "[kh][kw] (float32). The defaults reproduce the reference code (Sturges bins, one range per\n"
                + "pair set, zeros kept, k = 5, T_k per channel then the NaN-mean). See docs/spatial_dependence.md.\n";
    }

    @Override
    public List<Option> options() {
        return List.of(
                Option.required("input", "FILE", "the convolution's input feature map, .npy [N][C][H][W] (or [N][H][W][C] with --layout nhwc)"),
                Option.optional("kernel", "KHxKW", "kernel size, both odd and >= 3", "3x3"),
                Option.optional("padding", "PH,PW", "the convolution's zero padding (default: (k-1)/2 per axis)", null),
                Option.optional("bins", "sturges|N", "bins per axis: Sturges' rule per pair set, or a fixed 2..256", "sturges"),
                Option.optional("range", "pairs|channel|LO,HI", "value range of the bins: per pair set (reference),\nper channel (one pass), or fixed", "pairs"),
                Option.flag("remove-zeros", "drop pairs with a zero and ignore the diagonal (ReLU inputs)"),
                Option.optional("k", "K", "the T_k transform, k >= 1 (1 = identity)", "5"),
                Option.choice("order", "T_k per channel then mean (reference), or mean then T_k (paper)", "reference", "reference", "paper"),
                Option.choice("layout", "memory layout of the input", "nchw", "nchw", "nhwc"),
                Option.required("out", "DIR", "output folder (created)"));
    }

    @Override
    public int run(Args args, Terminal terminal) throws Exception {
        Args.KernelSize kernel = args.kernelSize("kernel");
        SpatialDependence.Options options = SpatialDependence.Options.defaults();
        try {
            options = options.kernel(kernel.height(), kernel.width());
        } catch (IllegalArgumentException e) {
            throw args.invalid("kernel", "must have both sizes odd and >= 3");
        }
        Args.IntPair padding = args.has("padding") ? args.intPair("padding")
                : new Args.IntPair((kernel.height() - 1) / 2, (kernel.width() - 1) / 2);
        args.check(padding.first() >= 0 && padding.second() >= 0, "padding", "must be two integers >= 0");
        options = options.padding(padding.first(), padding.second());

        String bins = args.string("bins");
        if (!bins.equals("sturges")) {
            int b = args.intValue("bins");
            args.check(b >= 2 && b <= SpatialDependence.MAX_BINS, "bins", "must be 'sturges' or an integer from 2 to " + SpatialDependence.MAX_BINS);
            options = options.bins(b);
        }
        switch (args.string("range")) {
            case "pairs" -> options = options.range(SpatialDependence.RangeMode.PAIRS);
            case "channel" -> options = options.range(SpatialDependence.RangeMode.CHANNEL);
            default -> {
                Args.Range r = args.range("range");
                options = options.fixedRange((float) r.lo(), (float) r.hi());
            }
        }
        float k = args.floatValue("k");
        args.check(Float.isFinite(k) && k >= 1, "k", "must be a number >= 1");
        options = options.removeZeros(args.flag("remove-zeros")).k(k)
                .order(args.string("order").equals("paper") ? SpatialDependence.Order.PAPER : SpatialDependence.Order.REFERENCE)
                .layout(args.string("layout").equals("nhwc") ? SpatialDependence.Layout.NHWC : SpatialDependence.Layout.NCHW);

        Path inputFile = args.path("input");
        boolean nhwc = options.layout() == SpatialDependence.Layout.NHWC;
        NpyArray x = Inputs.float32(inputFile, nhwc ? "[N][H][W][C]" : "[N][C][H][W]");
        int n = x.dim(0);
        int c = nhwc ? x.dim(3) : x.dim(1);
        int h = nhwc ? x.dim(1) : x.dim(2);
        int w = nhwc ? x.dim(2) : x.dim(3);
        if ((long) n * c * h * w == 0) {
            throw new InputException(inputFile + ": empty feature map " + x.shapeString());
        }
        SpatialDependence.Result r = SpatialDependence.compute(args.backend(), x.memory(), n, c, h, w, options);

        terminal.out().print(r);
        if (r.gKeptPrevious()) {
            terminal.out().println("note: S has entries that are NaN for every channel (dead or constant channels): G is all ones");
        }
        OutputDir out = OutputDir.create(args.path("out"), terminal.out());
        out.write("nmi.npy", NpyArray.of(r.nmi(), c, options.kernelH(), options.kernelW()));
        out.write("S.npy", NpyArray.of(r.s(), options.kernelH(), options.kernelW()));
        out.write("G.npy", NpyArray.of(r.g(), options.kernelH(), options.kernelW()));
        return Main.EXIT_OK;
    }
}
