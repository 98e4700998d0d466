package io.gradshape.cli;

import java.util.concurrent.Callable;

/**
 * A subcommand that lives outside the core (the {@code train} main job, which needs the trainers),
 * found with {@link java.util.ServiceLoader} when its jar is on the classpath. Implementations are
 * picocli {@code @Command} classes; {@link #call()} returns the exit status (0, 1 or 2, as
 * {@link Main} documents).
 */
public interface AddOnCommand extends Callable<Integer> {}
