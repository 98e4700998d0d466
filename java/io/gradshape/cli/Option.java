package io.gradshape.cli;

import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * A declared option of a command: {@code --name VALUE} (also written {@code --name=VALUE}) or a flag
 * {@code --name}. Build them with the factories; {@link Args} reads their values with typed getters.
 *
 * @param name         without the dashes, e.g. {@code "weight-decay"}
 * @param value        how help shows the value, e.g. {@code "FILE"}, {@code "X"}, {@code "mean|sum|none"};
 *                     null for a flag
 * @param help         one line for {@code --help}
 * @param required     whether the command cannot run without it
 * @param defaultValue the value when not given (parsed like a given one), or null
 * @param choices      the only values allowed, or empty for any
 */
public record Option(String name, String value, String help, boolean required, String defaultValue, List<String> choices) {
    private static final Pattern NAME = Pattern.compile("[a-z][a-z0-9]*(-[a-z0-9]+)*");

    public Option {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(help, "help");
        if (!NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("name: '" + name + "' is not lower-case words joined by '-'");
        }
        choices = List.copyOf(choices);
        if (value == null && (required || defaultValue != null || !choices.isEmpty())) {
            throw new IllegalArgumentException("--" + name + ": a flag has no value, default or choices");
        }
        if (defaultValue != null && !choices.isEmpty() && !choices.contains(defaultValue)) {
            throw new IllegalArgumentException("--" + name + ": default '" + defaultValue + "' is not one of " + choices);
        }
    }

    /** An option the command cannot run without, e.g. {@code required("lr", "X", "learning rate")}. */
    public static Option required(String name, String value, String help) {
        return new Option(name, Objects.requireNonNull(value, "value"), help, true, null, List.of());
    }

    /** An option that may be left out: then {@code defaultValue} applies, or, when that is null, it is absent. */
    public static Option optional(String name, String value, String help, String defaultValue) {
        return new Option(name, Objects.requireNonNull(value, "value"), help, false, defaultValue, List.of());
    }

    /** A flag: present or not, takes no value. */
    public static Option flag(String name, String help) {
        return new Option(name, null, help, false, null, List.of());
    }

    /** An option that takes one of a few words, e.g. {@code choice("reduction", "...", "mean", "mean", "sum", "none")}. */
    public static Option choice(String name, String help, String defaultValue, String... choices) {
        if (choices.length == 0) {
            throw new IllegalArgumentException("--" + name + ": no choices");
        }
        return new Option(name, String.join("|", choices), help, false, defaultValue, List.of(choices));
    }

    public boolean isFlag() {
        return value == null;
    }

    /** As the help shows it: {@code --name VALUE} or {@code --name}. */
    public String syntax() {
        return isFlag() ? "--" + name : "--" + name + " " + value;
    }
}
