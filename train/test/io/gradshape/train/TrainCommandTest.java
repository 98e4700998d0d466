package io.gradshape.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The train command end to end on a tiny setting of the shipped slice (few steps, every arm, SGS refreshed). */
class TrainCommandTest {
    @TempDir
    Path dir;

    private static String[] run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new TrainCommand());
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int status = cl.execute(args);
        return new String[] {Integer.toString(status), out.toString(), err.toString()};
    }

    @Test
    void trainsEveryArmOnTheShippedSliceAndWritesSummaryAndChart() throws Exception {
        Path out = dir.resolve("out");
        String[] r = run("--data", "builtin", "--train-size", "192", "--test-size", "100", "--epochs", "2",
                "--batch", "32", "--sgs-warmup", "1", "--threads", "2", "--out", out.toString());
        assertEquals("0", r[0], r[1] + r[2]);
        String table = r[1];
        assertTrue(table.contains("shipped slice"), table);
        for (String arm : TrainCommand.ARMS) {
            assertTrue(table.lines().anyMatch(l -> l.startsWith(arm + " ")), arm + " row in\n" + table);
        }
        String json = Files.readString(out.resolve("summary.json"));
        for (String key : new String[] {"\"name\": \"sgs+pgt\"", "\"test_accuracy\"", "\"final_loss\"", "\"step_ms\"",
                "\"gradshape_ms_per_step\"", "\"g\": [{\"conv\": \"conv1\", \"matrix\": [["}) {
            assertTrue(json.contains(key), key + " in " + json);
        }
        // SGS refreshed at epoch 1: the sgs arm's G is not all ones; the baseline's is
        String sgs = json.substring(json.indexOf("\"name\": \"sgs\""));
        String sgsG = sgs.substring(sgs.indexOf("\"g\""), sgs.indexOf("\"curve\"")).replaceAll("conv\\d", "conv");
        assertTrue(!sgsG.matches("[^0-9]*(1\\.0[^0-9]*)+"), "G of the sgs arm is not all ones: " + sgsG);
        String base = json.substring(json.indexOf("\"name\": \"baseline\""), json.indexOf("\"name\": \"sgs\""));
        String baseG = base.substring(base.indexOf("\"g\""), base.indexOf("\"curve\"")).replaceAll("conv\\d", "conv");
        assertTrue(baseG.matches("[^0-9]*(1\\.0[^0-9]*)+"), "baseline G all ones: " + baseG);
        var png = ImageIO.read(out.resolve("curves.png").toFile());
        assertTrue(png.getWidth() > 600 && png.getHeight() > 300, "curves.png " + png.getWidth() + "x" + png.getHeight());
    }

    @Test
    void badOptionsAreUsageErrorsAndAMissingTrainerIsNamed() {
        String[] r = run("--seeds", "0");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("--seeds"), r[2]);
        r = run("--arms", "baseline,nope");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("nope"), r[2]);
        r = run("--trainer", "tensorflow");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("tensorflow") && r[2].contains("djl"), r[2]);
        r = run("--data", dir.resolve("absent").toString(), "--arms", "baseline");
        assertEquals("1", r[0]);
        assertTrue(r[2].contains("absent"), r[2]);
        assertTrue(TrainCommand.runners().containsKey("djl"));
    }

    @Test
    void malformedIdxIsRefusedWithItsName() throws Exception {
        Path d = dir.resolve("bad");
        Files.createDirectories(d);
        for (String f : new String[] {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte.gz"}) {
            try (var z = new java.util.zip.GZIPOutputStream(Files.newOutputStream(d.resolve(f)))) {
                z.write(new byte[] {0, 0, 8, 3, 0, 0, 0, 1});
            }
        }
        java.io.IOException e = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class,
                () -> FashionMnistLoader.load(d.toString()));
        assertTrue(e.getMessage().contains("train-images-idx3-ubyte.gz"), e.getMessage());
    }
}
