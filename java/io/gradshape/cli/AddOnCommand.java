package io.gradshape.cli;

import java.util.concurrent.Callable;

/**
 * A subcommand that lives outside the core (the {@code train} main job, which needs the trainers),
 * found with {@link java.util.ServiceLoader} when its jar is on the classpath (a line naming the class
 * in {@code META-INF/services/io.gradshape.cli.AddOnCommand}) and added after the core's commands.
 *
 * <p>Implementations are picocli {@code @Command} classes with a public no-argument constructor; the
 * command's name is the annotation's {@code name} (one already taken leaves the add-on out, with a
 * warning), its summary in {@code gradshape --help} the first {@code header} line, its details the
 * {@code description}. {@code @Mixin CommandOptions} adds {@code --backend}, {@code --verbose} and
 * {@code --help} as every core command has them. {@link #call()} returns the exit status (0, 1 or 2,
 * as {@link Main} documents); a picocli {@code ParameterException} thrown from it is a usage error
 * (exit status 2), any other exception a runtime error (1), each reported as one line.
 */
public interface AddOnCommand extends Callable<Integer> {
    /**
     * Called once before {@link #call()} with where to write: results to {@code terminal.out()},
     * progress to {@code terminal.progress()}. picocli's {@code spec.commandLine().getOut()} and
     * {@code getErr()} write to the same streams. The default ignores it.
     */
    default void setTerminal(Terminal terminal) {}
}
