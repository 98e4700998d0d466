package io.gradshape.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Option parsing, typed values and their errors, through a command that declares one option of each kind. */
class ArgsTest {
    /** Declares the kinds of options the kernel commands use and prints what it parsed. */
    static final class Probe implements Command {
        @Override
        public String name() {
            return "probe";
        }

        @Override
        public String summary() {
            return "parses one option of each kind";
        }

        @Override
        public List<Option> options() {
            return List.of(
                    Option.required("input", "FILE", "input feature map"),
                    Option.optional("kernel", "KHxKW", "kernel size", "3x3"),
                    Option.optional("padding", "PH,PW", "zero padding", "0,0"),
                    Option.required("lr", "X", "learning rate"),
                    Option.optional("momentum", "X", "momentum", "0"),
                    Option.flag("nesterov", "Nesterov momentum"),
                    Option.choice("reduction", "gradient reduction", "mean", "mean", "sum", "none"),
                    Option.optional("range", "pairs|channel|LO,HI", "histogram ranges", "pairs"),
                    Option.optional("bins", "sturges|N", "bins per axis", "sturges"),
                    Option.optional("k", "K", "sharpness of T_k", "5"),
                    Option.optional("ignore-index", "N", "label to ignore", null));
        }

        @Override
        public int run(Args args, Terminal terminal) throws UsageException {
            int k = args.intValue("k");
            args.check(k >= 1, "k", "must be at least 1");
            String range = args.string("range");
            String bins = args.string("bins");
            terminal.out().println("input=" + args.path("input")
                    + " kernel=" + args.kernelSize("kernel")
                    + " padding=" + args.intPair("padding")
                    + " lr=" + args.doubleValue("lr")
                    + " lrf=" + args.floatValue("lr")
                    + " momentum=" + args.doubleValue("momentum")
                    + " nesterov=" + args.flag("nesterov")
                    + " reduction=" + args.string("reduction")
                    + " range=" + (range.equals("pairs") || range.equals("channel") ? range : args.range("range"))
                    + " bins=" + (bins.equals("sturges") ? bins : Integer.toString(args.intValue("bins")))
                    + " k=" + k
                    + " ignore=" + (args.has("ignore-index") ? Long.toString(args.longValue("ignore-index")) : "none")
                    + " verbose=" + args.verbose());
            return Main.EXIT_OK;
        }
    }

    static final List<Command> COMMANDS = List.of(new Probe());

    private static CliRun probe(String... options) {
        String[] args = new String[options.length + 1];
        args[0] = "probe";
        System.arraycopy(options, 0, args, 1, options.length);
        return CliRun.with(COMMANDS, args);
    }

    @Test
    void defaultsApplyWhenOptionsAreLeftOut() {
        CliRun r = probe("--input", "fm.npy", "--lr", "0.1");
        assertEquals(0, r.status(), r.toString());
        assertEquals("input=fm.npy kernel=3x3 padding=0,0 lr=0.1 lrf=0.1 momentum=0.0 nesterov=false reduction=mean"
                + " range=pairs bins=sturges k=5 ignore=none verbose=false\n", r.out());
        assertEquals("", r.err());
    }

    @Test
    void acceptsBothValueFormsFlagsAndNegativeNumbers() {
        CliRun r = probe("--input=a b.npy", "--kernel", "5x3", "--padding=2,1", "--lr", "1e-3", "--momentum", "-0.5",
                "--nesterov", "--reduction=none", "--range", "-1.5,2", "--bins", "64", "--k=1", "--ignore-index", "-100",
                "--verbose");
        assertEquals(0, r.status(), r.toString());
        assertEquals("input=a b.npy kernel=5x3 padding=2,1 lr=0.001 lrf=0.001 momentum=-0.5 nesterov=true"
                + " reduction=none range=-1.5,2.0 bins=64 k=1 ignore=-100 verbose=true\n", r.out());
    }

