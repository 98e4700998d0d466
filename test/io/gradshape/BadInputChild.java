package io.gradshape;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;

/**
 * The child JVM of {@link BadInputTest}: runs the child cases of {@link BadInputCases} from the index
 * given, one by one, and reports each on stdout as {@code START i}, then {@code PASS i} or
 * {@code FAIL i <base64 message>}. A case that crashes the JVM leaves a START without an outcome,
 * which the parent reports as that case's failure.
 */
public final class BadInputChild {
    private BadInputChild() {}

    public static void main(String[] args) {
        PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true, StandardCharsets.UTF_8);
        // The library's own output must not mix with the protocol.
        System.setOut(System.err);
        int from = Integer.parseInt(args[0]);
        List<BadInputCases.Case> cases = BadInputCases.all().stream().filter(BadInputCases.Case::child).toList();
        for (int i = from; i < cases.size(); i++) {
            out.println("START " + i);
            String failure = null;
            try {
                cases.get(i).body().run();
            } catch (Throwable t) {
                failure = BadInputTest.describe(t);
            }
            out.println(failure == null ? "PASS " + i
                    : "FAIL " + i + " " + Base64.getEncoder().encodeToString(failure.getBytes(StandardCharsets.UTF_8)));
        }
        out.println("DONE");
        out.flush();
        System.exit(0);
    }
}
