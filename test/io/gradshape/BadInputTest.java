package io.gradshape;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The generated bad-input suite of {@link BadInputCases} (issue 10): every case ends in a correct
 * result or in a typed exception naming the argument. Cases that reach native code with hostile sizes
 * or state run in a child JVM: one that crashes it is reported as that case's failure with the exit
 * status and the end of the child's output (the JVM's crash banner), and the child is restarted for
 * the cases after it, so one crash neither hides the others nor takes this test run down.
 */
class BadInputTest {
    /** The issue asks for at least 300 cases. */
    private static final int MINIMUM_CASES = 300;
    /** A child that stops reporting for this long is hung: reported as a failure of the running case. */
    private static final long CHILD_TIMEOUT_SECONDS = 300;

    @Test
    void theSuiteIsLargeAndCoversEveryEntryPoint() {
        List<BadInputCases.Case> all = BadInputCases.all();
        assertTrue(all.size() >= MINIMUM_CASES, all.size() + " cases, expected >= " + MINIMUM_CASES);
        for (String entry : new String[] {"SpatialDependence.compute", "Accumulator.", "ScaledSgd.", "PowerGrad", "Memory.",
            "HostBuffer.", "DeviceBuffer.", "Gradshape.", "Backends."}) {
            assertTrue(all.stream().anyMatch(c -> c.name().startsWith(entry)), "no case for " + entry);
        }
        assertTrue(all.stream().filter(BadInputCases.Case::child).count() >= 100, "crash-prone cases run in the child JVM");
    }

    @TestFactory
    Stream<DynamicTest> inThisJvm() {
        return BadInputCases.all().stream().filter(c -> !c.child())
                .map(c -> DynamicTest.dynamicTest(c.name(), () -> run(c)));
    }

    @TestFactory
    Stream<DynamicTest> inAChildJvm() throws IOException, InterruptedException {
        List<BadInputCases.Case> cases = BadInputCases.all().stream().filter(BadInputCases.Case::child).toList();
        String[] failures = runInChildren(cases.size());
        List<DynamicTest> tests = new ArrayList<>();
        for (int i = 0; i < cases.size(); i++) {
            String failure = failures[i] == null ? null : cases.get(i).name() + ": " + failures[i];
            tests.add(DynamicTest.dynamicTest(cases.get(i).name() + " (child JVM)", () -> {
                if (failure != null) {
                    fail(failure);
                }
            }));
        }
        return tests.stream();
    }

    private static void run(BadInputCases.Case c) {
        try {
            c.body().run();
        } catch (Throwable t) {
            fail(c.name() + ": " + describe(t), t);
        }
    }

    static String describe(Throwable t) {
        if (t instanceof AssertionError && t.getCause() == null) {
            return t.getMessage();
        }
        StringWriter w = new StringWriter();
        t.printStackTrace(new PrintWriter(w));
        String trace = w.toString();
        return (t instanceof AssertionError ? t.getMessage() + "\n" : "") + trace.substring(0, Math.min(trace.length(), 3000));
    }

    /** Runs the child cases, restarting the child after a crash; null entries passed. */
    private static String[] runInChildren(int count) throws IOException, InterruptedException {
        String[] failures = new String[count];
        boolean[] reported = new boolean[count];
        int next = 0;
        while (next < count) {
            Path stderr = Files.createTempFile("gradshape-badinput-child", ".err");
            // A crash report goes to the temporary directory, not into the working tree; no core dump.
            String errorFile = System.getProperty("java.io.tmpdir") + File.separator + "gradshape-badinput-hs_err_pid%p.log";
            ProcessBuilder pb = new ProcessBuilder(javaBinary(), "-Xmx1g", "-Xss4m", "-XX:-CreateCoredumpOnCrash",
                    "-XX:ErrorFile=" + errorFile,
                    "-Dgradshape.backend=" + System.getProperty("gradshape.backend", "auto"),
                    "-cp", System.getProperty("java.class.path"), BadInputChild.class.getName(), Integer.toString(next));
            pb.redirectError(stderr.toFile());
            Process child = pb.start();
            int started = -1;
            boolean done = false;
            StringBuilder other = new StringBuilder();
            // Watchdog: a child silent for too long is hung; killing it ends its stream and the loop below.
            java.util.concurrent.atomic.AtomicLong lastLine = new java.util.concurrent.atomic.AtomicLong(System.nanoTime());
            java.util.concurrent.atomic.AtomicBoolean hung = new java.util.concurrent.atomic.AtomicBoolean();
            Thread watchdog = new Thread(() -> {
                while (child.isAlive()) {
                    if (System.nanoTime() - lastLine.get() > TimeUnit.SECONDS.toNanos(CHILD_TIMEOUT_SECONDS)) {
                        hung.set(true);
                        child.destroyForcibly();
                        return;
                    }
                    try {
                        Thread.sleep(500);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }, "bad-input child watchdog");
            watchdog.setDaemon(true);
            watchdog.start();
            try (BufferedReader in = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    lastLine.set(System.nanoTime());
                    String[] f = line.split(" ", 3);
                    switch (f[0]) {
                        case "START" -> started = Integer.parseInt(f[1]);
                        case "PASS" -> reported[Integer.parseInt(f[1])] = true;
                        case "FAIL" -> {
                            int i = Integer.parseInt(f[1]);
                            reported[i] = true;
                            failures[i] = new String(Base64.getDecoder().decode(f[2]), StandardCharsets.UTF_8);
                        }
                        case "DONE" -> done = true;
                        default -> other.append(line).append('\n'); // the JVM's crash banner goes to stdout
                    }
                }
            }
            child.waitFor();
            watchdog.interrupt();
            boolean exited = !hung.get();
            String tail = tail(stderr);
            Files.deleteIfExists(stderr);
            if (done && exited && child.exitValue() == 0) {
                break;
            }
            String why = !exited ? "hung the child JVM (silent for " + CHILD_TIMEOUT_SECONDS + " s, killed)"
                    : "crashed the child JVM (exit status " + child.exitValue() + ")";
            if (started < next || reported[started]) {
                // Died between cases (or before the first): blame the next case so that none is skipped silently.
                started = Math.max(next, started + (started >= 0 && reported[started] ? 1 : 0));
            }
            if (started >= count) {
                break;
            }
            String banner = other.substring(Math.max(0, other.length() - 4000));
            failures[started] = why + "; its stdout ends:\n" + banner + "its stderr ends:\n" + tail;
            reported[started] = true;
            next = started + 1;
        }
        for (int i = 0; i < count; i++) {
            if (!reported[i]) {
                failures[i] = "not run: the child JVM stopped before this case";
            }
        }
        return failures;
    }

    private static String tail(Path file) throws IOException {
        String text = Files.readString(file, StandardCharsets.UTF_8);
        return text.substring(Math.max(0, text.length() - 4000));
    }

    private static String javaBinary() {
        return System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
    }
}
