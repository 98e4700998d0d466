package io.gradshape.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.Backends;
import io.gradshape.Gradshape;
import io.gradshape.GradshapeException;
import io.gradshape.Status;
import io.gradshape.io.NpyFormatException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The command line end to end, in process: global options, help, exit statuses and error lines. */
class MainTest {
    /** Throws what {@code --with} names, to check how each failure is reported. */
    @Command(name = "fail", header = "fails on purpose")
    static final class Fail extends KernelCommand {
        enum With { MISSING, NPY, INPUT, NATIVE, ARGUMENT, USAGE, BUG, STATUS }

        @Option(names = "--with", required = true, paramLabel = "WHAT", description = "what to throw")
        With with;

        @Override
        int run(Terminal terminal) throws Exception {
            terminal.out().println("started");
            switch (with) {
                case MISSING -> throw new NoSuchFileException("w.npy");
                case NPY -> throw new NpyFormatException(Path.of("fm.npy"), "Fortran-order arrays are not supported");
                case INPUT -> throw new InputException("g.npy: expected shape (2, 3) (the shape of w.npy), got (3, 2)");
                case NATIVE -> throw new GradshapeException(Status.CUDA_ERROR, "an illegal memory access was encountered");
                case ARGUMENT -> throw new IllegalArgumentException("kernelHeight: 2 is not odd");
                case USAGE -> throw invalid("--with", "cannot be combined with itself");
                case BUG -> throw new NullPointerException("boom");
                default -> {
                    return 3;
                }
            }
        }
    }

    static List<Object> withFail() {
        return List.of(new InfoCommand(), new Fail());
    }

    /** The names of the real commands, as picocli has them (the core's, then the add-ons found). */
    static List<String> commandNames() {
        CommandLine root = Main.commandLine(new Terminal(System.out, System.err, false), Main.builtInCommands());
        return UsageText.visibleCommands(root).stream().map(CommandLine::getCommandName).toList();
    }

    static String name(Object command) {
        return command.getClass().getAnnotation(Command.class).name();
    }

    static String summary(Object command) {
        return command.getClass().getAnnotation(Command.class).header()[0];
    }

    @Test
    void noArgumentsOrHelpPrintsTheCommandList() {
        CliRun none = CliRun.of();
        assertEquals(0, none.status(), none.toString());
        assertTrue(none.out().startsWith("usage: gradshape <command> [options]\n"), none.out());
        for (Object c : Main.builtInCommands()) {
            assertTrue(none.out().contains("\n  " + name(c) + " "), name(c) + " listed in\n" + none.out());
            assertTrue(none.out().contains(summary(c) + "\n"), summary(c) + " listed in\n" + none.out());
        }
        assertFalse(none.out().contains("\n  help "), "help is not listed as a command:\n" + none.out());
        assertTrue(none.out().contains("exit status: 0 success, 1 runtime error"), none.out());
        for (String[] args : List.of(new String[] {"--help"}, new String[] {"-h"}, new String[] {"help"},
                new String[] {"--verbose", "--help"})) {
            CliRun r = CliRun.of(args);
            assertEquals(0, r.status());
            assertEquals(none.out(), r.out(), String.join(" ", args));
            assertEquals("", r.err());
        }
    }

    @Test
    void versionPrintsTheVersion() {
        CliRun r = CliRun.of("--version");
        assertEquals(0, r.status());
        assertEquals("gradshape " + Gradshape.version() + "\n", r.out());
        assertFalse(Gradshape.version().contains("${"), "the version is filtered into version.properties");
    }

    @Test
    void everyCommandHasHelp() {
        for (Object c : Main.builtInCommands()) {
            CliRun r = CliRun.of(name(c), "--help");
            assertEquals(0, r.status(), r.toString());
            assertEquals("", r.err());
            assertTrue(r.out().startsWith("usage: gradshape " + name(c)), r.out());
            assertTrue(r.out().contains(summary(c)), r.out());
            assertTrue(r.out().contains("--backend auto|cpu|cuda|cuda:N"), r.out());
            assertTrue(r.out().contains("-h, --help"), r.out());
            for (OptionSpec o : new CommandLine(c).getCommandSpec().options()) {
                assertTrue(r.out().contains(UsageText.syntax(o)), UsageText.syntax(o) + " in\n" + r.out());
            }
            assertEquals(r.out(), CliRun.of("help", name(c)).out());
            assertEquals(r.out(), CliRun.of(name(c), "-h").out());
        }
    }

