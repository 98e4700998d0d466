package io.gradshape;

import io.gradshape.SpatialDependence.Layout;
import io.gradshape.SpatialDependence.Options;
import io.gradshape.SpatialDependence.Order;
import io.gradshape.SpatialDependence.RangeMode;

/**
 * Spatial dependence in float64, written from SPEC.md section 1 alone and as plainly as possible: pad
 * the map explicitly, list every pair of every displacement, bin each value with the written formula,
 * and compute the entropies from the tables. Slow on purpose; small inputs only.
 */
final class SpatialDependenceOracle {
    private SpatialDependenceOracle() {}

    /** Everything the oracle computes, for exact (integers) and tolerant (floats) comparison. */
    static final class Output {
        int channels, displacements, kernelH, kernelW;
        long[] pairCount;     // [c][u]
        float[] minP, maxP, minQ, maxQ;  // [c][u], +inf / -inf when never set
        int[] bins;           // [c][u]
        long[][] table;       // [c * D + u] -> B x B counts before the diagonal is dropped
        double[] nmi;         // [c][kh][kw]
        double[] s, g;
        boolean gKeptPrevious;
    }

    static Output compute(float[] x, int batch, int channels, int height, int width, Options o, float[] previousG) {
        int kh = o.kernelH(), kw = o.kernelW(), ry = (kh - 1) / 2, rx = (kw - 1) / 2;
        int hp = height + 2 * o.padH(), wp = width + 2 * o.padW();
        int d = (kh * kw - 1) / 2, e = kh * kw;
        Output out = new Output();
        out.channels = channels;
        out.displacements = d;
        out.kernelH = kh;
        out.kernelW = kw;
        out.pairCount = new long[channels * d];
        out.minP = new float[channels * d];
        out.maxP = new float[channels * d];
        out.minQ = new float[channels * d];
        out.maxQ = new float[channels * d];
        out.bins = new int[channels * d];
        out.table = new long[channels * d][];
        out.nmi = new double[channels * e];

        for (int c = 0; c < channels; c++) {
            // The padded channel, explicitly.
            float[][][] xp = new float[batch][hp][wp];
            for (int n = 0; n < batch; n++) {
                for (int i = 0; i < height; i++) {
                    for (int j = 0; j < width; j++) {
                        int index = o.layout() == Layout.NCHW
                                ? ((n * channels + c) * height + i) * width + j
                                : ((n * height + i) * width + j) * channels + c;
                        xp[n][i + o.padH()][j + o.padW()] = x[index];
                    }
                }
            }
            float chMin = Float.POSITIVE_INFINITY, chMax = Float.NEGATIVE_INFINITY;
            for (float[][] plane : xp) {
                for (float[] row : plane) {
                    for (float v : row) {
                        if (o.removeZeros() && v == 0) {
                            continue;
                        }
                        chMin = Math.min(chMin, v);
                        chMax = Math.max(chMax, v);
                    }
                }
            }
            for (int u = 0; u < d; u++) {
                int dy = u / kw - ry, dx = u % kw - rx;
                // Every pair with both positions inside the padded map.
                int capacity = batch * hp * wp;
                float[] p = new float[capacity], q = new float[capacity];
                int count = 0;
                for (int n = 0; n < batch; n++) {
                    for (int i = 0; i < hp; i++) {
                        for (int j = 0; j < wp; j++) {
                            int i2 = i + dy, j2 = j + dx;
                            if (i2 < 0 || i2 >= hp || j2 < 0 || j2 >= wp) {
                                continue;
                            }
                            float a = xp[n][i][j], b = xp[n][i2][j2];
                            if (o.removeZeros() && (a == 0 || b == 0)) {
                                continue;
                            }
                            p[count] = a;
                            q[count] = b;
                            count++;
                        }
                    }
                }
                int cu = c * d + u;
                out.pairCount[cu] = count;
                float pMin = Float.POSITIVE_INFINITY, pMax = Float.NEGATIVE_INFINITY;
                float qMin = Float.POSITIVE_INFINITY, qMax = Float.NEGATIVE_INFINITY;
                for (int t = 0; t < count; t++) {
                    pMin = Math.min(pMin, p[t]);
                    pMax = Math.max(pMax, p[t]);
                    qMin = Math.min(qMin, q[t]);
                    qMax = Math.max(qMax, q[t]);
                }
                if (o.rangeMode() == RangeMode.CHANNEL) {
                    pMin = qMin = chMin;
                    pMax = qMax = chMax;
                }
                out.minP[cu] = pMin;
                out.maxP[cu] = pMax;
                out.minQ[cu] = qMin;
                out.maxQ[cu] = qMax;

                int bins = o.bins() > 0 ? o.bins() : 1 + ceilLog2(count);
                out.bins[cu] = bins;
                long[] table = new long[bins * bins];
                if (count > 0) {
                    for (int t = 0; t < count; t++) {
                        int bp = o.rangeMode() == RangeMode.FIXED ? binFixed(p[t], o.rangeLo(), o.rangeHi(), bins)
                                : bin(p[t], pMin, pMax, bins);
                        int bq = o.rangeMode() == RangeMode.FIXED ? binFixed(q[t], o.rangeLo(), o.rangeHi(), bins)
                                : bin(q[t], qMin, qMax, bins);
                        if (bp >= 0 && bq >= 0) {
                            table[bp * bins + bq]++;
                        }
                    }
                }
                out.table[cu] = table;
                double v = count == 0 ? Double.NaN : nmi(table, bins, o.removeZeros());
                if (o.removeZeros() && Double.isNaN(v)) {
                    v = 0;
                }
                out.nmi[c * e + (dy + ry) * kw + dx + rx] = v;
                out.nmi[c * e + (-dy + ry) * kw - dx + rx] = v;
            }
            out.nmi[c * e + ry * kw + rx] = 1;
        }

        double k = o.k();
        out.s = new double[e];
        for (int i = 0; i < e; i++) {
            double sum = 0;
            int used = 0;
            for (int c = 0; c < channels; c++) {
                double v = out.nmi[c * e + i];
                if (!Double.isNaN(v)) {
                    sum += o.order() == Order.REFERENCE ? transform(v, k) : v;
                    used++;
                }
            }
            double mean = used == 0 ? Double.NaN : sum / used;
            out.s[i] = o.order() == Order.REFERENCE ? mean : transform(mean, k);
        }
        double meanS = 0;
        for (double v : out.s) {
            meanS += v;
        }
        meanS /= e;
        out.g = new double[e];
        boolean finite = true;
        for (int i = 0; i < e; i++) {
            out.g[i] = out.s[i] / meanS;
            finite &= Double.isFinite(out.g[i]);
        }
        if (!finite) {
            for (int i = 0; i < e; i++) {
                out.g[i] = previousG == null ? 1 : previousG[i];
            }
        }
        out.gKeptPrevious = !finite;
        return out;
    }

