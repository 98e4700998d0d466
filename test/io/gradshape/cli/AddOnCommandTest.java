package io.gradshape.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Add-on commands: found with ServiceLoader (the test registration in test/META-INF/services), run like the core's. */
class AddOnCommandTest {
    @Test
    void theAddOnIsListedAfterTheCoreCommands() {
        CliRun r = CliRun.of("--help");
        assertEquals(0, r.status(), r.toString());
        assertTrue(r.out().contains("\n  echo-addon   an add-on found through ServiceLoader (tests only)\n"), r.out());
        assertTrue(r.out().indexOf("\n  demo ") < r.out().indexOf("\n  echo-addon "), r.out());
        assertEquals(java.util.List.of("info", "dependence", "sgd-step", "pgt", "demo", "echo-addon"), MainTest.commandNames());
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
