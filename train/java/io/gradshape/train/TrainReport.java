package io.gradshape.train;

import java.util.List;
import java.util.Locale;
import java.util.Map;

/** The end-of-run table and summary.json: per arm, mean and spread over the seeds. */
final class TrainReport {
    private final String setting;
    private final Map<String, List<ArmResult>> results;

    TrainReport(String setting, Map<String, List<ArmResult>> results) {
        this.setting = setting;
        this.results = results;
    }

    /** Mean and sample standard deviation (0 for one value). */
    record Stat(double mean, double spread) {
        static Stat of(double[] v) {
            double m = 0;
            for (double x : v) {
                m += x;
            }
            m /= v.length;
            double s = 0;
            for (double x : v) {
                s += (x - m) * (x - m);
            }
            return new Stat(m, v.length > 1 ? Math.sqrt(s / (v.length - 1)) : 0);
        }
    }

    static Stat stat(List<ArmResult> runs, java.util.function.ToDoubleFunction<ArmResult> f) {
        return Stat.of(runs.stream().mapToDouble(f).toArray());
    }

    String table() {
        StringBuilder b = new StringBuilder();
        b.append('\n').append("setting: ").append(setting).append('\n');
        b.append(String.format(Locale.ROOT, "%-9s %16s %11s %9s %13s %8s%n", "arm", "test accuracy", "final loss",
                "ms/step", "gradshape ms", "share"));
        for (Map.Entry<String, List<ArmResult>> e : results.entrySet()) {
            List<ArmResult> runs = e.getValue();
            Stat acc = stat(runs, ArmResult::testAccuracy);
            Stat loss = stat(runs, ArmResult::finalLoss);
            Stat step = stat(runs, ArmResult::stepMs);
            Stat gs = stat(runs, ArmResult::gradshapeMsPerStep);
            b.append(String.format(Locale.ROOT, "%-9s %7.2f%% ± %5.2f %11.4f %9.2f %13.3f %7.2f%%%n", e.getKey(),
                    100 * acc.mean(), 100 * acc.spread(), loss.mean(), step.mean(), gs.mean(),
                    100 * gs.mean() / step.mean()));
        }
        b.append("(accuracy: mean ± sample standard deviation over the seeds; ms/step: wall time of forward, backward and\n"
                + " step, SGS refreshes included; gradshape ms: time inside gradshape per step: optimizer, PGT loss,\n"
                + " SGS capture and G amortised; share = gradshape ms / ms/step)\n");
        for (Map.Entry<String, List<ArmResult>> e : results.entrySet()) {
            ArmResult first = e.getValue().get(0);
            if (!e.getKey().startsWith("sgs")) {
                continue;
            }
            b.append("G of ").append(e.getKey()).append(" at the end (first seed), per conv:\n");
            for (int row = 0; row < 3; row++) {
                b.append("  ");
                for (ArmResult.ConvG g : first.g()) {
                    if (row == 0) {
                        b.append(String.format(Locale.ROOT, "%-6s", g.conv()));
                    } else {
                        b.append("      ");
                    }
                    for (int col = 0; col < g.kernelW(); col++) {
                        b.append(String.format(Locale.ROOT, " %5.3f", g.g()[(row) * g.kernelW() + col]));
                    }
                    b.append("   ");
                }
                b.append('\n');
            }
        }
        return b.toString();
    }

    String json() {
        StringBuilder b = new StringBuilder("{\n  \"setting\": ").append(quote(setting)).append(",\n  \"arms\": [\n");
        int i = 0;
        for (Map.Entry<String, List<ArmResult>> e : results.entrySet()) {
            List<ArmResult> runs = e.getValue();
            ArmResult first = runs.get(0);
            Stat acc = stat(runs, ArmResult::testAccuracy);
            b.append("    {\"name\": ").append(quote(e.getKey()))
                    .append(", \"trainer\": ").append(quote(first.trainer()))
                    .append(", \"test_accuracy\": ").append(num(acc.mean()))
                    .append(", \"test_accuracy_spread\": ").append(num(acc.spread()))
                    .append(", \"final_loss\": ").append(num(stat(runs, ArmResult::finalLoss).mean()))
                    .append(", \"step_ms\": ").append(num(stat(runs, ArmResult::stepMs).mean()))
                    .append(", \"gradshape_ms_per_step\": ").append(num(stat(runs, ArmResult::gradshapeMsPerStep).mean()))
                    .append(", \"steps\": ").append(first.steps())
                    .append(",\n     \"seeds\": [");
            for (int k = 0; k < runs.size(); k++) {
                b.append(k > 0 ? ", " : "").append("{\"test_accuracy\": ").append(num(runs.get(k).testAccuracy()))
                        .append(", \"final_loss\": ").append(num(runs.get(k).finalLoss())).append('}');
            }
            b.append("],\n     \"g\": [");
            for (int k = 0; k < first.g().size(); k++) {
                ArmResult.ConvG g = first.g().get(k);
                b.append(k > 0 ? ", " : "").append("{\"conv\": ").append(quote(g.conv())).append(", \"matrix\": [");
                for (int r = 0; r < g.kernelH(); r++) {
                    b.append(r > 0 ? ", " : "").append('[');
                    for (int c = 0; c < g.kernelW(); c++) {
                        b.append(c > 0 ? ", " : "").append(num(g.g()[r * g.kernelW() + c]));
                    }
                    b.append(']');
                }
                b.append("]}");
            }
            b.append("],\n     \"curve\": [");
            for (int k = 0; k < first.curve().size(); k++) {
                ArmResult.EpochPoint p = first.curve().get(k);
                b.append(k > 0 ? ", " : "").append("{\"epoch\": ").append(p.epoch()).append(", \"train_loss\": ")
                        .append(num(p.trainLoss())).append(", \"test_accuracy\": ").append(num(p.testAccuracy())).append('}');
            }
            b.append("]}").append(++i < results.size() ? "," : "").append('\n');
        }
        return b.append("  ]\n}\n").toString();
    }

    private static String num(double v) {
        // JSON has no NaN or infinity
        return Double.isFinite(v) ? Double.toString(v) : "null";
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
