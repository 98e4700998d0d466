package io.gradshape.train;

import io.gradshape.SgsSchedule;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.zip.GZIPInputStream;

/**
 * Measures the pytorch arms on the reference network: step time, gradshape's time per step and its
 * share, on the system's Fashion-MNIST (Debian's dataset-fashion-mnist). Not a test: the figures of
 * bench/RESULTS.md ("gradshape-pytorch") come from it. Run after {@code mvn -pl train -am test-compile}:
 * <pre>
 *   java -cp train/target/test-classes:train/target/classes:$(cat /tmp/train.cp) \
 *       io.gradshape.train.PytorchArmsTiming [trainSize] [epochs] [threads]
 * </pre>
 */
public final class PytorchArmsTiming {
    private PytorchArmsTiming() {}

    public static void main(String[] args) throws Exception {
        int trainSize = args.length > 0 ? Integer.parseInt(args[0]) : 4096;
        int epochs = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        Path dir = Path.of("/usr/share/datasets/fashion-mnist");
        FashionMnist data = new FashionMnist(images(dir.resolve("train-images-idx3-ubyte.gz")),
                labels(dir.resolve("train-labels-idx1-ubyte.gz")), images(dir.resolve("t10k-images-idx3-ubyte.gz")),
                labels(dir.resolve("t10k-labels-idx1-ubyte.gz")), dir.toString());
        Object[][] arms = {{"baseline", false, Float.NaN, false}, {"sgs", true, Float.NaN, true},
                {"pgt", false, 0.25f, true}, {"sgs+pgt", true, 0.25f, true}};
        System.out.printf(Locale.ROOT, "pytorch arms: %d train images, %d epochs, batch 64, %d threads, %s%n", trainSize, epochs,
                threads, data.source());
        System.out.printf(Locale.ROOT, "%-9s %9s %12s %7s %9s %9s%n", "arm", "step ms", "gradshape ms", "share", "test acc", "loss");
        for (Object[] a : arms) {
            ArmSpec spec = new ArmSpec((String) a[0], (boolean) a[1], (float) a[2], (boolean) a[3], 1, epochs, trainSize, 2000, 64,
                    0.05f, 0.9f, 5e-4f, new SgsSchedule(5, 2, 1), threads);
            ArmResult r = new PytorchArms().run(spec, data, (epoch, step, steps, loss) -> {});
            System.out.printf(Locale.ROOT, "%-9s %9.2f %12.4f %6.2f%% %9.4f %9.4f%n", r.name(), r.stepMs(), r.gradshapeMsPerStep(),
                    100 * r.gradshapeMsPerStep() / r.stepMs(), r.testAccuracy(), r.finalLoss());
        }
    }

    private static DataInputStream open(Path p) throws IOException {
        InputStream in = Files.newInputStream(p);
        return new DataInputStream(new java.io.BufferedInputStream(new GZIPInputStream(in)));
    }

    private static float[] images(Path p) throws IOException {
        try (DataInputStream in = open(p)) {
            if (in.readInt() != 2051) {
                throw new IOException(p + ": not an IDX image file");
            }
            int n = in.readInt(), h = in.readInt(), w = in.readInt();
            byte[] raw = in.readNBytes(n * h * w);
            float[] out = new float[raw.length];
            for (int i = 0; i < raw.length; i++) {
                out[i] = (raw[i] & 0xff) / 255f;
            }
            return out;
        }
    }

    private static int[] labels(Path p) throws IOException {
        try (DataInputStream in = open(p)) {
            if (in.readInt() != 2049) {
                throw new IOException(p + ": not an IDX label file");
            }
            int n = in.readInt();
            byte[] raw = in.readNBytes(n);
            int[] out = new int[n];
            for (int i = 0; i < n; i++) {
                out[i] = raw[i];
            }
            return out;
        }
    }
}
