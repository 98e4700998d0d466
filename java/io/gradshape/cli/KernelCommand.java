package io.gradshape.cli;

import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * The base of the core's commands: a picocli {@code @Command} class whose annotated fields are its
 * options, plus {@code --backend}, {@code --verbose} and {@code --help} ({@link CommandOptions}). An
 * explicit {@code --backend} is selected before {@link #run} (so {@code --backend cuda} fails before
 * any input is read). Checks the parser cannot make throw {@link #invalid} or {@link #usage}: exit
 * status 2.
 */
abstract class KernelCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    CommandOptions common;

    /** Where to write; set by {@link Main} before {@link #call}. */
    Terminal terminal;

    @Override
    public final Integer call() throws Exception {
        if (common.backendGiven()) {
            common.backendSelection();
        }
        return run(terminal);
    }

    /**
     * Runs the command. Results go to {@code terminal.out()}, progress to {@code terminal.err()}.
     *
     * @return the exit status, normally {@link Main#EXIT_OK}
     * @throws ParameterException for a bad option value the parser could not see (exit status 2)
     * @throws Exception anything else is a runtime error (exit status 1), reported in one line
     */
    abstract int run(Terminal terminal) throws Exception;

    /** Whether the option (e.g. {@code "--layout"}) was given on the command line; a default does not count. */
    final boolean given(String name) {
        return spec.commandLine().getParseResult().hasMatchedOption(name);
    }

    /** The usage error {@code "--NAME: 'VALUE' EXPECTATION"}, e.g. {@code invalid("--lr", "must be >= 0")}. */
    final ParameterException invalid(String name, String expectation) {
        OptionSpec o = spec.findOption(name);
        if (o == null) {
            throw new IllegalStateException(spec.name() + " declares no option " + name);
        }
        List<String> written = o.originalStringValues();
        String value = written.isEmpty() ? o.defaultValue() : written.get(written.size() - 1);
        return new ParameterException(spec.commandLine(), o.longestName() + ": " + (value == null ? "" : "'" + value + "' ")
                + expectation, o, value);
    }

    /** Throws {@link #invalid} unless {@code ok}. */
    final void check(boolean ok, String name, String expectation) {
        if (!ok) {
            throw invalid(name, expectation);
        }
    }

    /** A usage error about a combination of options, e.g. {@code "--nesterov needs --momentum > 0"}. */
    final ParameterException usage(String message) {
        return new ParameterException(spec.commandLine(), message);
    }
}