    @Test
    void shortFormsOfKernelAndPair() {
        CliRun r = probe("--input", "x", "--lr", "1", "--kernel", "7", "--padding", "3", "--range", "channel");
        assertEquals(0, r.status(), r.toString());
        assertTrue(r.out().contains("kernel=7x7 padding=3,3"), r.out());
        assertTrue(r.out().contains("range=channel"), r.out());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '#', quoteCharacter = '"', value = {
        "--lr abc                 # --lr: 'abc' is not a number",
        "--lr nan                 # --lr: 'nan' is not a number",
        "--lr 0x10                # --lr: '0x10' is not a number",
        "--lr 1e999               # --lr: '1e999' is out of range",
        "--lr 1e39                # --lr: '1e39' is out of range for float32",
        "--lr 1 --k 2.5           # --k: '2.5' is not an integer",
        "--lr 1 --k 99999999999   # --k: '99999999999' is out of range for an integer",
        "--lr 1 --k 0             # --k: '0' must be at least 1",
        "--lr 1 --kernel 3x       # --kernel: '3x' is not a kernel size KHxKW (e.g. 3x3)",
        "--lr 1 --kernel 0x3      # --kernel: '0x3' is not a kernel size: both sizes must be at least 1",
        "--lr 1 --padding 1,a     # --padding: '1,a' is not a pair of integers A,B (e.g. 1,1)",
        "--lr 1 --padding 1,2,3   # --padding: '1,2,3' is not a pair of integers A,B (e.g. 1,1)",
        "--lr 1 --range 2,1       # --range: '2,1' is not a range: LO must be less than HI (expected pairs|channel|LO,HI)",
        "--lr 1 --range bogus     # --range: 'bogus' is not a range LO,HI (e.g. -1,1) (expected pairs|channel|LO,HI)",
        "--lr 1 --bins many       # --bins: 'many' is not an integer (expected sturges|N)",
        "--lr 1 --reduction avg   # --reduction: 'avg' is not one of mean, sum, none",
        "--lr 1 --ignore-index x  # --ignore-index: 'x' is not an integer",
        "--lr 1 --backend tpu     # --backend: 'tpu' is not auto, cpu, cuda or cuda:N",
        "--lr                     # --lr: missing value X",
        "--lr= --k 1              # --lr: missing value X",
        "--lr --k 1               # --lr: missing value X",
        "--lr 1 --lr 2            # --lr given twice ('1' and '2')",
        "--lr 1 --nesterov=yes    # --nesterov is a flag and takes no value",
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
        for (Option o : Args.allOptions(new Probe())) {
            assertTrue(r.out().contains(o.syntax().equals("--help") ? "-h, --help" : o.syntax()), o.syntax() + " in\n" + r.out());
        }
        assertTrue(r.out().contains("--kernel KHxKW"), r.out());
        assertTrue(r.out().contains("kernel size (default: 3x3)"), r.out());
        assertTrue(r.out().contains("input feature map (required)"), r.out());
        assertEquals(r.out(), probe("-h").out());
        assertEquals(r.out(), CliRun.with(COMMANDS, "help", "probe").out());
    }

    @Test
    void gettersRefuseUndeclaredOrAbsentOptions() throws UsageException {
        Args args = Args.parse(new Probe(), List.of("--input", "x", "--lr", "1"));
        assertThrows(IllegalStateException.class, () -> args.string("nope"));
        assertThrows(IllegalStateException.class, () -> args.string("ignore-index"));
        assertThrows(IllegalStateException.class, () -> args.flag("lr"));
        assertThrows(IllegalStateException.class, () -> args.string("nesterov"));
        assertFalse(args.has("momentum"), "a default is not 'given'");
        assertEquals(0.0, args.doubleValue("momentum"));
        assertEquals(new Args.KernelSize(3, 3), args.kernelSize("kernel"));
        assertEquals(new Args.IntPair(0, 0), args.intPair("padding"));
        assertEquals("probe", args.command());
    }

    @Test
    void optionsAreDeclaredConsistently() {
        assertThrows(IllegalArgumentException.class, () -> Option.required("Bad_Name", "X", "h"));
        assertThrows(IllegalArgumentException.class, () -> Option.choice("c", "h", "max", "mean", "sum"));
        assertThrows(IllegalArgumentException.class, () -> Option.choice("c", "h", null));
        assertThrows(NullPointerException.class, () -> Option.optional("x", null, "h", "1"));
        assertEquals("--out DIR", Option.required("out", "DIR", "h").syntax());
        assertEquals("--maximize", Option.flag("maximize", "h").syntax());
    }

    @Test
    void suggestsNearMissesOnly() {
        assertEquals(" (did you mean --momentum?)", Args.suggestion("--momentm", List.of("lr", "momentum")));
        assertEquals("", Args.suggestion("--x", List.of("lr", "momentum")));
        assertEquals(3, Args.editDistance("kitten", "sitting"));
    }
}
