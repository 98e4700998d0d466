package io.gradshape;

/**
 * SPEC.md section 3 in float64, written from the formulas as they read, with no shortcut shared with
 * the kernels: p = softmax(z), p' = softmax(alpha z), q = (1 - eps) target + eps / C,
 * grad = scale (p' - q), loss = -sum q log p.
 */
final class PowerGradOracle {
    private PowerGradOracle() {}

    /** The exact results of one call. */
    static final class Out {
        final double[] grad;
        final double[] rowLoss;
        final double loss;
        final long counted;

        Out(double[] grad, double[] rowLoss, double loss, long counted) {
            this.grad = grad;
            this.rowLoss = rowLoss;
            this.loss = loss;
            this.counted = counted;
        }
    }

    /**
     * Exactly one of labels / targets is non-null; ignoreIndex null means none. Rows whose label is
     * the ignore index get gradient 0 and loss 0.
     */
    static Out compute(double[] logits, int rows, int classes, int[] labels, float[] targets, double alpha,
            double smoothing, PowerGrad.Reduction reduction, Integer ignoreIndex) {
        long counted = 0;
        for (int r = 0; r < rows; r++) {
            if (!ignored(labels, r, ignoreIndex)) {
                counted++;
            }
        }
        double scale = reduction == PowerGrad.Reduction.MEAN ? (counted > 0 ? 1.0 / counted : 0.0) : 1.0;
        double[] grad = new double[rows * classes];
        double[] rowLoss = new double[rows];
        double sum = 0;
        for (int r = 0; r < rows; r++) {
            if (ignored(labels, r, ignoreIndex)) {
                continue;
            }
            double[] z = new double[classes];
            System.arraycopy(logits, r * classes, z, 0, classes);
            double[] logP = logSoftmax(z, 1.0);
            double[] pPrime = softmax(z, alpha);
            double loss = 0;
            for (int i = 0; i < classes; i++) {
                double target = labels != null ? (labels[r] == i ? 1.0 : 0.0) : targets[r * classes + i];
                double q = (1 - smoothing) * target + smoothing / classes;
                grad[r * classes + i] = scale * (pPrime[i] - q);
                loss -= q * logP[i];
            }
            rowLoss[r] = loss;
            sum += loss;
        }
        double loss = reduction == PowerGrad.Reduction.MEAN ? (counted > 0 ? sum / counted : 0.0) : sum;
        return new Out(grad, rowLoss, loss, counted);
    }

    static Out compute(float[] logits, int rows, int classes, int[] labels, float[] targets, double alpha,
            double smoothing, PowerGrad.Reduction reduction, Integer ignoreIndex) {
        double[] z = new double[logits.length];
        for (int i = 0; i < z.length; i++) {
            z[i] = logits[i];
        }
        return compute(z, rows, classes, labels, targets, alpha, smoothing, reduction, ignoreIndex);
    }

    /** softmax(a z), stable. */
    static double[] softmax(double[] z, double a) {
        double m = Double.NEGATIVE_INFINITY;
        for (double v : z) {
            m = Math.max(m, a * v);
        }
        double s = 0;
        double[] e = new double[z.length];
        for (int i = 0; i < z.length; i++) {
            e[i] = Math.exp(a * z[i] - m);
            s += e[i];
        }
        for (int i = 0; i < z.length; i++) {
            e[i] /= s;
        }
        return e;
    }

    /** log softmax(a z), stable. */
    static double[] logSoftmax(double[] z, double a) {
        double m = Double.NEGATIVE_INFINITY;
        for (double v : z) {
            m = Math.max(m, a * v);
        }
        double s = 0;
        for (double v : z) {
            s += Math.exp(a * v - m);
        }
        double lse = m + Math.log(s);
        double[] out = new double[z.length];
        for (int i = 0; i < z.length; i++) {
            out[i] = a * z[i] - lse;
        }
        return out;
    }

    private static boolean ignored(int[] labels, int r, Integer ignoreIndex) {
        return labels != null && ignoreIndex != null && labels[r] == ignoreIndex;
    }
}
