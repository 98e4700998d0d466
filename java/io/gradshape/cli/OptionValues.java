package io.gradshape.cli;

import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/**
 * The typed option values of the commands, as picocli converters: {@code @Option(names = "--lr",
 * converter = OptionValues.Float32.class) float lr;}. Each refuses what it cannot represent exactly
 * (hexadecimal, NaN, values beyond the type's range) with a {@link TypeConversionException} whose
 * message completes {@code "--lr: 'abc' "}, e.g. {@code "is not a number"}; {@link Main} turns it
 * into the usage error {@code "gradshape: --lr: 'abc' is not a number"} (exit status 2).
 */
public final class OptionValues {
    private static final Pattern DECIMAL = Pattern.compile("[+-]?(\\d+(\\.\\d*)?|\\.\\d+)([eE][+-]?\\d+)?");
    private static final Pattern INTEGER = Pattern.compile("[+-]?\\d+");
    private static final Pattern KERNEL = Pattern.compile("(\\d+)(?:[xX](\\d+))?");
    private static final Pattern BACKEND = Pattern.compile("auto|cpu|cuda|cuda:\\d{1,9}");

    private OptionValues() {}

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

    /** A finite number in decimal or scientific notation ({@code 0.1}, {@code -3}, {@code 1e-4}). */
    public static final class Decimal implements ITypeConverter<Double> {
        @Override
        public Double convert(String value) {
            return number(value);
        }
    }

    /** As {@link Decimal}, rounded to float32; a value beyond float32's range is refused, not an infinity. */
    public static final class Float32 implements ITypeConverter<Float> {
        @Override
        public Float convert(String value) {
            double d = number(value);
            if (Math.abs(d) > Float.MAX_VALUE) {
                throw new TypeConversionException("is out of range for float32");
            }
            return (float) d;
        }
    }

    /** A decimal integer that fits an {@code int}. */
    public static final class Int implements ITypeConverter<Integer> {
        @Override
        public Integer convert(String value) {
            return integer(value);
        }
    }

    /** {@code KHxKW} (e.g. {@code 3x3}, {@code 5x3}) or {@code K} for {@code KxK}; both at least 1. */
    public static final class Kernel implements ITypeConverter<KernelSize> {
        @Override
        public KernelSize convert(String value) {
            Matcher m = KERNEL.matcher(value);
            if (!m.matches()) {
                throw new TypeConversionException("is not a kernel size KHxKW (e.g. 3x3)");
            }
            int h = smallInteger(m.group(1), "is not a kernel size KHxKW (e.g. 3x3)");
            int w = m.group(2) == null ? h : smallInteger(m.group(2), "is not a kernel size KHxKW (e.g. 3x3)");
            if (h < 1 || w < 1) {
                throw new TypeConversionException("is not a kernel size: both sizes must be at least 1");
            }
            return new KernelSize(h, w);
        }
    }

    /** {@code A,B} (e.g. {@code 1,1}), or {@code A} for {@code A,A}. */
    public static final class Pair implements ITypeConverter<IntPair> {
        @Override
        public IntPair convert(String value) {
            String[] parts = value.split(",", -1);
            if (parts.length > 2 || !INTEGER.matcher(parts[0].strip()).matches()
                    || parts.length == 2 && !INTEGER.matcher(parts[1].strip()).matches()) {
                throw new TypeConversionException("is not a pair of integers A,B (e.g. 1,1)");
            }
            int a = smallInteger(parts[0].strip(), "is out of range for an integer");
            int b = parts.length == 1 ? a : smallInteger(parts[1].strip(), "is out of range for an integer");
            return new IntPair(a, b);
        }
    }

    /** {@code LO,HI}: two finite numbers with {@code LO < HI}. */
    public static final class ValueRange implements ITypeConverter<Range> {
        @Override
        public Range convert(String value) {
            String[] parts = value.split(",", -1);
            if (parts.length != 2 || !DECIMAL.matcher(parts[0].strip()).matches() || !DECIMAL.matcher(parts[1].strip()).matches()) {
                throw new TypeConversionException("is not a range LO,HI (e.g. -1,1)");
            }
            double lo = Double.parseDouble(parts[0].strip());
            double hi = Double.parseDouble(parts[1].strip());
            if (Double.isInfinite(lo) || Double.isInfinite(hi)) {
                throw new TypeConversionException("is out of range");
            }
            if (!(lo < hi)) {
                throw new TypeConversionException("is not a range: LO must be less than HI");
            }
            return new Range(lo, hi);
        }
    }

    /** A file or folder name: not empty, and a path this file system can name. */
    public static final class FileName implements ITypeConverter<Path> {
        @Override
        public Path convert(String value) {
            if (value.isEmpty()) {
                throw new TypeConversionException("is not a file name");
            }
            try {
                return Path.of(value);
            } catch (InvalidPathException e) {
                throw new TypeConversionException("is not a valid path: " + e.getReason());
            }
        }
    }

    /** {@code auto}, {@code cpu}, {@code cuda} or {@code cuda:N}; checked here, selected by the command. */
    public static final class BackendSpec implements ITypeConverter<String> {
        @Override
        public String convert(String value) {
            if (!BACKEND.matcher(value).matches()) {
                throw new TypeConversionException("is not auto, cpu, cuda or cuda:N");
            }
            return value;
        }
    }

    /**
     * An enum written as its constant's name in lower case with '-' for '_' ({@code MEAN} as {@code mean}),
     * the only spelling accepted. {@link Main} registers one for each enum type of a command's options.
     */
    static final class Word<E extends Enum<E>> implements ITypeConverter<E> {
        private final Class<E> type;

        Word(Class<E> type) {
            this.type = type;
        }

        static String of(Enum<?> constant) {
            return constant.name().toLowerCase(Locale.ROOT).replace('_', '-');
        }

        @Override
        public E convert(String value) {
            for (E e : type.getEnumConstants()) {
                if (of(e).equals(value)) {
                    return e;
                }
            }
            throw new TypeConversionException("is not one of "
                    + Arrays.stream(type.getEnumConstants()).map(Word::of).collect(Collectors.joining(", ")));
        }
    }

    static double number(String value) {
        if (!DECIMAL.matcher(value).matches()) {
            throw new TypeConversionException("is not a number");
        }
        double d = Double.parseDouble(value);
        if (Double.isInfinite(d)) {
            throw new TypeConversionException("is out of range");
        }
        return d;
    }

    static int integer(String value) {
        if (!INTEGER.matcher(value).matches()) {
            throw new TypeConversionException("is not an integer");
        }
        return smallInteger(value, "is out of range for an integer");
    }

    private static int smallInteger(String digits, String expectation) {
        try {
            return Integer.parseInt(digits);
        } catch (NumberFormatException e) {
            throw new TypeConversionException(expectation);
        }
    }
}
