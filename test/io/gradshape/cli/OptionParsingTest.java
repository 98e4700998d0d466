package io.gradshape.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.PowerGrad;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Option parsing on picocli, typed values and their errors, through a command that declares one option of each kind. */
class OptionParsingTest {
    /** Declares the kinds of options the kernel commands use and prints what it parsed. */
    @Command(name = "probe", header = "parses one option of each kind")
    static final class Probe extends KernelCommand {
        @Option(names = "--input", required = true, paramLabel = "FILE", converter = OptionValues.FileName.class,
                description = "input feature map")
        Path input;

        @Option(names = "--kernel", paramLabel = "KHxKW", defaultValue = "3x3", converter = OptionValues.Kernel.class,
                description = "kernel size")
        OptionValues.KernelSize kernel;

        @Option(names = "--padding", paramLabel = "PH,PW", defaultValue = "0,0", converter = OptionValues.Pair.class,
                description = "zero padding")
        OptionValues.IntPair padding;

        @Option(names = "--lr", required = true, paramLabel = "X", converter = OptionValues.Decimal.class, description = "learning rate")
        double lr;

        @Option(names = "--lrf", paramLabel = "X", defaultValue = "0.5", converter = OptionValues.Float32.class,
                description = "learning rate in float32")
        float lrf;

        @Option(names = "--momentum", paramLabel = "X", defaultValue = "0", converter = OptionValues.Decimal.class,
                description = "momentum")
        double momentum;

        @Option(names = "--nesterov", description = "Nesterov momentum")
        boolean nesterov;

        @Option(names = "--reduction", paramLabel = "mean|sum|none", defaultValue = "mean", description = "gradient reduction")
        PowerGrad.Reduction reduction;

        @Option(names = "--range", paramLabel = "LO,HI", converter = OptionValues.ValueRange.class, description = "histogram range")
        OptionValues.Range range;

        @Option(names = "--k", paramLabel = "K", defaultValue = "5", converter = OptionValues.Int.class, description = "sharpness of T_k")
        int k;

        @Option(names = "--ignore-index", paramLabel = "N", converter = OptionValues.Int.class, description = "label to ignore")
        Integer ignoreIndex;

        @Override
        int run(Terminal terminal) {
            check(k >= 1, "--k", "must be at least 1");
            terminal.out().println("input=" + input + " kernel=" + kernel + " padding=" + padding + " lr=" + lr + " lrf=" + lrf
                    + " momentum=" + momentum + " nesterov=" + nesterov + " reduction=" + OptionValues.Word.of(reduction)
                    + " range=" + range + " k=" + k + " ignore=" + (ignoreIndex == null ? "none" : ignoreIndex)
                    + " given=" + given("--k") + " verbose=" + common.verbose());
            return Main.EXIT_OK;
        }
    }

    private static CliRun probe(String... options) {
        String[] args = new String[options.length + 1];
        args[0] = "probe";
        System.arraycopy(options, 0, args, 1, options.length);
        return CliRun.with(List.of(new Probe()), args);
    }

    @Test
    void defaultsApplyWhenOptionsAreLeftOut() {
        CliRun r = probe("--input", "fm.npy", "--lr", "0.1");
        assertEquals(0, r.status(), r.toString());
        assertEquals("input=fm.npy kernel=3x3 padding=0,0 lr=0.1 lrf=0.5 momentum=0.0 nesterov=false reduction=mean"
                + " range=null k=5 ignore=none given=false verbose=false\n", r.out());
        assertEquals("", r.err());
    }

    @Test
    void acceptsBothValueFormsFlagsAndNegativeNumbers() {
        CliRun r = probe("--input=a b.npy", "--kernel", "5x3", "--padding=2,1", "--lr", "1e-3", "--lrf", "-2.5e-1",
                "--momentum", "-0.5", "--nesterov", "--reduction=none", "--range", "-1.5,2", "--k=1", "--ignore-index", "-100",
                "--verbose");
        assertEquals(0, r.status(), r.toString());
        assertEquals("input=a b.npy kernel=5x3 padding=2,1 lr=0.001 lrf=-0.25 momentum=-0.5 nesterov=true"
                + " reduction=none range=-1.5,2.0 k=1 ignore=-100 given=true verbose=true\n", r.out());
    }

