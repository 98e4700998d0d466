package io.gradshape.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The .npy reader and writer: round trips of every type and rank, files written by NumPy itself
 * (fixtures/, made by fixtures/make_fixtures.py), and every way a file can be refused.
 */
class NpyTest {
    /** NumPy-written fixtures; tests run from the project root. */
    static final Path FIXTURES = Path.of("test/io/gradshape/io/fixtures");

    private static final List<int[]> SHAPES = List.of(
            new int[] {}, new int[] {5}, new int[] {2, 3}, new int[] {2, 3, 4}, new int[] {2, 1, 3, 2},
            new int[] {0}, new int[] {2, 0, 3}, new int[] {1, 1, 1, 1});

    @TempDir
    Path tmp;

    // ---- round trips --------------------------------------------------------------------------------

    @Test
    void roundTripsEveryTypeAndRank() throws IOException {
        long seed = 20240611L;
        Random random = new Random(seed);
        for (DType dtype : DType.values()) {
            for (int[] shape : SHAPES) {
                NpyArray a = randomArray(random, dtype, shape);
                Path file = tmp.resolve(Npy.dtypeName(dtype) + "_" + shape.length + ".npy");
                Npy.write(file, a);
                NpyArray back = Npy.read(file);
                String what = a + " (seed " + seed + ")";
                assertEquals(a, back, what);
                assertArrayEquals(shape, back.shape(), what);

                Npy.Header h = Npy.readHeader(file);
                assertEquals(1, h.majorVersion(), what);
                assertEquals(0, h.dataOffset() % 64, what + ": data must start on a 64-byte boundary");
                assertEquals(h.dataOffset() + (long) a.size() * dtype.bytes(), Files.size(file), what);
            }
        }
    }

