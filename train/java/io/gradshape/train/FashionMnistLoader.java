package io.gradshape.train;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.zip.GZIPInputStream;

/**
 * Loads Fashion-MNIST from the four gzipped IDX files ({@code train-images-idx3-ubyte.gz},
 * {@code train-labels-idx1-ubyte.gz}, {@code t10k-images-idx3-ubyte.gz}, {@code t10k-labels-idx1-ubyte.gz}):
 * from {@code --data DIR}, else {@link #SYSTEM_DIR} (Debian's {@code dataset-fashion-mnist}), else the
 * slice shipped in this module's resources (2000 train + 500 test images, MIT licence: see its README).
 * Headers are checked (magic number, counts, 28 x 28, labels 0..9) before any allocation.
 */
public final class FashionMnistLoader {
    public static final Path SYSTEM_DIR = Path.of("/usr/share/datasets/fashion-mnist");
    /** {@code --data} value that selects the shipped slice. */
    public static final String BUILTIN = "builtin";
    static final String SLICE = "/io/gradshape/train/fashion-mnist-slice/";
    private static final String[] FILES = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    private static final int MAX_IMAGES = 1_000_000;

    private FashionMnistLoader() {}

    /** {@code data}: a directory, {@link #BUILTIN}, or null for the system copy else the slice. */
    public static FashionMnist load(String data) throws IOException {
        if (data != null && !data.equals(BUILTIN)) {
            Path dir = Path.of(data);
            if (!Files.isDirectory(dir)) {
                throw new NoSuchFileException(dir.toString(), null, "--data: not a directory");
            }
            return fromDirectory(dir, dir.toString());
        }
        if (data == null && Files.isRegularFile(SYSTEM_DIR.resolve(FILES[0]))) {
            return fromDirectory(SYSTEM_DIR, SYSTEM_DIR + " (system copy)");
        }
        byte[][] raw = new byte[4][];
        for (int i = 0; i < 4; i++) {
            try (InputStream in = FashionMnistLoader.class.getResourceAsStream(SLICE + FILES[i])) {
                if (in == null) {
                    throw new IOException("the shipped Fashion-MNIST slice is missing from the classpath: " + SLICE + FILES[i]);
                }
                raw[i] = gunzip(in, FILES[i]);
            }
        }
        return parse(raw, "shipped slice (2000 train + 500 test images)");
    }

    private static FashionMnist fromDirectory(Path dir, String source) throws IOException {
        byte[][] raw = new byte[4][];
        for (int i = 0; i < 4; i++) {
            Path f = dir.resolve(FILES[i]);
            if (!Files.isRegularFile(f)) {
                throw new NoSuchFileException(f.toString(), null, "missing (expected the four Fashion-MNIST .gz files)");
            }
            try (InputStream in = Files.newInputStream(f)) {
                raw[i] = gunzip(in, f.toString());
            }
        }
        return parse(raw, source);
    }

    static FashionMnist parse(byte[][] raw, String source) throws IOException {
        float[] trainImages = images(raw[0], FILES[0]);
        int[] trainLabels = labels(raw[1], FILES[1]);
        float[] testImages = images(raw[2], FILES[2]);
        int[] testLabels = labels(raw[3], FILES[3]);
        if (trainImages.length / FashionMnist.PIXELS != trainLabels.length) {
            throw new IOException(FILES[0] + ": " + trainImages.length / FashionMnist.PIXELS + " images for "
                    + trainLabels.length + " labels");
        }
        if (testImages.length / FashionMnist.PIXELS != testLabels.length) {
            throw new IOException(FILES[2] + ": " + testImages.length / FashionMnist.PIXELS + " images for "
                    + testLabels.length + " labels");
        }
        return new FashionMnist(trainImages, trainLabels, testImages, testLabels, source);
    }

    private static float[] images(byte[] b, String name) throws IOException {
        ByteBuffer h = header(b, name, 0x00000803, 16);
        int n = h.getInt(4);
        int rows = h.getInt(8);
        int cols = h.getInt(12);
        if (rows != FashionMnist.SIDE || cols != FashionMnist.SIDE) {
            throw new IOException(name + ": images of " + rows + " x " + cols + ", expected 28 x 28");
        }
        checkCount(n, name);
        long expected = 16L + (long) n * FashionMnist.PIXELS;
        if (b.length != expected) {
            throw new IOException(name + ": " + b.length + " bytes, header says " + expected);
        }
        float[] out = new float[n * FashionMnist.PIXELS];
        for (int i = 0; i < out.length; i++) {
            out[i] = (b[16 + i] & 0xff) / 255f;
        }
        return out;
    }

    private static int[] labels(byte[] b, String name) throws IOException {
        ByteBuffer h = header(b, name, 0x00000801, 8);
        int n = h.getInt(4);
        checkCount(n, name);
        if (b.length != 8L + n) {
            throw new IOException(name + ": " + b.length + " bytes, header says " + (8L + n));
        }
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = b[8 + i] & 0xff;
            if (out[i] > 9) {
                throw new IOException(name + ": label " + out[i] + " at " + i + ", expected 0..9");
            }
        }
        return out;
    }

    private static ByteBuffer header(byte[] b, String name, int magic, int bytes) throws IOException {
        if (b.length < bytes) {
            throw new IOException(name + ": " + b.length + " bytes, shorter than an IDX header");
        }
        ByteBuffer h = ByteBuffer.wrap(b); // IDX is big-endian, ByteBuffer's default
        if (h.getInt(0) != magic) {
            throw new IOException(name + ": magic number 0x" + Integer.toHexString(h.getInt(0)) + ", expected 0x"
                    + Integer.toHexString(magic) + " (not an IDX file of this kind)");
        }
        return h;
    }

    private static void checkCount(int n, String name) throws IOException {
        if (n < 1 || n > MAX_IMAGES) {
            throw new IOException(name + ": " + n + " records, expected 1.." + MAX_IMAGES);
        }
    }

    private static byte[] gunzip(InputStream in, String name) throws IOException {
        try (GZIPInputStream z = new GZIPInputStream(in, 1 << 16)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            long total = 0;
            for (int r; (r = z.read(buf)) > 0; ) {
                total += r;
                if (total > 16L + (long) MAX_IMAGES * FashionMnist.PIXELS) {
                    throw new IOException(name + ": larger than any Fashion-MNIST file");
                }
                out.write(buf, 0, r);
            }
            return out.toByteArray();
        } catch (java.util.zip.ZipException e) {
            throw new IOException(name + ": not a gzip file (" + e.getMessage() + ")", e);
        }
    }
}
