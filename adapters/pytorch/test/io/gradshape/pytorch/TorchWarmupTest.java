package io.gradshape.pytorch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The fresh-cache crash and its workaround, on a private empty JavaCPP cache: a JVM that runs
 * {@link TorchWarmup} first survives whatever the first libtorch load does, and a JVM started after it
 * loads libtorch cleanly. (Whether the first child crashes depends on the machine; the test prints it.)
 */
class TorchWarmupTest {
    @Test
    void warmUpOnAFreshCacheLeavesACacheThatLoads() throws Exception {
        Path cache = Files.createTempDirectory("gradshape-javacpp-fresh-cache");
        try {
            Result warm = java(cache, List.of());
            System.out.println("TorchWarmup on a fresh cache: exit " + warm.code + ", " + warm.output.trim());
            assertEquals(0, warm.code, warm.output);
            assertTrue(warm.output.contains("child JVM exit codes ["), warm.output);
            Result load = java(cache, List.of("--child"));
            assertEquals(0, load.code, "a JVM after the warm-up loads libtorch: " + load.output);
            assertTrue(load.output.contains("libtorch loaded"), load.output);
        } finally {
            try (Stream<Path> files = Files.walk(cache)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private record Result(int code, String output) {}

    private static Result java(Path cache, List<String> args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(System.getProperty("java.home") + File.separator + "bin" + File.separator + "java");
        cmd.add("-Dorg.bytedeco.javacpp.cachedir=" + cache);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(TorchWarmup.class.getName());
        cmd.addAll(args);
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(10, TimeUnit.MINUTES), "child JVM finished");
        return new Result(p.exitValue(), out);
    }
}