    @Test
    void roundTripsSpecialValuesBitForBit() throws IOException {
        float[] f = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, -0.0f, Float.MIN_VALUE,
            Float.MAX_VALUE, Float.intBitsToFloat(0x7fc00123)};
        double[] d = {Double.NaN, Double.NEGATIVE_INFINITY, -0.0, Double.MIN_VALUE, Double.MAX_VALUE};
        int[] i = {Integer.MIN_VALUE, -1, 0, Integer.MAX_VALUE};
        long[] l = {Long.MIN_VALUE, -1, 0, Long.MAX_VALUE};
        for (NpyArray a : List.of(NpyArray.of(f, f.length), NpyArray.of(d, d.length), NpyArray.of(i, 2, 2),
                NpyArray.of(l, 4, 1))) {
            Path file = tmp.resolve("special.npy");
            Npy.write(file, a);
            NpyArray back = Npy.read(file);
            assertEquals(a, back);
        }
        float[] back = Npy.read(write(NpyArray.of(f, f.length))).floats();
        for (int k = 0; k < f.length; k++) {
            assertEquals(Float.floatToRawIntBits(f[k]), Float.floatToRawIntBits(back[k]), "element " + k);
        }
    }

    @Test
    void roundTripsArraysLargerThanTheCopyBuffer() throws IOException {
        // 1 MiB staging buffer: 3.5 MiB of floats and 2.6 MiB of longs cross several chunk boundaries.
        long seed = 7;
        Random random = new Random(seed);
        float[] f = new float[917_505];
        for (int k = 0; k < f.length; k++) {
            f[k] = random.nextFloat();
        }
        long[] l = new long[327_681];
        for (int k = 0; k < l.length; k++) {
            l[k] = random.nextLong();
        }
        assertEquals(NpyArray.of(f, 5, 183_501), Npy.read(write(NpyArray.of(f, 5, 183_501))), "seed " + seed);
        assertEquals(NpyArray.of(l, l.length), Npy.read(write(NpyArray.of(l, l.length))), "seed " + seed);
    }

    @Test
    void writesOverAnExistingLongerFile() throws IOException {
        Path file = tmp.resolve("a.npy");
        Npy.write(file, NpyArray.of(new double[1000], 1000));
        NpyArray small = NpyArray.of(new float[] {1, 2}, 2);
        Npy.write(file, small);
        assertEquals(small, Npy.read(file));
    }

    // ---- NumPy compatibility ------------------------------------------------------------------------

    @Test
    void writesTheBytesNumpyWrites() throws IOException {
        assertSameBytes("f4_2x3.npy", NpyArray.of(new float[] {-1, -0.5f, 0, 0.5f, 1, 1.5f}, 2, 3));
        assertSameBytes("f8_2x2.npy", NpyArray.of(new double[] {0.1, 0.2, 0.3, 1.0 / 3}, 2, 2));
        assertSameBytes("i4_2x2x2.npy", NpyArray.of(new int[] {-4, -3, -2, -1, 0, 1, 2, 3}, 2, 2, 2));
        assertSameBytes("i8_5.npy", NpyArray.of(new long[] {3, 0, 4, 1, -100}, 5));
        assertSameBytes("i8_scalar.npy", NpyArray.of(new long[] {42}));
        float[] quarters = new float[12];
        for (int k = 0; k < 12; k++) {
            quarters[k] = k * 0.25f;
        }
        assertSameBytes("f4_1x2x3x2.npy", NpyArray.of(quarters, 1, 2, 3, 2));
        assertSameBytes("f4_0x3.npy", NpyArray.of(new float[0], 0, 3));
        assertSameBytes("f4_padded_full.npy", NpyArray.of(new float[0], 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 100000));
    }

    @Test
    void switchesToVersion2OnlyForHeadersOver64KiB() throws IOException {
        int[] shape = new int[30000]; // NumPy itself stops at 64 dimensions: this only exercises the 4-byte length
        Arrays.fill(shape, 1);
        Path file = write(NpyArray.of(new int[] {5}, shape));
        Npy.Header h = Npy.readHeader(file);
        assertEquals(2, h.majorVersion());
        assertEquals(0, h.dataOffset() % 64);
        assertArrayEquals(new int[] {5}, Npy.read(file).ints());
        int[] numpyMax = new int[64];
        Arrays.fill(numpyMax, 1);
        assertEquals(1, Npy.readHeader(write(NpyArray.of(new int[] {5}, numpyMax))).majorVersion());
    }

    @Test
    void readsWhatNumpyWrites() throws IOException {
        NpyArray a = Npy.read(FIXTURES.resolve("f4_2x3.npy"));
        assertEquals(DType.FLOAT32, a.dtype());
        assertArrayEquals(new int[] {2, 3}, a.shape());
        assertArrayEquals(new float[] {-1, -0.5f, 0, 0.5f, 1, 1.5f}, a.floats());

        NpyArray scalar = Npy.read(FIXTURES.resolve("i8_scalar.npy"));
        assertEquals(0, scalar.rank());
        assertArrayEquals(new long[] {42}, scalar.longs());

        NpyArray empty = Npy.read(FIXTURES.resolve("f4_0x3.npy"));
        assertArrayEquals(new int[] {0, 3}, empty.shape());
        assertEquals(0, empty.size());

        assertArrayEquals(new int[] {-4, -3, -2, -1, 0, 1, 2, 3}, Npy.read(FIXTURES.resolve("i4_2x2x2.npy")).ints());
        assertArrayEquals(new double[] {0.1, 0.2, 0.3, 1.0 / 3}, Npy.read(FIXTURES.resolve("f8_2x2.npy")).doubles());
    }

    @ParameterizedTest
    @CsvSource({"f4_v2.npy, 2", "f4_v3.npy, 3"})
    void readsFormatVersions2And3(String name, int major) throws IOException {
        Path file = FIXTURES.resolve(name);
        assertEquals(major, Npy.readHeader(file).majorVersion());
        NpyArray a = Npy.read(file);
        assertArrayEquals(new int[] {3, 2}, a.shape());
        assertArrayEquals(new float[] {0, 1, 2, 3, 4, 5}, a.floats());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '#', quoteCharacter = '"', value = {
        "fortran.npy      # Fortran-order arrays are not supported",
        "big_endian.npy   # big-endian arrays (descr '>f4') are not supported",
        "float16.npy      # element type '<f2' (float16) is not supported",
        "bool.npy         # element type '|b1' (bool) is not supported",
        "unicode.npy      # element type '<U2' (unicode string) is not supported",
        "object.npy       # element type '|O' (Python object) is not supported",
        "structured.npy   # structured arrays",
        "truncated.npy    # truncated: shape (2, 3) of float32 needs 24 data bytes, the file holds 20"})
    void refusesWhatItDoesNotSupport(String name, String reason) {
        Path file = FIXTURES.resolve(name);
        NpyFormatException e = assertThrows(NpyFormatException.class, () -> Npy.read(file));
        assertTrue(e.getMessage().startsWith(file + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(reason), e.getMessage());
        assertEquals(file, e.file());
    }

    // ---- malformed files, crafted byte by byte ------------------------------------------------------

    @ParameterizedTest
    @CsvSource(delimiter = '#', quoteCharacter = '"', value = {
        "{'descr': '<f4', 'fortran_order': False}                                    # no 'shape' key",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}             # unexpected key 'x'",
        "{'descr': '<f4', 'fortran_order': False, 'shape': [2]}                      # 'shape' is [2], not a tuple",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}                    # holds -2, not a dimension",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,)}                   # is not an integer",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2)}                      # (2) is not a tuple",
        "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}                         # 'fortran_order' is 0",
        "{'descr': 4, 'fortran_order': False, 'shape': (2,)}                         # 'descr' is 4",
        "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}                      # malformed header",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk                # unexpected text after the dict",
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}     # appears twice",
        "['descr', '<f4']                                                            # expected a dict",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}                      # expected ',' or '}'",
        "{'descr': '<f4', 'fortran_order': Nope, 'shape': (2,)}                      # unexpected 'Nope'",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}  # out of range",
        "{'descr': '>i8', 'fortran_order': False, 'shape': (2,)}                     # big-endian",
        "{'descr': '|f4', 'fortran_order': False, 'shape': (2,)}                     # not little-endian",
        "{'descr': '<u4', 'fortran_order': False, 'shape': (2,)}                     # '<u4' (uint32) is not supported",
        "{'descr': '<c8', 'fortran_order': False, 'shape': (2,)}                     # (complex64) is not supported",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3000000000,)}            # more than one Java array holds",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000)}         # the most one Java array holds"})
    void refusesMalformedHeaders(String header, String reason) throws IOException {
        Path file = craft("bad.npy", 1, header.strip(), new byte[8]);
        NpyFormatException e = assertThrows(NpyFormatException.class, () -> Npy.read(file));
        assertTrue(e.getMessage().startsWith(file + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(reason), e.getMessage());
    }

    @Test
    void refusesBadMagicEmptyShortAndUnknownVersions() throws IOException {
        assertRefused(raw("magic.npy", "PK\u0003\u0004 a zip file".getBytes(StandardCharsets.ISO_8859_1)),
                "not a .npy file");
        assertRefused(raw("empty.npy", new byte[0]), "empty file");
        assertRefused(raw("short.npy", new byte[] {(byte) 0x93, 'N', 'U', 'M'}), "not a .npy file");
        assertRefused(raw("noversion.npy", new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1}), "truncated");
        assertRefused(raw("nolength.npy", new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 10}), "truncated");
        String ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
        assertRefused(craft("v4.npy", 4, ok, new byte[8]), "unsupported .npy format version 4.0");
        assertRefused(craft("v1_1.npy", 1, ok, new byte[8], 1), "unsupported .npy format version 1.1");
    }

    @Test
    void refusesHeaderLengthBeyondTheFileAndSizeMismatches() throws IOException {
        ByteBuffer b = ByteBuffer.allocate(20).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) 500);
        assertRefused(raw("longheader.npy", b.array()), "truncated: the header is 500 bytes");

        String header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
        assertRefused(craft("short_data.npy", 1, header, new byte[15]), "truncated: shape (2,) of float64 needs 16");
        assertRefused(craft("long_data.npy", 1, header, new byte[17]), "size does not match shape");
        assertRefused(craft("scalar.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (), }", new byte[0]),
                "truncated: shape () of int32 needs 4 data bytes, the file holds 0");
    }

    @Test
    void acceptsOldStyleHeaders() throws IOException {
        // Python 2 era NumPy: 'L' suffixes, 16-byte alignment, keys in another order, no final newline.
        byte[] data = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putInt(7).putInt(-8).putInt(9).array();
        Path file = craft("py2.npy", 1, "{'shape': (3L,), \"fortran_order\": False, 'descr': '<i4'}", data, 0, 16, false);
        NpyArray a = Npy.read(file);
        assertArrayEquals(new int[] {3}, a.shape());
        assertArrayEquals(new int[] {7, -8, 9}, a.ints());
    }

    @Test
    void aMissingFileIsNoSuchFileAndAFolderIsNamed() throws IOException {
        Path file = tmp.resolve("missing.npy");
        assertThrows(NoSuchFileException.class, () -> Npy.read(file));
        Path dir = Files.createDirectory(tmp.resolve("folder.npy"));
        FileSystemException e = assertThrows(FileSystemException.class, () -> Npy.read(dir));
        assertEquals(dir.toString(), e.getFile());
        assertEquals("is a directory, not a .npy file", e.getReason());
    }

    @Test
    void refusesDeeplyNestedHeadersWithoutExhaustingTheStack() throws IOException {
        String deep = "(".repeat(100_000) + ")".repeat(100_000);
        Path file = craft("deep.npy", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': " + deep + "}", new byte[0]);
        assertRefused(file, "nested more than 16 deep");
    }

    // ---- NpyArray -----------------------------------------------------------------------------------

    @Test
    void convertsFloat64ToFloat32AndRefusesOverflow() throws IOException {
        NpyArray d = Npy.read(FIXTURES.resolve("f8_2x2.npy"));
        NpyArray f = d.asFloat32();
        assertEquals(DType.FLOAT32, f.dtype());
        assertArrayEquals(new int[] {2, 2}, f.shape());
        assertArrayEquals(new float[] {0.1f, 0.2f, 0.3f, (float) (1.0 / 3)}, f.floats());
        assertSame(f, f.asFloat32());

        NpyArray big = Npy.read(FIXTURES.resolve("f8_overflow.npy"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, big::asFloat32);
        assertEquals("float64 element [1] = 1.0E300 overflows float32", e.getMessage());
        // Infinities and NaN are values, not overflow.
        double[] special = {Double.POSITIVE_INFINITY, Double.NaN};
        float[] back = NpyArray.of(special, 2).asFloat32().floats();
        assertEquals(Float.POSITIVE_INFINITY, back[0]);
        assertTrue(Float.isNaN(back[1]));
    }

    @Test
    void convertsIntegersOnlyWhenExact() {
        assertArrayEquals(new float[] {-16777216, 3}, NpyArray.of(new long[] {-16777216, 3}, 2).asFloat32().floats());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> NpyArray.of(new int[] {1, 2, 3, 16777217}, 2, 2).asFloat32());
        assertEquals("int32 element [1, 1] = 16777217 is not exactly representable in float32", e.getMessage());
        assertArrayEquals(new double[] {1L << 53}, NpyArray.of(new long[] {1L << 53}, 1).asFloat64().doubles());
        assertThrows(IllegalArgumentException.class, () -> NpyArray.of(new long[] {(1L << 53) + 1}, 1).asFloat64());
        assertArrayEquals(new double[] {0.5, -2}, NpyArray.of(new float[] {0.5f, -2}, 2).asFloat64().doubles());

        assertArrayEquals(new int[] {3, -100}, NpyArray.of(new long[] {3, -100}, 2).asInt32().ints());
        e = assertThrows(IllegalArgumentException.class, () -> NpyArray.of(new long[] {0, 1L << 31}, 2).asInt32());
        assertEquals("int64 element [1] = 2147483648 does not fit in int32", e.getMessage());
        assertArrayEquals(new long[] {-1, 5}, NpyArray.of(new int[] {-1, 5}, 2).asInt64().longs());
        e = assertThrows(IllegalArgumentException.class, () -> NpyArray.of(new float[] {1}, 1).asInt64());
        assertTrue(e.getMessage().contains("expected integers (int32 or int64), got float32"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> NpyArray.of(new double[] {1}).asInt32());
    }

    @Test
    void validatesShapesAndAccess() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NpyArray.of(new float[5], 2, 3));
        assertEquals("shape (2, 3) holds 6 elements, data has 5", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NpyArray.of(new float[3]));
        assertEquals("shape () holds 1 elements, data has 3", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> NpyArray.of(new int[0], 2, -1));
        assertThrows(NullPointerException.class, () -> NpyArray.of((float[]) null, 1));

        NpyArray a = NpyArray.of(new float[6], 2, 3);
        IllegalStateException s = assertThrows(IllegalStateException.class, a::longs);
        assertEquals("a float32 array holds no int64 elements; convert with asInt64()", s.getMessage());
        assertEquals(3, a.dim(-1));
        assertEquals(2, a.dim(0));
        assertThrows(IndexOutOfBoundsException.class, () -> a.dim(2));
        assertArrayEquals(new int[] {6}, a.reshape(6).shape());
        assertSame(a.floats(), a.reshape(3, 2).floats());
        assertThrows(IllegalArgumentException.class, () -> a.reshape(4));
        int[] shape = a.shape();
        shape[0] = 99;
        assertArrayEquals(new int[] {2, 3}, a.shape(), "shape() must be a copy");
        assertEquals("float32 (2, 3)", a.toString());
        assertEquals("int64 (5,)", NpyArray.zeros(DType.INT64, 5).toString());
        assertEquals("float64 ()", NpyArray.of(new double[1]).toString());
        assertEquals(io.gradshape.Memory.Location.HEAP, a.memory().location());
        assertEquals(6, a.memory().length());
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private Path write(NpyArray a) throws IOException {
        Path file = tmp.resolve("w.npy");
        Npy.write(file, a);
        return file;
    }

    private void assertSameBytes(String fixture, NpyArray a) throws IOException {
        Path file = tmp.resolve(fixture);
        Npy.write(file, a);
        assertArrayEquals(Files.readAllBytes(FIXTURES.resolve(fixture)), Files.readAllBytes(file),
                fixture + ": the bytes differ from what NumPy writes");
    }

    private static void assertRefused(Path file, String reason) {
        NpyFormatException e = assertThrows(NpyFormatException.class, () -> Npy.read(file));
        assertTrue(e.getMessage().startsWith(file + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(reason), e.getMessage());
    }

    private Path raw(String name, byte[] bytes) throws IOException {
        Path file = tmp.resolve(name);
        Files.write(file, bytes);
        return file;
    }

    private Path craft(String name, int major, String dict, byte[] data) throws IOException {
        return craft(name, major, dict, data, 0);
    }

    private Path craft(String name, int major, String dict, byte[] data, int minor) throws IOException {
        return craft(name, major, dict, data, minor, 64, true);
    }

    /** A .npy file as the format spec lays it out, with the given header text, alignment and data. */
    private Path craft(String name, int major, String dict, byte[] data, int minor, int align, boolean newline)
            throws IOException {
        int prefix = 6 + 2 + (major == 1 ? 2 : 4);
        int text = dict.length() + (newline ? 1 : 0);
        int padding = (align - (prefix + text) % align) % align;
        String header = dict + " ".repeat(padding) + (newline ? "\n" : "");
        ByteBuffer b = ByteBuffer.allocate(prefix + header.length() + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) major, (byte) minor});
        if (major == 1) {
            b.putShort((short) header.length());
        } else {
            b.putInt(header.length());
        }
        b.put(header.getBytes(StandardCharsets.ISO_8859_1)).put(data);
        return raw(name, b.array());
    }

    private static NpyArray randomArray(Random random, DType dtype, int[] shape) {
        int size = Arrays.stream(shape).reduce(1, (x, y) -> x * y);
        return switch (dtype) {
            case FLOAT32 -> {
                float[] v = new float[size];
                for (int k = 0; k < size; k++) {
                    v[k] = (float) random.nextGaussian();
                }
                yield NpyArray.of(v, shape);
            }
            case FLOAT64 -> NpyArray.of(random.doubles(size).map(x -> x * 1e6 - 5e5).toArray(), shape);
            case INT32 -> NpyArray.of(random.ints(size).toArray(), shape);
            case INT64 -> NpyArray.of(random.longs(size).toArray(), shape);
        };
    }
}