    static int ceilLog2(long n) {
        int k = 0;
        while ((1L << k) < n) {
            k++;
        }
        return k;
    }

    /** Reference binning: [min, max + 1e-12), in float64; -1 = dropped. */
    static int bin(float v, float min, float max, int bins) {
        double lo = min, hi = (double) max + 1e-12;
        if (!(lo <= v && v < hi)) {
            return -1;
        }
        int b = (int) ((v - lo) * (bins / (hi - lo)));
        return b == bins ? bins - 1 : b;
    }

    /** Fixed range [lo, hi], both ends kept. */
    static int binFixed(float v, float rangeLo, float rangeHi, int bins) {
        double lo = rangeLo, hi = rangeHi;
        if (!(lo <= v && v <= hi)) {
            return -1;
        }
        int b = (int) ((v - lo) * (bins / (hi - lo)));
        return Math.min(b, bins - 1);
    }

    static double nmi(long[] table, int bins, boolean dropDiagonal) {
        double[] rows = new double[bins], cols = new double[bins];
        double total = 0;
        for (int i = 0; i < bins; i++) {
            for (int j = 0; j < bins; j++) {
                long h = dropDiagonal && i == j ? 0 : table[i * bins + j];
                rows[i] += h;
                cols[j] += h;
                total += h;
            }
        }
        if (total == 0) {
            return Double.NaN;
        }
        double hp = 0, hq = 0, hpq = 0;
        for (int i = 0; i < bins; i++) {
            hp += plogp(rows[i] / total);
            hq += plogp(cols[i] / total);
            for (int j = 0; j < bins; j++) {
                long h = dropDiagonal && i == j ? 0 : table[i * bins + j];
                hpq += plogp(h / total);
            }
        }
        if (hpq == 0) {
            return Double.NaN;
        }
        return (hp + hq - hpq) / hpq;
    }

    private static double plogp(double p) {
        return p == 0 ? 0 : -p * Math.log(p) / Math.log(2);
    }

    static double transform(double s, double k) {
        return k * s / ((k - 1) * s + 1);
    }
}
