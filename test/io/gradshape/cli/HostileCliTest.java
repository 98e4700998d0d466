package io.gradshape.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.io.Npy;
import io.gradshape.io.NpyArray;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Hostile command lines (issue 10): truncated and odd .npy files, missing or unwritable outputs, FIFOs
 * and devices as inputs, bad and huge numbers, unknown options. Every case checks the exit status, that
 * stderr is one line starting {@code "gradshape: "} and holding the expected words, and that the
 * working folder is byte for byte as before (no partial output, no staging folder left). Cases that once
 * crashed the JVM, or reach native code with extreme sizes, run in a child JVM ({@code java -cp} of the
 * test classpath running {@link Main}), so that a crash is a failure rather than the end of the run.
 */
class HostileCliTest {
    /** Any status but a crash: the case is valid, extreme input that must end in a result or an error. */
    private static final int RESULT_OR_ERROR = -1;
    private static final long SEED = 20261201L;

    @TempDir
    Path dir;

    /** Makes the files of a case in {@code dir} and returns its arguments ({@code OUT} is {@code dir/out}). */
    @FunctionalInterface
    interface Setup {
        List<String> args(Path dir) throws IOException;
    }

    record Case(String name, Setup setup, int status, String message) {
        @Override
        public String toString() {
            return name;
        }
    }

    private static Case c(String name, int status, String message, Setup setup) {
        return new Case(name, setup, status, message);
    }

    // ---- inputs -------------------------------------------------------------------------------------

    /** A valid float32 feature map [2][3][5][5] of seeded random values. */
    static Path fm(Path dir) throws IOException {
        return write(dir, "fm.npy", NpyArray.of(random(2 * 3 * 5 * 5, 1), 2, 3, 5, 5));
    }

    static Path write(Path dir, String name, NpyArray a) throws IOException {
        Path p = dir.resolve(name);
        Npy.write(p, a);
        return p;
    }

