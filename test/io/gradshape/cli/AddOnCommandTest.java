package io.gradshape.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** Add-on commands: found with ServiceLoader (the test registration in test/META-INF/services), run like the core's. */
class AddOnCommandTest {
    @TempDir
    Path tmp;

    /** An add-on whose name is a core command's. */
    @CommandLine.Command(name = "info", header = "tries to replace the core's info")
    public static final class Clash implements AddOnCommand {
        @Override
        public Integer call() {
            return 99;
        }
    }

    /** An add-on without a {@code @Command} annotation. */
    public static final class NotACommand implements AddOnCommand {
        @Override
        public Integer call() {
            return 99;
        }
    }

    @Test
    void brokenAddOnsAreLeftOutWithOneWarningEachAndTheRestRuns() throws IOException {
        Path services = Files.createDirectories(tmp.resolve("META-INF/services"));
        Files.writeString(services.resolve(AddOnCommand.class.getName()), String.join("\n",
                "io.gradshape.cli.NoSuchAddOn", Clash.class.getName(), NotACommand.class.getName(), "") );
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Terminal t = new Terminal(new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8), false);
        try (URLClassLoader loader = new URLClassLoader(new URL[] {tmp.toUri().toURL()}, getClass().getClassLoader())) {
            CommandLine root = Main.commandLine(t, Main.builtInCommands(), loader);
            List<String> names = UsageText.visibleCommands(root).stream().map(CommandLine::getCommandName).toList();
            assertEquals(List.of("info", "dependence", "sgd-step", "pgt", "demo", "echo-addon"), names);
            assertTrue(root.getSubcommands().get("info").getCommand() instanceof InfoCommand, "the core's info stays");
        }
        List<String> warnings = err.toString(StandardCharsets.UTF_8).lines().toList();
        assertEquals(3, warnings.size(), String.join("\n", warnings));
        assertTrue(warnings.get(0).startsWith("gradshape: warning: an add-on command was not loaded: ")
                && warnings.get(0).contains("io.gradshape.cli.NoSuchAddOn"), warnings.get(0));
        assertEquals("gradshape: warning: add-on command " + Clash.class.getName() + " was not added: its name 'info' is taken",
                warnings.get(1));
        assertTrue(warnings.get(2).startsWith("gradshape: warning: add-on command " + NotACommand.class.getName()
                + " was not added: "), warnings.get(2));
        assertEquals("", out.toString(StandardCharsets.UTF_8));
    }
    @Test
    void theAddOnIsListedAfterTheCoreCommands() {
        CliRun r = CliRun.of("--help");
        assertEquals(0, r.status(), r.toString());
        assertTrue(r.out().contains("\n  echo-addon   an add-on found through ServiceLoader (tests only)\n"), r.out());
        assertTrue(r.out().indexOf("\n  demo ") < r.out().indexOf("\n  echo-addon "), r.out());
        assertEquals(List.of("info", "dependence", "sgd-step", "pgt", "demo", "echo-addon"), MainTest.commandNames());
    }

    @Test
    void itRunsWithItsOptionsAndTheTerminal() {
        CliRun r = CliRun.of("echo-addon", "--times=2", "hello", "world");
        assertEquals(0, r.status(), r.toString());
        assertEquals("hello world\nhello world\n", r.out());
        assertEquals("stderr through picocli\n", r.err());
        assertEquals(7, CliRun.of("echo-addon", "--verbose").status(), "its own exit status is returned");
    }

    @Test
    void itsHelpIsRenderedAsTheCoreCommands() {
        CliRun r = CliRun.of("echo-addon", "--help");
        assertEquals(0, r.status(), r.toString());
        assertTrue(r.out().startsWith("usage: gradshape echo-addon WORD [options]\n\nan add-on found through ServiceLoader"), r.out());
        assertTrue(r.out().contains("--times N"), r.out());
        assertTrue(r.out().contains("--backend auto|cpu|cuda|cuda:N"), r.out());
        assertEquals(r.out(), CliRun.of("help", "echo-addon").out());
    }

    @Test
    void itsErrorsAreOneLineWithTheSameExitStatuses() {
        CliRun usage = CliRun.of("echo-addon", "--fail", "usage");
        assertEquals(Main.EXIT_USAGE, usage.status(), usage.toString());
        assertEquals("gradshape: --fail usage was asked for (see 'gradshape echo-addon --help')\n", usage.err());
        CliRun parse = CliRun.of("echo-addon", "--times", "x");
        assertEquals(Main.EXIT_USAGE, parse.status(), parse.toString());
        assertEquals("gradshape: --times: 'x' is not an integer (see 'gradshape echo-addon --help')\n", parse.err());
        CliRun runtime = CliRun.of("echo-addon", "--fail", "runtime");
        assertEquals(Main.EXIT_RUNTIME_ERROR, runtime.status(), runtime.toString());
        assertEquals("gradshape: the add-on failed as asked\n", runtime.err());
        CliRun unknown = CliRun.of("echo-addon", "--tims", "2");
        assertEquals(Main.EXIT_USAGE, unknown.status(), unknown.toString());
        assertEquals("gradshape: unknown option --tims for echo-addon (did you mean --times?) (see 'gradshape echo-addon --help')\n",
                unknown.err());
    }
}
