package io.gradshape.cli;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.GradshapeException;
import io.gradshape.Status;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The parsed options of one command. Getters take the option name without dashes, return the given
 * value or the declared default, and throw {@link UsageException} naming the option when a value
 * does not parse ({@code "--lr: 'abc' is not a number"}). Asking for an option the command did not
 * declare, or for an absent one without a default, is a programming error
 * ({@link IllegalStateException}): check {@link #has} first.
 */
public final class Args {
    /** Options every command takes. */
    static final Option BACKEND = Option.optional("backend", "auto|cpu|cuda|cuda:N",
            "where the kernels run: auto (CUDA when usable, else CPU), cpu, or cuda\n"
                    + "(an error without a usable GPU, never a fallback); default: $" + Backends.ENVIRONMENT + " or auto",
            null);
    static final Option VERBOSE = Option.flag("verbose", "print the stack trace of an error");
    static final Option HELP = Option.flag("help", "show this help");

    private static final Pattern DECIMAL = Pattern.compile("[+-]?(\\d+(\\.\\d*)?|\\.\\d+)([eE][+-]?\\d+)?");
    private static final Pattern INTEGER = Pattern.compile("[+-]?\\d+");
    private static final Pattern KERNEL = Pattern.compile("(\\d+)(?:[xX](\\d+))?");
    private static final Pattern BACKEND_SPEC = Pattern.compile("auto|cpu|cuda|cuda:\\d+");

    /** A kernel size {@code KHxKW}: height (rows, the first axis) then width. */
    public record KernelSize(int height, int width) {
        @Override
        public String toString() {
            return height + "x" + width;
        }
    }

    /** Two integers {@code A,B}, e.g. a padding (rows, columns). */
    public record IntPair(int first, int second) {
        @Override
        public String toString() {
            return first + "," + second;
        }
    }

    /** A value range {@code LO,HI} with {@code LO < HI}, both finite. */
    public record Range(double lo, double hi) {
        @Override
        public String toString() {
            return lo + "," + hi;
        }
    }

    private final String command;
    private final Map<String, Option> declared;
    private final Map<String, String> values;
    private final Set<String> flags;
    private Backends.Selection selection;

    private Args(String command, Map<String, Option> declared, Map<String, String> values, Set<String> flags) {
        this.command = command;
        this.declared = declared;
        this.values = values;
        this.flags = flags;
    }

    /** The command's name. */
    public String command() {
        return command;
    }

    /** Whether the option was given on the command line (defaults do not count). */
    public boolean has(String name) {
        Option o = option(name);
        return o.isFlag() ? flags.contains(name) : values.containsKey(name);
    }

    /** Whether the flag was given. */
    public boolean flag(String name) {
        Option o = option(name);
        if (!o.isFlag()) {
            throw new IllegalStateException("--" + name + " is not a flag");
        }
        return flags.contains(name);
    }

    /** The value as written (or the default). */
    public String string(String name) {
        Option o = option(name);
        if (o.isFlag()) {
            throw new IllegalStateException("--" + name + " is a flag; use flag(\"" + name + "\")");
        }
        String v = values.getOrDefault(name, o.defaultValue());
        if (v == null) {
            throw new IllegalStateException("--" + name + " was not given and has no default; check has(\"" + name + "\") first");
        }
        return v;
    }

    public int intValue(String name) throws UsageException {
        String v = string(name);
        if (!INTEGER.matcher(v).matches()) {
            throw invalid(name, "is not an integer");
        }
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw invalid(name, "is out of range for an integer");
        }
    }

    public long longValue(String name) throws UsageException {
        String v = string(name);
        if (!INTEGER.matcher(v).matches()) {
            throw invalid(name, "is not an integer");
        }
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw invalid(name, "is out of range for a 64-bit integer");
        }
    }

    /** A finite number in decimal or scientific notation ({@code 0.1}, {@code -3}, {@code 1e-4}). */
    public double doubleValue(String name) throws UsageException {
        String v = string(name);
        if (!DECIMAL.matcher(v).matches()) {
            throw invalid(name, "is not a number");
        }
        double d = Double.parseDouble(v);
        if (Double.isInfinite(d)) {
            throw invalid(name, "is out of range");
        }
        return d;
    }

    /** As {@link #doubleValue}, rounded to float32; values beyond float32's range are an error. */
    public float floatValue(String name) throws UsageException {
        double d = doubleValue(name);
        if (Math.abs(d) > Float.MAX_VALUE) {
            throw invalid(name, "is out of range for float32");
        }
        return (float) d;
    }

    public Path path(String name) throws UsageException {
        String v = string(name);
        if (v.isEmpty()) {
            throw invalid(name, "is not a file name");
        }
        try {
            return Path.of(v);
        } catch (java.nio.file.InvalidPathException e) {
            throw invalid(name, "is not a valid path: " + e.getReason());
        }
    }

    /** {@code KHxKW} (e.g. {@code 3x3}, {@code 5x3}) or {@code K} for {@code KxK}; both at least 1. */
    public KernelSize kernelSize(String name) throws UsageException {
        Matcher m = KERNEL.matcher(string(name));
        if (!m.matches()) {
            throw invalid(name, "is not a kernel size KHxKW (e.g. 3x3)");
        }
        int h = parseSmall(name, m.group(1), "is not a kernel size KHxKW (e.g. 3x3)");
        int w = m.group(2) == null ? h : parseSmall(name, m.group(2), "is not a kernel size KHxKW (e.g. 3x3)");
        if (h < 1 || w < 1) {
            throw invalid(name, "is not a kernel size: both sizes must be at least 1");
        }
        return new KernelSize(h, w);
    }

    /** {@code A,B} (e.g. {@code 1,1}), or {@code A} for {@code A,A}. */
    public IntPair intPair(String name) throws UsageException {
        String[] parts = string(name).split(",", -1);
        if (parts.length > 2 || !INTEGER.matcher(parts[0].strip()).matches()
                || parts.length == 2 && !INTEGER.matcher(parts[1].strip()).matches()) {
            throw invalid(name, "is not a pair of integers A,B (e.g. 1,1)");
        }
        int a = parseSmall(name, parts[0].strip(), "is out of range for an integer");
        int b = parts.length == 1 ? a : parseSmall(name, parts[1].strip(), "is out of range for an integer");
        return new IntPair(a, b);
    }

    /** {@code LO,HI}: two finite numbers with {@code LO < HI}. */
    public Range range(String name) throws UsageException {
        String[] parts = string(name).split(",", -1);
        if (parts.length != 2 || !DECIMAL.matcher(parts[0].strip()).matches() || !DECIMAL.matcher(parts[1].strip()).matches()) {
            throw invalid(name, "is not a range LO,HI (e.g. -1,1)");
        }
        double lo = Double.parseDouble(parts[0].strip());
        double hi = Double.parseDouble(parts[1].strip());
        if (Double.isInfinite(lo) || Double.isInfinite(hi)) {
            throw invalid(name, "is out of range");
        }
        if (!(lo < hi)) {
            throw invalid(name, "is not a range: LO must be less than HI");
        }
        return new Range(lo, hi);
    }

    /**
     * Throws the usage error {@code "--NAME: 'VALUE' EXPECTATION"} unless {@code ok}, e.g.
     * {@code args.check(k >= 1, "k", "must be at least 1")}.
     */
    public void check(boolean ok, String name, String expectation) throws UsageException {
        if (!ok) {
            throw invalid(name, expectation);
        }
    }

    /** The usage error {@code "--NAME: 'VALUE' EXPECTATION"}, for checks the getters cannot make. */
    public UsageException invalid(String name, String expectation) {
        Option o = option(name);
        String v = o.isFlag() ? null : values.getOrDefault(name, o.defaultValue());
        StringBuilder m = new StringBuilder("--").append(name).append(": ");
        if (v != null) {
            m.append('\'').append(v).append("' ");
        }
        m.append(expectation);
        if (o.value() != null && o.value().contains("|") && o.choices().isEmpty()) {
            m.append(" (expected ").append(o.value()).append(')');
        }
        return new UsageException(m.toString());
    }

    /**
     * The backend of {@code --backend} (default: {@link Backends#configured()}), with the reason it
     * was chosen. Selected once per command.
     *
     * @throws GradshapeException when the backend cannot run (e.g. {@code cuda} without a usable
     *     GPU: the message says why), never a silent fallback
     */
    public Backends.Selection backendSelection() {
        if (selection == null) {
            String spec = has("backend") ? string("backend") : Backends.configured();
            try {
                selection = Backends.select(spec);
            } catch (GradshapeException e) {
                throw new GradshapeException(e.status(), e.code(), "--backend " + spec + ": " + describe(e), e);
            } catch (IllegalArgumentException e) {
                // Only reachable through GRADSHAPE_BACKEND / -Dgradshape.backend: --backend is checked while parsing.
                throw new IllegalArgumentException("backend '" + spec + "' (from " + Backends.ENVIRONMENT + " or -D"
                        + Backends.PROPERTY + ") is not auto, cpu, cuda or cuda:N", e);
            }
        }
        return selection;
    }

    /** The backend of {@code --backend}; see {@link #backendSelection()}. */
    public Backend backend() {
        return backendSelection().backend();
    }

    /** Whether {@code --verbose} was given. */
    public boolean verbose() {
        return flags.contains(VERBOSE.name());
    }

    // ---- parsing ------------------------------------------------------------------------------------

    /** Parses {@code tokens} (the words after the command name) against the command's options. */
    static Args parse(Command command, List<String> tokens) throws UsageException {
        Map<String, Option> declared = new LinkedHashMap<>();
        for (Option o : allOptions(command)) {
            if (declared.put(o.name(), o) != null) {
                throw new IllegalStateException(command.name() + ": option --" + o.name() + " declared twice");
            }
        }
        Map<String, String> values = new HashMap<>();
        Set<String> flags = new HashSet<>();
        for (int i = 0; i < tokens.size(); i++) {
            String token = tokens.get(i);
            if (!token.startsWith("--") || token.equals("--")) {
                if (token.startsWith("-") && !DECIMAL.matcher(token).matches() && !token.equals("-")) {
                    throw new UsageException("unknown option " + token + suggestion(token, declared.keySet()));
                }
                throw new UsageException("unexpected argument '" + token + "': " + command.name()
                        + " takes only options (--name value)");
            }
            int eq = token.indexOf('=');
            String name = token.substring(2, eq < 0 ? token.length() : eq);
            Option o = declared.get(name);
            if (o == null) {
                throw new UsageException("unknown option --" + name + " for " + command.name()
                        + suggestion("--" + name, declared.keySet()));
            }
            if (o.isFlag()) {
                if (eq >= 0) {
                    throw new UsageException("--" + name + " is a flag and takes no value");
                }
                flags.add(name);
                continue;
            }
            String value;
            if (eq >= 0) {
                value = token.substring(eq + 1);
            } else if (i + 1 < tokens.size() && !tokens.get(i + 1).startsWith("--")) {
                value = tokens.get(++i);
            } else {
                value = "";
            }
            if (value.isEmpty()) {
                throw new UsageException("--" + name + ": missing value " + o.value());
            }
            if (values.containsKey(name)) {
                throw new UsageException("--" + name + " given twice ('" + values.get(name) + "' and '" + value + "')");
            }
            if (!o.choices().isEmpty() && !o.choices().contains(value)) {
                throw new UsageException("--" + name + ": '" + value + "' is not one of " + String.join(", ", o.choices()));
            }
            if (o == BACKEND && !BACKEND_SPEC.matcher(value).matches()) {
                throw new UsageException("--backend: '" + value + "' is not auto, cpu, cuda or cuda:N");
            }
            values.put(name, value);
        }
        List<String> missing = new ArrayList<>();
        for (Option o : declared.values()) {
            if (o.required() && !values.containsKey(o.name())) {
                missing.add("--" + o.name());
            }
        }
        if (!missing.isEmpty()) {
            throw new UsageException("missing required option" + (missing.size() > 1 ? "s " : " ") + String.join(", ", missing));
        }
        return new Args(command.name(), declared, values, flags);
    }

    /** The command's options followed by those every command takes. */
    static List<Option> allOptions(Command command) {
        List<Option> all = new ArrayList<>(command.options());
        all.add(BACKEND);
        all.add(VERBOSE);
        all.add(HELP);
        return all;
    }

    /** {@code " (did you mean --x?)"} for a near miss among {@code names}, else empty. */
    static String suggestion(String given, Iterable<String> names) {
        String word = given.replaceFirst("^-+", "");
        if (word.length() < 3) {
            return ""; // everything is a near miss of a word this short
        }
        String best = null;
        int bestDistance = Integer.MAX_VALUE;
        for (String name : names) {
            int d = editDistance(word, name);
            if (d < bestDistance) {
                best = name;
                bestDistance = d;
            }
        }
        return best != null && bestDistance <= Math.max(1, Math.min(2, word.length() / 3))
                ? " (did you mean --" + best + "?)" : "";
    }

    static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int substitute = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(substitute, Math.min(prev[j], cur[j - 1]) + 1);
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }

    private Option option(String name) {
        Option o = declared.get(name);
        if (o == null) {
            throw new IllegalStateException("command " + command + " declares no option --" + name);
        }
        return o;
    }

    private int parseSmall(String name, String digits, String expectation) throws UsageException {
        try {
            return Integer.parseInt(digits);
        } catch (NumberFormatException e) {
            throw invalid(name, expectation);
        }
    }

    private static String describe(GradshapeException e) {
        return e.status() == Status.CUDA_UNAVAILABLE ? "CUDA is not usable: " + e.getMessage() : e.getMessage();
    }
}