    static float[] random(int n, int salt) {
        Random rnd = new Random(SEED + salt);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = rnd.nextFloat() * 2 - 1;
        }
        return a;
    }

    /** A .npy file with the given version, header dict (padded as NumPy pads it) and data bytes. */
    static Path npy(Path dir, String name, int major, String dict, int dataBytes) throws IOException {
        byte[] text = dict.getBytes(StandardCharsets.ISO_8859_1);
        int prefix = 6 + 2 + (major == 1 ? 2 : 4);
        int padded = (prefix + text.length + 1 + 63) / 64 * 64 - prefix;
        ByteBuffer b = ByteBuffer.allocate(prefix + padded + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) major, 0});
        if (major == 1) {
            b.putShort((short) padded);
        } else {
            b.putInt(padded);
        }
        b.put(text);
        while (b.position() < prefix + padded - 1) {
            b.put((byte) ' ');
        }
        b.put((byte) '\n');
        return Files.write(dir.resolve(name), b.array());
    }

    static Path npy(Path dir, String dict, int dataBytes) throws IOException {
        return npy(dir, "odd.npy", 1, dict, dataBytes);
    }

    static String dict(String descr, String shape) {
        return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    }

    static Path fifo(Path dir, String name) throws IOException {
        Path p = dir.resolve(name);
        try {
            Process mk = new ProcessBuilder("mkfifo", p.toString()).inheritIO().start();
            assertTrue(mk.waitFor(30, TimeUnit.SECONDS) && mk.exitValue() == 0, "mkfifo " + p);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
        return p;
    }

    static List<String> dependence(Path input, String... options) {
        List<String> a = new ArrayList<>(List.of("dependence", "--input", input.toString()));
        a.addAll(List.of(options));
        a.addAll(List.of("--out", "OUT"));
        return a;
    }

    static List<String> sgd(Path dir, String... options) throws IOException {
        Path w = write(dir, "w.npy", NpyArray.of(random(54, 2), 2, 3, 3, 3));
        Path g = write(dir, "g.npy", NpyArray.of(random(54, 3), 2, 3, 3, 3));
        List<String> a = new ArrayList<>(List.of("sgd-step", "--weights", w.toString(), "--grads", g.toString()));
        a.addAll(List.of(options));
        a.addAll(List.of("--out", "OUT"));
        return a;
    }

    static List<String> pgt(Path dir, String... options) throws IOException {
        Path z = write(dir, "z.npy", NpyArray.of(random(12, 4), 3, 4));
        List<String> a = new ArrayList<>(List.of("pgt", "--logits", z.toString()));
        a.addAll(List.of(options));
        a.addAll(List.of("--out", "OUT"));
        return a;
    }

    static List<String> pgtLabels(Path dir, String... options) throws IOException {
        Path y = write(dir, "y.npy", NpyArray.of(new int[] {0, 3, 1}, 3));
        List<String> a = pgt(dir, "--labels", y.toString());
        a.addAll(a.size() - 2, List.of(options));
        return a;
    }

    // ---- the cases ----------------------------------------------------------------------------------

    static Stream<Case> inProcess() {
        List<Case> cases = new ArrayList<>();
        // Truncated and odd .npy files: runtime errors naming the file.
        cases.add(c("empty file", 1, "odd.npy: empty file", d -> dependence(Files.write(d.resolve("odd.npy"), new byte[0]))));
        cases.add(c("text file", 1, "odd.npy: not a .npy file", d -> dependence(Files.writeString(d.resolve("odd.npy"), "1 2 3\n"))));
        cases.add(c("magic only", 1, "odd.npy: truncated", d -> dependence(Files.write(d.resolve("odd.npy"),
                new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'}))));
        cases.add(c("version 9.0", 1, "unsupported .npy format version 9.0", d -> dependence(npy(d, "odd.npy", 9, dict("<f4", "(1,)"), 4))));
        cases.add(c("header longer than the file", 1, "odd.npy: truncated: the header is", d -> {
            Path p = npy(d, dict("<f4", "(1,)"), 0);
            byte[] b = Files.readAllBytes(p);
            return dependence(Files.write(p, Arrays.copyOf(b, 40)));
        }));
        cases.add(c("header not a dict", 1, "odd.npy: malformed header", d -> dependence(npy(d, "hello", 4))));
        cases.add(c("float16", 1, "float16", d -> dependence(npy(d, dict("<f2", "(2, 3, 5, 5)"), 300))));
        cases.add(c("big-endian", 1, "big-endian", d -> dependence(npy(d, dict(">f4", "(2, 3, 5, 5)"), 600))));
        cases.add(c("bool", 1, "bool", d -> dependence(npy(d, dict("|b1", "(2, 3, 5, 5)"), 150))));
        cases.add(c("unicode strings", 1, "unicode string", d -> dependence(npy(d, dict("<U3", "(2,)"), 24))));
        cases.add(c("structured", 1, "structured arrays", d -> dependence(npy(d,
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8))));
        cases.add(c("Fortran order", 1, "Fortran-order", d -> dependence(npy(d,
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 5, 5), }", 600))));
        cases.add(c("negative dimension", 1, "odd.npy: malformed header", d -> dependence(npy(d, dict("<f4", "(-1, 3, 5, 5)"), 0))));
        cases.add(c("dimension of 2^40", 1, "more than one Java array holds", d -> dependence(npy(d, dict("<f4", "(1099511627776,)"), 0))));
        cases.add(c("shape product overflows int", 1, "odd.npy: ", d -> dependence(npy(d, dict("<f4", "(65536, 65536, 2, 2)"), 0))));
        cases.add(c("data truncated", 1, "odd.npy: truncated", d -> dependence(npy(d, dict("<f4", "(2, 3, 5, 5)"), 599))));
        cases.add(c("data too long", 1, "size does not match shape", d -> dependence(npy(d, dict("<f4", "(2, 3, 5, 5)"), 604))));
        cases.add(c("shape not a tuple", 1, "not a tuple of integers", d -> dependence(npy(d, dict("<f4", "5"), 20))));
        cases.add(c("no descr", 1, "odd.npy: malformed header", d -> dependence(npy(d,
                "{'fortran_order': False, 'shape': (1,), }", 4))));
        cases.add(c("deeply nested header", 1, "odd.npy: ", d -> dependence(npy(d,
                "{'descr': '<f4', 'fortran_order': False, 'shape': " + "(".repeat(20000) + ")".repeat(20000) + ", }", 0))));
        cases.add(c("rank 3 map", 1, "expected a 4-D array [N][C][H][W]", d -> dependence(write(d, "x3.npy",
                NpyArray.of(random(27, 5), 3, 3, 3)))));
        cases.add(c("empty map", 1, "empty feature map (0, 3, 5, 5)", d -> dependence(write(d, "x0.npy",
                NpyArray.of(new float[0], 0, 3, 5, 5)))));
        cases.add(c("float64 beyond float32", 1, "overflows float32", d -> {
            double[] x = new double[150];
            x[7] = 1e300;
            return dependence(write(d, "x64.npy", NpyArray.of(x, 2, 3, 5, 5)));
        }));
        cases.add(c("NaN in the map", 1, "gradshape: ", d -> {
            float[] x = random(150, 6);
            x[17] = Float.NaN;
            return dependence(write(d, "xnan.npy", NpyArray.of(x, 2, 3, 5, 5)));
        }));
        cases.add(c("float labels", 1, "expected integers (int32 or int64), got float32", d -> pgt(d, "--labels",
                write(d, "yf.npy", NpyArray.of(new float[] {0, 1, 2}, 3)).toString(), "--alpha", "0.25")));
        cases.add(c("label of 2^40", 1, "y[1] = 1099511627776 is outside [0, 4)", d -> pgt(d, "--labels",
                write(d, "yl.npy", NpyArray.of(new long[] {0, 1L << 40, 1}, 3)).toString(), "--alpha", "0.25")));
        cases.add(c("infinite logit", 1, "logits must be finite", d -> {
            float[] z = random(12, 7);
            z[5] = Float.NEGATIVE_INFINITY;
            Path zf = write(d, "zinf.npy", NpyArray.of(z, 3, 4));
            Path y = write(d, "y.npy", NpyArray.of(new int[] {0, 1, 2}, 3));
            return List.of("pgt", "--logits", zf.toString(), "--labels", y.toString(), "--alpha", "1", "--out", "OUT");
        }));
        cases.add(c("NaN in targets", 1, "qnan.npy: q[2][1] is NaN; targets must be finite", d -> {
            float[] q = new float[12];
            q[9] = Float.NaN;
            return pgt(d, "--targets", write(d, "qnan.npy", NpyArray.of(q, 3, 4)).toString(), "--alpha", "0.25");
        }));
        cases.add(c("infinity in targets", 1, "qinf.npy: q[0][0] is Infinity; targets must be finite", d -> {
            float[] q = new float[12];
            q[0] = Float.POSITIVE_INFINITY;
            return pgt(d, "--targets", write(d, "qinf.npy", NpyArray.of(q, 3, 4)).toString(), "--alpha", "0.25");
        }));
        cases.add(c("grads of another shape", 1, "expected shape (2, 3, 3, 3)", d -> {
            List<String> a = sgd(d, "--lr", "0.1");
            a.set(4, write(d, "g2.npy", NpyArray.of(random(54, 8), 54)).toString());
            return a;
        }));
        cases.add(c("NaN in G", 1, "the scale must be finite", d -> {
            float[] g = new float[9];
            g[4] = Float.NaN;
            return sgd(d, "--scale", write(d, "G.npy", NpyArray.of(g, 3, 3)).toString(), "--lr", "0.1");
        }));
        cases.add(c("G of the wrong kernel", 1, "expected shape (3, 3)", d -> sgd(d, "--scale",
                write(d, "G.npy", NpyArray.of(new float[6], 3, 2)).toString(), "--lr", "0.1")));

        // Missing inputs, unusable outputs.
        cases.add(c("missing input", 1, "missing.npy: no such file or directory", d -> dependence(d.resolve("missing.npy"))));
        cases.add(c("input is a folder", 1, "is a directory", d -> dependence(Files.createDirectory(d.resolve("folder.npy")))));
        cases.add(c("input is /dev/zero", 1, "/dev/zero: is not a regular file", d -> dependence(Path.of("/dev/zero"))));
        cases.add(c("input is /dev/null", 1, "/dev/null: is not a regular file", d -> dependence(Path.of("/dev/null"))));
        cases.add(c("--out is a file", 1, "not a directory", d -> {
            List<String> a = dependence(fm(d));
            a.set(a.size() - 1, Files.writeString(d.resolve("file.txt"), "x").toString());
            return a;
        }));
        cases.add(c("--out under a file", 1, "file.txt: not a directory", d -> {
            List<String> a = dependence(fm(d));
            a.set(a.size() - 1, Files.writeString(d.resolve("file.txt"), "x").resolve("sub/out").toString());
            return a;
        }));
        cases.add(c("--out on a file system that refuses folders", 1, "cannot write results here", d -> {
            List<String> a = dependence(fm(d));
            a.set(a.size() - 1, "/proc/gradshape-hostile-test-out");
            return a;
        }));
        cases.add(c("--out holds a folder named G.npy", 1, "G.npy: exists and is not a regular file", d -> {
            Path out = Files.createDirectories(d.resolve("out"));
            Npy.write(out.resolve("nmi.npy"), NpyArray.of(new float[] {1}, 1));
            Npy.write(out.resolve("S.npy"), NpyArray.of(new float[] {2}, 1));
            Files.createDirectories(out.resolve("G.npy/kept"));
            return dependence(fm(d));
        }));
        cases.add(c("--out holds a folder named momentum.npy", 1, "momentum.npy: exists and is not a regular file", d -> {
            Files.createDirectories(d.resolve("out/momentum.npy"));
            return sgd(d, "--lr", "0.1");
        }));
        cases.add(c("--out holds a FIFO named grad.npy", 1, "grad.npy: exists and is not a regular file", d -> {
            Files.createDirectories(d.resolve("out"));
            fifo(d.resolve("out"), "grad.npy");
            return pgtLabels(d, "--alpha", "0.25");
        }));

        // FIFOs as inputs: refused before they are opened (opening one waits for a writer).
        cases.add(c("FIFO as --input", 1, "pipe.npy: is not a regular file", d -> dependence(fifo(d, "pipe.npy"))));
        cases.add(c("link to a FIFO as --input", 1, "link.npy: is not a regular file", d -> {
            Path link = Files.createSymbolicLink(d.resolve("link.npy"), fifo(d, "pipe.npy"));
            return dependence(link);
        }));
        cases.add(c("FIFO as --weights", 1, "pipe.npy: is not a regular file", d -> {
            List<String> a = sgd(d, "--lr", "0.1");
            a.set(2, fifo(d, "pipe.npy").toString());
            return a;
        }));
        cases.add(c("FIFO as --grads", 1, "pipe.npy: is not a regular file", d -> {
            List<String> a = sgd(d, "--lr", "0.1");
            a.set(4, fifo(d, "pipe.npy").toString());
            return a;
        }));
        cases.add(c("FIFO as --scale", 1, "pipe.npy: is not a regular file", d -> sgd(d, "--scale", fifo(d, "pipe.npy").toString(),
                "--lr", "0.1")));
        cases.add(c("FIFO as --momentum-buffer", 1, "pipe.npy: is not a regular file", d -> sgd(d, "--momentum-buffer",
                fifo(d, "pipe.npy").toString(), "--momentum", "0.9", "--lr", "0.1")));
        cases.add(c("FIFO as --logits", 1, "pipe.npy: is not a regular file", d -> {
            List<String> a = pgtLabels(d, "--alpha", "1");
            a.set(2, fifo(d, "pipe.npy").toString());
            return a;
        }));
        cases.add(c("FIFO as --labels", 1, "pipe.npy: is not a regular file", d -> pgt(d, "--labels", fifo(d, "pipe.npy").toString(),
                "--alpha", "1")));
        cases.add(c("FIFO as --targets", 1, "pipe.npy: is not a regular file", d -> pgt(d, "--targets",
                fifo(d, "pipe.npy").toString(), "--alpha", "1")));

        // Bad numbers: usage errors naming the option, before any file is read or written.
        String[][] dependenceNumbers = {
            {"--kernel", "65537", "--kernel: '65537' is too large: at most 1023 per axis"},
            {"--kernel", "1025x3", "--kernel: '1025x3' is too large"},
            {"--kernel", "4x3", "--kernel: '4x3' must have both sizes odd and >= 3"},
            {"--kernel", "1", "--kernel: '1' must have both sizes odd and >= 3"},
            {"--kernel", "99999999999", "--kernel: '99999999999' is not a kernel size"},
            {"--kernel", "-3", "--kernel: '-3' is not a kernel size"},
            {"--padding", "2147483647", "--padding: '2147483647' is too large: the padded map 4294967295 x 4294967295"},
            {"--padding", "2147483647,0", "--padding: '2147483647,0' is too large: the padded map 4294967295 x 1"},
            {"--padding", "-1,0", "--padding: '-1,0' must be two integers >= 0"},
            {"--padding", "1,99999999999", "--padding: '1,99999999999' is out of range for an integer"},
            {"--padding", "40000,40000", "--padding: '40000,40000' is too large: the padded map 80001 x 80001 exceeds"},
            {"--padding", "23169,23169", "--padding: '23169,23169' is too large for the 5x5 maps of"},
            {"--bins", "1", "--bins: '1' must be 'sturges' or an integer from 2 to 256"},
            {"--bins", "257", "--bins: '257' must be 'sturges' or an integer from 2 to 256"},
            {"--bins", "99999999999", "--bins: '99999999999' must be 'sturges' or an integer from 2 to 256"},
            {"--bins", "1.5", "--bins: '1.5' is not an integer (expected sturges|N)"},
            {"--range", "1,1", "--range: '1,1' is not a range: LO must be less than HI"},
            {"--range", "-1e39,1", "--range: '-1e39,1' is out of range for float32"},
            {"--range", "1,1.00000001", "--range: '1,1.00000001' is not a range in float32"},
            {"--range", "everything", "--range: 'everything' is not a range LO,HI (e.g. -1,1) (expected pairs|channel|LO,HI)"},
            {"--k", "0.5", "--k: '0.5' must be a number >= 1"},
            {"--k", "1e39", "--k: '1e39' is out of range for float32"},
            {"--k", "NaN", "--k: 'NaN' is not a number"},
            {"--order", "best", "--order: 'best' is not one of reference, paper"},
            {"--layout", "NCHW", "--layout: 'NCHW' is not one of nchw, nhwc"},
        };
        for (String[] n : dependenceNumbers) {
            cases.add(c("dependence " + n[0] + " " + n[1], 2, n[2], d -> dependence(fm(d), n[0], n[1])));
        }
        String[][] sgdNumbers = {
            {"--lr", "-1", "--lr: '-1' must be >= 0"},
            {"--lr", "1e39", "--lr: '1e39' is out of range for float32"},
            {"--lr", "inf", "--lr: 'inf' is not a number"},
            {"--lr", "0x1p3", "--lr: '0x1p3' is not a number"},
            {"--momentum", "-0.5", "--momentum: '-0.5' must be >= 0"},
            {"--weight-decay", "-1", "--weight-decay: '-1' must be >= 0"},
            {"--layout", "hwio", "--layout applies only with --scale"},
        };
        for (String[] n : sgdNumbers) {
            cases.add(c("sgd-step " + n[0] + " " + n[1], 2, n[2], d -> {
                List<String> a = sgd(d, n[0], n[1]);
                if (!n[0].equals("--lr")) {
                    a.addAll(a.size() - 2, List.of("--lr", "0.1"));
                }
                return a;
            }));
        }
        String[][] pgtNumbers = {
            {"--alpha", "-1", "--alpha: '-1' must be >= 0"},
            {"--alpha", "1e39", "--alpha: '1e39' is out of range for float32"},
            {"--smoothing", "2", "--smoothing: '2' must be in [0, 1]"},
            {"--smoothing", "-0.1", "--smoothing: '-0.1' must be in [0, 1]"},
            {"--ignore-index", "2147483648", "--ignore-index: '2147483648' is out of range for an integer"},
            {"--reduction", "avg", "--reduction: 'avg' is not one of mean, sum, none"},
        };
        for (String[] n : pgtNumbers) {
            cases.add(c("pgt " + n[0] + " " + n[1], 2, n[2], d -> {
                List<String> a = pgtLabels(d, n[0], n[1]);
                if (!n[0].equals("--alpha")) {
                    a.addAll(a.size() - 2, List.of("--alpha", "1"));
                }
                return a;
            }));
        }
        cases.add(c("huge padding refused before the input is read", 2, "--padding: '2147483647' is too large",
                d -> dependence(d.resolve("missing.npy"), "--padding", "2147483647", "--range", "channel")));
        cases.add(c("huge kernel refused before the input is read", 2, "--kernel: '65537' is too large",
                d -> dependence(d.resolve("missing.npy"), "--kernel", "65537")));
        cases.add(c("demo --repeats 0", 2, "--repeats: '0' must be from 1 to 1000", d -> List.of("demo", "--repeats", "0")));
        cases.add(c("demo --repeats 2^31", 2, "--repeats: '2147483648' is out of range for an integer",
                d -> List.of("demo", "--repeats", "2147483648")));
        cases.add(c("--backend gpu", 2, "--backend: 'gpu' is not auto, cpu, cuda or cuda:N", d -> dependence(fm(d), "--backend", "gpu")));
        cases.add(c("unknown option", 2, "unknown option --frob for dependence", d -> dependence(fm(d), "--frob", "1")));
        cases.add(c("near miss of an option", 2, "unknown option --kernal for dependence (did you mean --kernel?)",
                d -> dependence(fm(d), "--kernal", "3")));
        cases.add(c("unknown command", 2, "unknown command 'dependance' (did you mean dependence?)", d -> List.of("dependance")));
        cases.add(c("--out without a value", 2, "--out: missing value DIR", d -> List.of("dependence", "--input", fm(d).toString(), "--out")));
        cases.add(c("--out empty", 2, "--out: missing value DIR", d -> List.of("dependence", "--input", fm(d).toString(), "--out=")));
        cases.add(c("a value given twice", 2, "--input given more than once", d -> dependence(fm(d), "--input", "other.npy")));
        cases.add(c("a stray argument", 2, "unexpected argument 'stray'", d -> dependence(fm(d), "stray")));
        cases.add(c("--labels and --targets", 2, "--labels and --targets cannot be combined", d -> pgtLabels(d, "--targets",
                "q.npy", "--alpha", "1")));
        return cases.stream();
    }

    /** Cases that crashed the JVM before (issue 10) or reach native code with extreme sizes. */
    static Stream<Case> childJvm() {
        return Stream.of(
                c("dependence --padding 2^31-1 --range channel (issue 10 crash)", 2, "--padding: '2147483647' is too large",
                        d -> dependence(fm(d), "--padding", "2147483647", "--range", "channel")),
                c("dependence --padding 2^31-1 both axes, zeros removed", 2, "--padding: '2147483647,2147483647' is too large",
                        d -> dependence(fm(d), "--padding", "2147483647,2147483647", "--remove-zeros")),
                c("dependence --padding 2^30-1,0: too large only for the map", 2, "is too large for the 5x5 maps",
                        d -> dependence(fm(d), "--padding", "1073741823,0", "--range", "channel")),
                c("dependence --kernel 65537 (issue 10: internal error)", 2, "--kernel: '65537' is too large",
                        d -> dependence(fm(d), "--kernel", "65537")),
                c("dependence --kernel 46341x46341", 2, "--kernel: '46341x46341' is too large",
                        d -> dependence(fm(d), "--kernel", "46341x46341")),
                c("dependence --kernel 1023 on 2100 channels: nmi.npy beyond one Java array", 2,
                        "--kernel: '1023' is too large for the 2100 channels of",
                        d -> dependence(write(d, "wide.npy", NpyArray.of(random(2100, 9), 1, 2100, 1, 1)), "--kernel", "1023")),
                c("dependence --kernel 1023x3 on a 5x5 map", RESULT_OR_ERROR, null,
                        d -> dependence(fm(d), "--kernel", "1023x3", "--range", "channel")),
                c("dependence on a 1x1x1x1 map without padding", RESULT_OR_ERROR, null,
                        d -> dependence(write(d, "one.npy", NpyArray.of(new float[] {0.5f}, 1, 1, 1, 1)), "--padding", "0")),
                c("dependence on a constant map, zeros removed", RESULT_OR_ERROR, null,
                        d -> dependence(write(d, "zeros.npy", NpyArray.of(new float[150], 2, 3, 5, 5)), "--remove-zeros")),
                c("a header claiming 2^31-9 floats", 1, "odd.npy: truncated",
                        d -> dependence(npy(d, dict("<f4", "(1, 1, 1, 2147483639)"), 16))),
                c("a header claiming a 46341 x 46341 plane", 1, "the most one Java array holds",
                        d -> dependence(npy(d, dict("<f4", "(1, 1, 46341, 46341)"), 64))),
                c("pgt with logits +-3e38 and alpha 3e38", RESULT_OR_ERROR, null, d -> {
                    Path z = write(d, "z.npy", NpyArray.of(new float[] {3e38f, -3e38f, 0, 1, 1e38f, 1e38f, 1e38f, 1e38f}, 2, 4));
                    Path y = write(d, "y.npy", NpyArray.of(new int[] {0, 3}, 2));
                    return List.of("pgt", "--logits", z.toString(), "--labels", y.toString(), "--alpha", "3e38", "--out", "OUT");
                }),
                c("sgd-step with lr 3e38 on weights 3e38", RESULT_OR_ERROR, null, d -> {
                    List<String> a = sgd(d, "--lr", "3e38", "--momentum", "0.9", "--weight-decay", "3e38");
                    float[] w = new float[54];
                    Arrays.fill(w, 3e38f);
                    write(d, "w.npy", NpyArray.of(w, 2, 3, 3, 3)); // replaces sgd's random weights
                    return a;
                }),
                c("FIFO as --input in a child JVM (a hang is killed and fails)", 1, "is not a regular file",
                        d -> dependence(fifo(d, "pipe.npy"))));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("inProcess")
    void refusedInProcess(Case c) throws IOException {
        List<String> args = args(c);
        Map<String, String> before = snapshot(dir);
        CliRun r = assertTimeoutPreemptively(Duration.ofSeconds(60), () -> CliRun.of(args.toArray(String[]::new)),
                () -> c + ": did not finish (a hang): " + args);
        check(c, args, before, r.status(), r.out(), r.err());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("childJvm")
    void survivedInAChildJvm(Case c) throws IOException, InterruptedException {
        List<String> args = args(c);
        Map<String, String> before = snapshot(dir);
        Path logs = Files.createTempDirectory("gradshape-hostile-");
        try {
            List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx1g", "-XX:ErrorFile=" + logs.resolve("hs_err_%p.log"), "-cp",
                    System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")), Main.class.getName()));
            command.addAll(args);
            Process p = new ProcessBuilder(command).directory(dir.toFile())
                    .redirectOutput(logs.resolve("out").toFile()).redirectError(logs.resolve("err").toFile()).start();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor();
                throw new AssertionError(c + ": the child JVM did not finish in 120 s (a hang): " + args);
            }
            String out = Files.readString(logs.resolve("out"));
            String err = Files.readString(logs.resolve("err"));
            assertFalse(out.contains("A fatal error has been detected") || err.contains("A fatal error has been detected"),
                    c + ": the JVM crashed (status " + p.exitValue() + "): " + args + "\n" + out + err);
            if (c.status() == RESULT_OR_ERROR) {
                assertTrue(p.exitValue() == 0 || p.exitValue() == 1, c + ": status " + p.exitValue() + ", args " + args + "\n" + err);
                if (p.exitValue() == 1) {
                    assertOneLine(c, args, err);
                    assertEquals(before, snapshot(dir), c + ": the folder changed (partial output): " + args);
                }
                return;
            }
            check(c, args, before, p.exitValue(), out, err);
        } finally {
            for (Path f : Files.list(logs).toList()) {
                Files.delete(f);
            }
            Files.delete(logs);
        }
    }

    private List<String> args(Case c) throws IOException {
        List<String> args = new ArrayList<>();
        for (String a : c.setup().args(dir)) {
            args.add(a.equals("OUT") ? dir.resolve("out").toString() : a);
        }
        if (!args.contains("--backend")) {
            args.addAll(List.of("--backend", "cpu"));
        }
        return args;
    }

    private void check(Case c, List<String> args, Map<String, String> before, int status, String out, String err)
            throws IOException {
        String what = c + " (seed " + SEED + "): " + String.join(" ", args) + "\n--- out ---\n" + out + "--- err ---\n" + err;
        assertEquals(c.status(), status, what);
        assertOneLine(c, args, err);
        assertTrue(err.contains(c.message()), "expected '" + c.message() + "' in " + what);
        assertEquals(before, snapshot(dir), "the folder changed (partial output): " + what);
    }

    private static void assertOneLine(Case c, List<String> args, String err) {
        assertTrue(err.startsWith("gradshape: ") && err.endsWith("\n") && err.lines().count() == 1,
                c + ": one line starting 'gradshape: ' expected: " + args + "\n" + err);
    }

    /** Every path under {@code root} with its type and, for a regular file, its contents (FIFOs are not opened). */
    static Map<String, String> snapshot(Path root) throws IOException {
        Map<String, String> s = new TreeMap<>();
        try (Stream<Path> all = Files.walk(root)) {
            for (Path p : all.toList()) {
                String kind = Files.isSymbolicLink(p) ? "link " + Files.readSymbolicLink(p)
                        : Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS) ? "folder"
                        : Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS) ? "file " + Arrays.hashCode(Files.readAllBytes(p))
                        : "other";
                s.put(root.relativize(p).toString(), kind);
            }
        }
        return s;
    }
}