    @Test
    void infoEndToEnd() {
        CliRun r = CliRun.of("info");
        assertEquals(0, r.status(), r.toString());
        assertEquals(Gradshape.info(), r.out());
        assertTrue(r.out().startsWith("gradshape " + Gradshape.version() + "\n"), r.out());
        assertTrue(r.out().contains("CPU backend: available"), r.out());
        assertEquals("", r.err());
    }

    @Test
    void infoWithAnExplicitCpuBackendNamesIt() {
        CliRun r = CliRun.of("info", "--backend=cpu");
        assertEquals(0, r.status(), r.toString());
        assertTrue(r.out().endsWith("--backend cpu: " + Backends.cpu().description() + " (CPU backend requested)\n"), r.out());
    }

    @Test
    void cudaWithoutAUsableGpuIsARuntimeErrorSayingWhy() {
        String why = Backends.cudaUnavailableReason(0);
        CliRun r = CliRun.of("info", "--backend", "cuda");
        if (why == null) { // a GPU host: CUDA must then work
            assertEquals(0, r.status(), r.toString());
            assertTrue(r.out().contains("--backend cuda: CUDA device 0"), r.out());
            return;
        }
        assertEquals(Main.EXIT_RUNTIME_ERROR, r.status(), r.toString());
        assertEquals("gradshape: --backend cuda: CUDA is not usable: " + why + "\n", r.err());
        assertEquals("", r.out(), "nothing runs when the backend cannot");
        CliRun device = CliRun.of("info", "--backend", "cuda:7");
        assertEquals(Main.EXIT_RUNTIME_ERROR, device.status(), device.toString());
        assertTrue(device.err().startsWith("gradshape: --backend cuda:7: CUDA is not usable: "), device.err());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '#', quoteCharacter = '"', value = {
        "infp                # unknown command 'infp' (did you mean info?) (see 'gradshape --help')",
        "frobnicate          # unknown command 'frobnicate'; the commands are {commands} (see 'gradshape --help')",
        "help frobnicate     # unknown command 'frobnicate'; the commands are {commands} (see 'gradshape --help')",
        "--frob info         # unknown option --frob before the command (global options: --help, --version, --verbose) (see 'gradshape --help')",
        "info --frob         # unknown option --frob for info (see 'gradshape info --help')",
        "info --backend gpu  # --backend: 'gpu' is not auto, cpu, cuda or cuda:N (see 'gradshape info --help')",
        "info extra          # unexpected argument 'extra': info takes only options (--name value) (see 'gradshape info --help')"})
    void usageErrorsExitWith2AndOneLine(String args, String message) {
        CliRun r = CliRun.of(args.strip().split(" +"));
        assertEquals(Main.EXIT_USAGE, r.status(), r.toString());
        String commands = String.join(", ", commandNames());
        assertEquals("gradshape: " + message.replace("{commands}", commands) + "\n", r.err());
        assertEquals("", r.out());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '#', quoteCharacter = '"', value = {
        "missing   # 1 # w.npy: no such file or directory",
        "npy       # 1 # fm.npy: Fortran-order arrays are not supported",
        "input     # 1 # g.npy: expected shape (2, 3) (the shape of w.npy), got (3, 2)",
        "native    # 1 # an illegal memory access was encountered",
        "argument  # 1 # kernelHeight: 2 is not odd",
        "bug       # 1 # internal error: java.lang.NullPointerException: boom (run with --verbose for the stack trace)",
        "usage     # 2 # --with: 'usage' cannot be combined with itself (see 'gradshape fail --help')"})
    void failuresAreOneLineWithTheirExitStatus(String with, int status, String message) {
        CliRun r = CliRun.with(withFail(), "fail", "--with", with);
        assertEquals(status, r.status(), r.toString());
        assertEquals("gradshape: " + message + "\n", r.err());
        assertEquals("started\n", r.out());
    }

    @Test
    void verboseAddsTheStackTrace() {
        CliRun quiet = CliRun.with(withFail(), "fail", "--with", "native");
        assertFalse(quiet.err().contains("\tat "), quiet.err());
        for (String[] args : List.of(new String[] {"fail", "--with", "native", "--verbose"},
                new String[] {"--verbose", "fail", "--with", "native"})) {
            CliRun loud = CliRun.with(withFail(), args);
            assertEquals(1, loud.status());
            assertTrue(loud.err().startsWith("gradshape: an illegal memory access was encountered\n"), loud.err());
            assertTrue(loud.err().contains("GradshapeException"), loud.err());
            assertTrue(loud.err().contains("\tat io.gradshape.cli.MainTest$Fail.run"), loud.err());
        }
    }

    @Test
    void aCommandsOwnExitStatusIsReturned() {
        assertEquals(3, CliRun.with(withFail(), "fail", "--with", "status").status());
    }
}
