package io.gradshape;

/**
 * SPEC.md section 2 in float64, written from the text (torch.optim.SGD on the pre-scaled gradient), one
 * tensor at a time. State (weights, momentum buffer) is carried across steps; the momentum buffer is
 * null until the first step creates it, as in PyTorch.
 */
final class ScaledSgdOracle {
    double lr;
    final double momentum;
    final double dampening;
    final double weightDecay;
    final boolean nesterov;
    final boolean maximize;

    ScaledSgdOracle(double lr, double momentum, double dampening, double weightDecay, boolean nesterov, boolean maximize) {
        this.lr = lr;
        this.momentum = momentum;
        this.dampening = dampening;
        this.weightDecay = weightDecay;
        this.nesterov = nesterov;
        this.maximize = maximize;
    }

    /** One parameter tensor. {@code scale} is null for a tensor without a kernel. */
    static final class Tensor {
        final double[] w;
        double[] buf;
        double[] scale;
        final ScaledSgd.Layout layout;
        final long channels; // HWIO: Cin * Cout
        final boolean decay;

        Tensor(float[] w, double[] scale, ScaledSgd.Layout layout, long channels, boolean decay) {
            this.w = new double[w.length];
            for (int i = 0; i < w.length; i++) {
                this.w[i] = w[i];
            }
            this.scale = scale;
            this.layout = layout;
            this.channels = channels;
            this.decay = decay;
        }

        /** Kernel position of element i: OIHW i mod (kh*kw), HWIO i / (Cin*Cout). */
        int position(int i) {
            return layout == ScaledSgd.Layout.HWIO ? (int) (i / channels) : i % scale.length;
        }
    }

    /** One step of one tensor with gradient g (float32, as the kernel reads it) and unscale factor. */
    void step(Tensor t, float[] g, double unscale) {
        boolean first = t.buf == null;
        if (momentum != 0 && first) {
            t.buf = new double[t.w.length];
        }
        for (int i = 0; i < t.w.length; i++) {
            double d = g[i] * unscale;                     // mixed-precision unscaling first
            if (t.scale != null) {
                d = t.scale[t.position(i)] * d;            // d = G . g
            }
            if (maximize) {
                d = -d;                                    // torch.optim.SGD: negate first, before decay and momentum
            }
            if (t.decay && weightDecay != 0) {
                d += weightDecay * t.w[i];                 // decay after scaling, not scaled
            }
            if (momentum != 0) {
                t.buf[i] = first ? d : momentum * t.buf[i] + (1 - dampening) * d;
                d = nesterov ? d + momentum * t.buf[i] : t.buf[i];
            }
            t.w[i] -= lr * d;                              // maximize too: decay still shrinks w
        }
    }
}
