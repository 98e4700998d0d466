package io.gradshape.cli;

import java.util.List;

/**
 * One subcommand of {@code gradshape}. To add one: write a class implementing this interface (parse
 * with {@link Args}, read inputs with {@link Inputs}, write outputs with {@link OutputDir}) and add
 * one line to {@link Main#COMMANDS}. Every command gets {@code --backend}, {@code --verbose} and
 * {@code --help} from the framework, and its {@code --help} text from {@link #summary()},
 * {@link #details()} and {@link #options()}.
 */
public interface Command {
    /** The word that runs it, e.g. {@code "sgd-step"}. */
    String name();

    /** One line: shown in the command list of {@code gradshape --help} and at the top of its own help. */
    String summary();

    /** More help after the summary (outputs, an example), or empty. Lines end with '\n'. */
    default String details() {
        return "";
    }

    /** Its own options, in the order its help lists them. */
    List<Option> options();

    /**
     * Runs the command. Results go to {@code terminal.out()}, progress to {@code terminal.err()}
     * (see {@link Terminal#progress()}).
     *
     * @return the exit status, normally {@link Main#EXIT_OK}
     * @throws UsageException for a bad option value the parser could not see (exit status 2)
     * @throws Exception anything else is a runtime error (exit status 1), reported in one line
     */
    int run(Args args, Terminal terminal) throws Exception;
}