    @Test
    void shortFormsOfKernelAndPair() {
        CliRun r = probe("--input", "x", "--lr", "1", "--kernel", "7", "--padding", "3");
        assertEquals(0, r.status(), r.toString());
        assertTrue(r.out().contains("kernel=7x7 padding=3,3"), r.out());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '#', quoteCharacter = '"', value = {
        "--lr abc                 # --lr: 'abc' is not a number",
        "--lr nan                 # --lr: 'nan' is not a number",
        "--lr Infinity            # --lr: 'Infinity' is not a number",
        "--lr 0x10                # --lr: '0x10' is not a number",
        "--lr 1e999               # --lr: '1e999' is out of range",
        "--lr 1 --lrf 1e39        # --lrf: '1e39' is out of range for float32",
        "--lr 1 --k 2.5           # --k: '2.5' is not an integer",
        "--lr 1 --k 99999999999   # --k: '99999999999' is out of range for an integer",
        "--lr 1 --k 0             # --k: '0' must be at least 1",
        "--lr 1 --kernel 3x       # --kernel: '3x' is not a kernel size KHxKW (e.g. 3x3)",
        "--lr 1 --kernel 0x3      # --kernel: '0x3' is not a kernel size: both sizes must be at least 1",
        "--lr 1 --kernel 99999999999 # --kernel: '99999999999' is not a kernel size KHxKW (e.g. 3x3)",
        "--lr 1 --padding 1,a     # --padding: '1,a' is not a pair of integers A,B (e.g. 1,1)",
        "--lr 1 --padding 1,2,3   # --padding: '1,2,3' is not a pair of integers A,B (e.g. 1,1)",
        "--lr 1 --padding 1,3000000000 # --padding: '1,3000000000' is out of range for an integer",
        "--lr 1 --range 2,1       # --range: '2,1' is not a range: LO must be less than HI",
        "--lr 1 --range bogus     # --range: 'bogus' is not a range LO,HI (e.g. -1,1)",
        "--lr 1 --range 0,1e400   # --range: '0,1e400' is out of range",
        "--lr 1 --reduction avg   # --reduction: 'avg' is not one of mean, sum, none",
        "--lr 1 --reduction MEAN  # --reduction: 'MEAN' is not one of mean, sum, none",
        "--lr 1 --ignore-index x  # --ignore-index: 'x' is not an integer",
        "--lr 1 --backend tpu     # --backend: 'tpu' is not auto, cpu, cuda or cuda:N",
        "--lr 1 --backend cuda:99999999999 # --backend: 'cuda:99999999999' is not auto, cpu, cuda or cuda:N",
        "--lr                     # --lr: missing value X",
        "--lr= --k 1              # --lr: missing value X",
        "--lr --k 1               # --lr: missing value X",
        "--lr 1 --lr 2            # --lr given more than once (first as '1')",
        "--lr 1 --nesterov=yes    # --nesterov is a flag and takes no value",
        "--lr 1 --nesterov --nesterov # --nesterov given more than once",
        "--lr 1 --momentun 0.9    # unknown option --momentun for probe (did you mean --momentum?)",
        "--lr 1 --zzz 1           # unknown option --zzz for probe",
        "--lr 1 -m 0.9            # unknown option -m",
        "--lr 1 extra             # unexpected argument 'extra': probe takes only options (--name value)"})
    void badValuesAreUsageErrorsNamingTheOption(String options, String message) {
        List<String> words = new java.util.ArrayList<>(List.of("--input", "fm.npy"));
        words.addAll(List.of(options.strip().split(" +")));
        CliRun r = probe(words.toArray(String[]::new));
        assertEquals(Main.EXIT_USAGE, r.status(), r.toString());
        assertEquals("gradshape: " + message + " (see 'gradshape probe --help')\n", r.err(), r.toString());
        assertEquals("", r.out());
    }

    @Test
    void missingRequiredOptionsAreNamedTogether() {
        CliRun r = probe("--k", "3");
        assertEquals(Main.EXIT_USAGE, r.status(), r.toString());
        assertEquals("gradshape: missing required options --input, --lr (see 'gradshape probe --help')\n", r.err());
        r = probe("--lr", "3");
        assertEquals("gradshape: missing required option --input (see 'gradshape probe --help')\n", r.err());
    }

    @Test
    void helpWinsOverErrorsAndListsEveryOption() {
        CliRun r = probe("--lr", "abc", "--help");
        assertEquals(0, r.status(), r.toString());
        assertTrue(r.out().startsWith("usage: gradshape probe --input FILE --lr X [options]\n\nparses one option of each kind\n"),
                r.out());
        for (String syntax : List.of("--input FILE", "--kernel KHxKW", "--padding PH,PW", "--lr X", "--lrf X", "--momentum X",
                "--nesterov", "--reduction mean|sum|none", "--range LO,HI", "--k K", "--ignore-index N",
                "--backend auto|cpu|cuda|cuda:N", "--verbose", "-h, --help")) {
            assertTrue(r.out().contains("\n  " + syntax + " "), syntax + " in\n" + r.out());
        }
        assertTrue(r.out().contains("kernel size (default: 3x3)"), r.out());
        assertTrue(r.out().contains("input feature map (required)"), r.out());
        assertTrue(r.out().indexOf("--ignore-index N") < r.out().indexOf("--backend"), "own options first:\n" + r.out());
        assertEquals(r.out(), probe("-h").out());
        assertEquals(r.out(), CliRun.with(List.of(new Probe()), "help", "probe").out());
    }

    @Test
    void verboseBeforeOrAfterTheCommandAddsTheStackTraceToUsageErrors() {
        for (String[] args : List.of(new String[] {"probe", "--input", "x", "--lr", "abc", "--verbose"},
                new String[] {"--verbose", "probe", "--input", "x", "--lr", "abc"})) {
            CliRun r = CliRun.with(List.of(new Probe()), args);
            assertEquals(Main.EXIT_USAGE, r.status(), r.toString());
            assertTrue(r.err().startsWith("gradshape: --lr: 'abc' is not a number (see 'gradshape probe --help')\n"), r.err());
            assertTrue(r.err().contains("\tat picocli."), r.err());
        }
    }

    @Test
    void suggestsNearMissesOnly() {
        assertEquals(" (did you mean --momentum?)", Main.suggestion("--momentm", List.of("--lr", "--momentum")));
        assertEquals(" (did you mean info?)", Main.suggestion("infp", List.of("info", "demo")));
        assertEquals("", Main.suggestion("--x", List.of("--lr", "--momentum")));
        assertEquals(3, Main.editDistance("kitten", "sitting"));
    }
}
