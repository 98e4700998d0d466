package io.gradshape.cli;

import java.util.Locale;

/** Human-readable times and rates with three significant digits, for tables and progress lines. */
public final class Units {
    private static final String[] PREFIXES = {"", "k", "M", "G", "T", "P", "E"};

    private Units() {}

    /** E.g. {@code "812 ns"}, {@code "1.23 us"}, {@code "45.6 ms"}, {@code "2.00 s"}. */
    public static String duration(double seconds) {
        if (!Double.isFinite(seconds) || seconds < 0) {
            return String.valueOf(seconds);
        }
        if (seconds >= 0.9995) {
            return significant(seconds) + " s";
        }
        if (seconds >= 0.9995e-3) {
            return significant(seconds * 1e3) + " ms";
        }
        if (seconds >= 0.9995e-6) {
            return significant(seconds * 1e6) + " us";
        }
        return significant(seconds * 1e9) + " ns";
    }

    /** A rate with an SI prefix, e.g. {@code rate(4.56e10, "pairs")} is {@code "45.6 Gpairs/s"}. */
    public static String rate(double perSecond, String unit) {
        if (!Double.isFinite(perSecond) || perSecond < 0) {
            return perSecond + " " + unit + "/s";
        }
        int p = 0;
        double v = perSecond;
        while (v >= 999.5 && p < PREFIXES.length - 1) {
            v /= 1000;
            p++;
        }
        return significant(v) + " " + PREFIXES[p] + unit + "/s";
    }

    /** Three significant digits: 1.23, 12.3, 123 (and 1234 beyond). */
    static String significant(double v) {
        if (v >= 99.95) {
            return String.format(Locale.ROOT, "%.0f", v);
        }
        if (v >= 9.995) {
            return String.format(Locale.ROOT, "%.1f", v);
        }
        return String.format(Locale.ROOT, "%.2f", v);
    }
}
