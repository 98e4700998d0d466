package io.gradshape.cli;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.GradshapeException;
import io.gradshape.Status;
import picocli.CommandLine.Option;

/**
 * The options every command takes, as a picocli mixin ({@code @Mixin CommandOptions options;}):
 * {@code --backend}, {@code --verbose} and {@code -h}/{@code --help}. An add-on command may mix it in
 * to get the same three.
 */
public final class CommandOptions {
    /** The spellings {@link UsageText} lists after a command's own options. */
    static final java.util.Set<String> NAMES = java.util.Set.of("--backend", "--verbose", "--help");

    @Option(names = "--backend", paramLabel = "auto|cpu|cuda|cuda:N", converter = OptionValues.BackendSpec.class,
            description = {"where the kernels run: auto (CUDA when usable, else CPU), cpu, or cuda",
                "(an error without a usable GPU, never a fallback); default: $" + Backends.ENVIRONMENT + " or auto"})
    String backend;

    @Option(names = "--verbose", description = "print the stack trace of an error")
    boolean verbose;

    @Option(names = {"-h", "--help"}, usageHelp = true, description = "show this help")
    boolean help;

    private Backends.Selection selection;

    /** Whether {@code --backend} was given (its default, {@link Backends#configured()}, does not count). */
    public boolean backendGiven() {
        return backend != null;
    }

    /** {@code --backend} as written, or the configured default. */
    public String backendSpec() {
        return backend != null ? backend : Backends.configured();
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
            String spec = backendSpec();
            try {
                selection = Backends.select(spec);
            } catch (GradshapeException e) {
                String why = e.status() == Status.CUDA_UNAVAILABLE ? "CUDA is not usable: " + e.getMessage() : e.getMessage();
                throw new GradshapeException(e.status(), e.code(), "--backend " + spec + ": " + why, e);
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

    /** Whether {@code --verbose} was given after the command. */
    public boolean verbose() {
        return verbose;
    }
}
