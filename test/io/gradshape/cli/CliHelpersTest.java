package io.gradshape.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.DType;
import io.gradshape.io.Npy;
import io.gradshape.io.NpyArray;
import io.gradshape.io.NpyFormatException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The helpers commands share: inputs, the output folder, progress lines, tables and units. */
class CliHelpersTest {
    static final Path FIXTURES = Path.of("test/io/gradshape/io/fixtures");

    @TempDir
    Path tmp;

    @Test
    void inputsConvertToFloat32AndNameTheFileInErrors() throws Exception {
        NpyArray f = Inputs.float32(FIXTURES.resolve("f8_2x2.npy"), "[B][C]");
        assertEquals(DType.FLOAT32, f.dtype());
        assertArrayEquals(new float[] {0.1f, 0.2f, 0.3f, (float) (1.0 / 3)}, f.floats());

        Path overflow = FIXTURES.resolve("f8_overflow.npy");
        InputException e = assertThrows(InputException.class, () -> Inputs.float32(overflow));
        assertEquals(overflow + ": float64 element [1] = 1.0E300 overflows float32", e.getMessage());

        Path vector = FIXTURES.resolve("i8_5.npy");
        e = assertThrows(InputException.class, () -> Inputs.float32(vector, "[N][C][H][W]"));
        assertEquals(vector + ": expected a 4-D array [N][C][H][W], got float32 (5,)", e.getMessage());

        Path fortran = FIXTURES.resolve("fortran.npy");
        NpyFormatException n = assertThrows(NpyFormatException.class, () -> Inputs.float32(fortran));
        assertTrue(n.getMessage().startsWith(fortran + ": Fortran-order"), n.getMessage());
    }

    @Test
    void inputsReadLabelsAsIntegersAndRefuseFloats() throws Exception {
        assertArrayEquals(new long[] {3, 0, 4, 1, -100}, Inputs.int64(FIXTURES.resolve("i8_5.npy")).longs());
        assertArrayEquals(new int[] {3, 0, 4, 1, -100}, Inputs.int32(FIXTURES.resolve("i8_5.npy")).ints());
        assertArrayEquals(new long[] {-4, -3, -2, -1, 0, 1, 2, 3}, Inputs.int64(FIXTURES.resolve("i4_2x2x2.npy")).longs());
        Path floats = FIXTURES.resolve("f4_2x3.npy");
        InputException e = assertThrows(InputException.class, () -> Inputs.int64(floats));
        assertTrue(e.getMessage().startsWith(floats + ": expected integers (int32 or int64), got float32"), e.getMessage());
        assertThrows(InputException.class, () -> Inputs.int32(floats));
    }

    @Test
    void requireShapeSaysWhereTheShapeComesFrom() throws Exception {
        Path g = Path.of("g.npy");
        NpyArray grads = NpyArray.of(new float[6], 3, 2);
        Inputs.requireShape(g, grads, new int[] {3, 2}, "the shape of w.npy");
        InputException e = assertThrows(InputException.class,
                () -> Inputs.requireShape(g, grads, new int[] {2, 3}, "the shape of w.npy"));
        assertEquals("g.npy: expected shape (2, 3) (the shape of w.npy), got (3, 2)", e.getMessage());
    }

