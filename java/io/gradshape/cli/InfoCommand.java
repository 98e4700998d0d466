package io.gradshape.cli;

import io.gradshape.Backends;
import io.gradshape.Gradshape;
import picocli.CommandLine.Command;

/** {@code gradshape info}: version, native build, backends, CUDA devices and the backend that would run. */
@Command(name = "info",
        header = "print the version, the native build, the backends and CUDA devices, and which backend runs",
        description = "With --backend, also checks that backend: --backend cuda fails (exit status 1) when CUDA cannot run.")
final class InfoCommand extends KernelCommand {
    @Override
    int run(Terminal terminal) {
        terminal.out().print(Gradshape.info());
        if (common.backendGiven()) {
            Backends.Selection s = common.backendSelection();
            terminal.out().println("--backend " + common.backendSpec() + ": " + s.backend().description()
                    + " (" + s.reason() + ")");
        }
        return Main.EXIT_OK;
    }
}
