package io.gradshape.cli;

import io.gradshape.Backends;
import io.gradshape.Gradshape;
import java.util.List;

/** {@code gradshape info}: version, native build, backends, CUDA devices and the backend that would run. */
final class InfoCommand implements Command {
    @Override
    public String name() {
        return "info";
    }

    @Override
    public String summary() {
        return "print the version, the native build, the backends and CUDA devices, and which backend runs";
    }

    @Override
    public String details() {
        return "With --backend, also checks that backend: --backend cuda fails (exit status 1) when CUDA cannot run.\n";
    }

    @Override
    public List<Option> options() {
        return List.of();
    }

    @Override
    public int run(Args args, Terminal terminal) {
        terminal.out().print(Gradshape.info());
        if (args.has("backend")) {
            Backends.Selection s = args.backendSelection();
            terminal.out().println("--backend " + args.string("backend") + ": " + s.backend().description()
                    + " (" + s.reason() + ")");
        }
        return Main.EXIT_OK;
    }
}
