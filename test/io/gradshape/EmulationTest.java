package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The CUDA kernels under host emulation (cuda-kernels/emulation/README.md), every family against
 * its CPU twin: runs the driver that the native build makes (test/native/emulation_test.cpp) and
 * reports each of its cases as one test, so that the report lists them by name with their detail.
 * No GPU is involved: this is what runs the CUDA kernel code on every build. The seed of the run's
 * random inputs is in the first test's name and in every failure ({@code GS_EMU_SEED} repeats it).
 */
class EmulationTest {
    private static final Pattern RESULT = Pattern.compile("^(PASS|FAIL) (\\S+) \\| (.*)$");
    private static final long TIMEOUT_MINUTES = 30;

    @TestFactory
    List<DynamicTest> cudaKernelsUnderEmulationMatchTheirCpuTwins() throws IOException, InterruptedException {
        Path binary = binary();
        assertTrue(Files.isExecutable(binary), "emulation driver not built: " + binary
                + " (cmake/CMakeLists.txt builds it unless -DGS_EMULATION=OFF)");
        ProcessBuilder pb = new ProcessBuilder(binary.toString()).redirectErrorStream(true);
        String seed = System.getProperty("gradshape.emulation.seed");
        if (seed != null) {
            pb.environment().put("GS_EMU_SEED", seed);
        }
        Process process = pb.start();
        List<String> lines = new ArrayList<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                lines.add(line);
            }
        }
        boolean finished = process.waitFor(TIMEOUT_MINUTES, TimeUnit.MINUTES);
        if (!finished) {
            process.destroyForcibly();
        }
        int exit = finished ? process.exitValue() : -1;

        List<DynamicTest> tests = new ArrayList<>();
        String header = lines.isEmpty() ? "(no output)" : lines.get(0);
        int passed = 0;
        int failed = 0;
        String summary = null;
        for (String line : lines) {
            Matcher m = RESULT.matcher(line);
            if (m.matches()) {
                boolean pass = m.group(1).equals("PASS");
                String detail = m.group(3);
                if (pass) {
                    passed++;
                } else {
                    failed++;
                }
                tests.add(DynamicTest.dynamicTest(m.group(2) + (pass && !detail.isEmpty() ? " [" + detail + "]" : ""), () -> {
                    if (!pass) {
                        fail(detail + " (" + header + ")");
                    }
                }));
            } else if (line.startsWith("SUMMARY ")) {
                summary = line;
            }
        }
        // The run itself: it must finish, report every case it ran, and agree with its own count.
        final int p = passed;
        final int f = failed;
        final String s = summary;
        final List<String> tail = lines.subList(Math.max(0, lines.size() - 20), lines.size());
        tests.add(0, DynamicTest.dynamicTest("emulation run: " + header, () -> {
            assertTrue(finished, "the emulation driver ran past " + TIMEOUT_MINUTES + " minutes");
            assertEquals(String.format("SUMMARY %d passed, %d failed", p, f), s,
                    "the driver stopped before its summary (crash or abort?), exit " + exit + ", last lines:\n"
                            + String.join("\n", tail));
            assertTrue(p > 0, "no case ran");
            assertEquals(f == 0 ? 0 : 1, exit, "exit status");
        }));
        return tests;
    }

    /** target/cmake/emulation/gs_emulation_test, found from this class's location (target/test-classes). */
    private static Path binary() {
        String given = System.getProperty("gradshape.emulation.binary");
        if (given != null) {
            return Paths.get(given);
        }
        try {
            Path classes = Paths.get(EmulationTest.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            return classes.getParent().resolve("cmake").resolve("emulation").resolve("gs_emulation_test");
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }
}