    @Test
    void outputDirIsCreatedAndReportsEachFile() throws IOException {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        Path dir = tmp.resolve("runs/one");
        OutputDir out = OutputDir.prepare(dir, "nmi.npy", "S.npy");
        assertFalse(Files.exists(tmp.resolve("runs")), "nothing is created before the commit");
        NpyArray nmi = NpyArray.of(new float[] {1, 2, 3, 4, 5, 6, 7, 8, 9}, 1, 3, 3);
        List<Path> written = out.add("nmi.npy", nmi).commit(new PrintStream(log, true, StandardCharsets.UTF_8));
        assertEquals(List.of(dir.resolve("nmi.npy")), written);
        assertEquals(nmi, Npy.read(dir.resolve("nmi.npy")));
        assertEquals("wrote " + dir.resolve("nmi.npy") + ": float32 (1, 3, 3)\n", log.toString(StandardCharsets.UTF_8));
        assertEquals(List.of("nmi.npy"), list(dir), "no staging folder left");
        assertEquals(List.of("one"), list(tmp.resolve("runs")), "no staging folder left beside DIR");
        OutputDir.prepare(dir, "nmi.npy"); // an existing folder is fine
        assertThrows(IllegalArgumentException.class, () -> out.add("other.npy", nmi));
        assertThrows(IllegalStateException.class, () -> out.commit(new PrintStream(log)));

        Path file = tmp.resolve("plain-file");
        Files.writeString(file, "x");
        NotDirectoryException e = assertThrows(NotDirectoryException.class, () -> OutputDir.prepare(file, "nmi.npy"));
        assertEquals(file + ": not a directory", Main.message(e));
        e = assertThrows(NotDirectoryException.class, () -> OutputDir.prepare(file.resolve("sub/dir"), "nmi.npy"));
        assertEquals(file + ": not a directory", Main.message(e));
    }

    static List<String> list(Path dir) throws IOException {
        try (var s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void progressRedrawsOneLineOnAConsole() {
        AtomicLong now = new AtomicLong();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (Progress p = new Progress(new PrintStream(bytes, true, StandardCharsets.UTF_8), true, now::get)) {
            p.update("batch", 1, 4);
            now.addAndGet(Progress.CONSOLE_INTERVAL_NANOS / 2);
            p.update("batch", 2, 4); // too soon: skipped
            now.addAndGet(Progress.CONSOLE_INTERVAL_NANOS);
            p.update("x");
        }
        assertEquals("\rbatch: 1/4 (25%)\rx               \n", bytes.toString(StandardCharsets.UTF_8));

        bytes.reset();
        try (Progress p = new Progress(new PrintStream(bytes, true, StandardCharsets.UTF_8), true, now::get)) {
            p.update("working");
            p.done("done in 2 s");
        }
        assertEquals("\rworking\rdone in 2 s\n", bytes.toString(StandardCharsets.UTF_8));
    }

    @Test
    void progressWritesFewPlainLinesElsewhere() {
        AtomicLong now = new AtomicLong();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (Progress p = new Progress(new PrintStream(bytes, true, StandardCharsets.UTF_8), false, now::get)) {
            p.update("a");
            now.addAndGet(Progress.PLAIN_INTERVAL_NANOS - 1);
            p.update("b");
            now.addAndGet(1);
            p.update("c");
            p.done("d");
        }
        assertEquals("a\nc\nd\n", bytes.toString(StandardCharsets.UTF_8));
    }

    @Test
    void tableAlignsColumns() {
        Table t = new Table("kernel", "backend", "time", "throughput").alignLeft(0);
        t.row("dependence 3x3", "cuda", "1.23 ms", "45.6 Gpairs/s");
        t.row("pgt", "cpu", "812 us", "2.00 GB/s");
        assertEquals(""
                + "kernel          backend     time     throughput\n"
                + "--------------  -------  -------  -------------\n"
                + "dependence 3x3     cuda  1.23 ms  45.6 Gpairs/s\n"
                + "pgt                 cpu   812 us      2.00 GB/s\n", t.toString());
        assertThrows(IllegalArgumentException.class, () -> t.row("too", "few"));
        assertThrows(IndexOutOfBoundsException.class, () -> t.alignLeft(4));
    }

    @Test
    void unitsKeepThreeSignificantDigits() {
        assertEquals("812 ns", Units.duration(812e-9));
        assertEquals("1.23 us", Units.duration(1.234e-6));
        assertEquals("45.6 ms", Units.duration(0.04561));
        assertEquals("1.00 s", Units.duration(0.99996));
        assertEquals("120 s", Units.duration(120));
        assertEquals("45.6 Gpairs/s", Units.rate(4.56e10, "pairs"));
        assertEquals("999 B/s", Units.rate(999, "B"));
        assertEquals("1.00 kB/s", Units.rate(999.7, "B"));
        assertEquals("3.35 TB/s", Units.rate(3.35e12, "B"));
        for (String s : List.of(Units.duration(1e-3), Units.duration(1))) {
            assertTrue(s.startsWith("1.00 "), s);
        }
    }
}
