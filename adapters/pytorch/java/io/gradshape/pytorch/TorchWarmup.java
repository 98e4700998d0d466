package io.gradshape.pytorch;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.Loader;

/**
 * Works around a crash of the PyTorch presets: on a fresh JavaCPP cache ({@code ~/.javacpp/cache}, or
 * {@code -Dorg.bytedeco.javacpp.cachedir}) the first JVM that loads libtorch extracts the libraries
 * and dies with SIGSEGV in {@code pthread_mutex_lock}, inside {@code System.load} of
 * {@code libtorch_cpu.so} (its static initialisers); every later JVM, reading the extracted cache,
 * loads fine. A crash of the JVM cannot be caught, so {@link #ensureCache()} loads libtorch in a child
 * JVM first (same java, classpath and {@code org.bytedeco.javacpp.*} properties), tolerating that
 * crash, and retries until a child loads it. Call it before the first use of any
 * {@code org.bytedeco.pytorch} class; it costs one child JVM start and a libtorch load (about 2 s) and
 * is a no-op after the first successful call in a JVM.
 *
 * <p>{@code main} is the same as a command: the build runs it before the adapter's tests
 * ({@code exec-maven-plugin} in {@code adapters/pytorch/pom.xml}). With {@code --child} it is the
 * child: it only loads libtorch and exits 0.
 */
public final class TorchWarmup {
    /** Child JVMs tried before giving up: the crash is seen once per fresh cache. */
    static final int ATTEMPTS = 3;
    private static final long CHILD_TIMEOUT_SECONDS = 600;
    private static volatile boolean warm;

    private TorchWarmup() {}

    /** What {@link #ensureCache()} did: one exit code per child JVM started (0 last when it worked). */
    public record Outcome(List<Integer> exitCodes, String lastOutput) {
        public boolean crashedFirst() {
            return exitCodes.size() > 1;
        }
    }

    /**
     * Makes sure libtorch loads in this JVM without the fresh-cache crash: loads it in child JVMs until
     * one succeeds (at most {@value #ATTEMPTS}).
     *
     * @throws IllegalStateException when no child JVM loaded libtorch; its output is in the message
     */
    public static synchronized Outcome ensureCache() {
        if (warm) {
            return new Outcome(List.of(), "");
        }
        List<Integer> codes = new ArrayList<>();
        String output = "";
        for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
            ProcessBuilder pb = new ProcessBuilder(childCommand()).redirectErrorStream(true);
            try {
                Process p = pb.start();
                p.getOutputStream().close();
                byte[] out = p.getInputStream().readAllBytes();
                if (!p.waitFor(CHILD_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    throw new IllegalStateException("libtorch warm-up: the child JVM did not exit within " + CHILD_TIMEOUT_SECONDS + " s");
                }
                output = new String(out, StandardCharsets.UTF_8);
                codes.add(p.exitValue());
                if (p.exitValue() == 0) {
                    warm = true;
                    return new Outcome(List.copyOf(codes), output);
                }
            } catch (IOException e) {
                throw new IllegalStateException("libtorch warm-up: cannot start a child JVM (" + e.getMessage() + ")", e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("libtorch warm-up: interrupted", e);
            }
        }
        throw new IllegalStateException("libtorch warm-up: " + ATTEMPTS + " child JVMs failed to load libtorch (exit codes " + codes
                + "); the last one printed:\n" + tail(output));
    }

    static List<String> childCommand() {
        List<String> cmd = new ArrayList<>();
        cmd.add(System.getProperty("java.home") + File.separator + "bin" + File.separator + "java");
        for (String name : System.getProperties().stringPropertyNames()) {
            if (name.startsWith("org.bytedeco.javacpp.")) {
                cmd.add("-D" + name + "=" + System.getProperty(name));
            }
        }
        // No crash report files from the expected crash in the working directory.
        cmd.add("-XX:ErrorFile=" + System.getProperty("java.io.tmpdir") + File.separator + "gradshape-torch-warmup-%p.log");
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(TorchWarmup.class.getName());
        cmd.add("--child");
        return cmd;
    }

    private static String tail(String s) {
        return s.length() <= 4000 ? s : "..." + s.substring(s.length() - 4000);
    }

    /**
     * {@code --child}: loads libtorch and exits 0. Without it: {@link #ensureCache()}, printing what
     * happened; exit status 0 when libtorch loads, 1 when it does not.
     */
    public static void main(String[] args) {
        if (args.length == 1 && args[0].equals("--child")) {
            Loader.load(org.bytedeco.pytorch.global.torch.class);
            System.out.println("libtorch loaded");
            System.exit(0);
        }
        if (args.length != 0) {
            System.err.println("usage: TorchWarmup [--child]");
            System.exit(2);
        }
        try {
            Outcome o = ensureCache();
            System.out.println("libtorch warm-up: child JVM exit codes " + o.exitCodes()
                    + (o.crashedFirst() ? " (the fresh-cache crash, then a clean load)" : ""));
            System.exit(0);
        } catch (IllegalStateException e) {
            System.err.println(e.getMessage());
            System.exit(1);
        }
    }
}
