package io.gradshape;

import java.util.Arrays;
import java.util.List;
import org.opentest4j.TestAbortedException;

/**
 * The backends a parity test runs on: the CPU, and CUDA device 0. Where CUDA is not usable, the
 * CUDA invocations are reported as skipped with the reason rather than left out, so a test report
 * shows that GPU parity was not checked.
 */
public final class TestBackends {
    private TestBackends() {}

    /** A backend as a test argument: resolved only inside the test, where skipping is possible. */
    public enum TestBackend {
        CPU, CUDA;

        /**
         * The backend to test. For CUDA, when it is not usable: aborts the test (skipped, with the
         * reason), or under -Dgradshape.test.cuda=required throws the reason, failing the test.
         */
        public Backend get() {
            if (this == CPU) {
                return Backends.cpu();
            }
            String why = Backends.cudaUnavailableReason(0);
            if (why != null && !cudaRequired()) {
                throw new TestAbortedException("GPU test skipped: " + why);
            }
            return Backends.cuda();
        }

        @Override
        public String toString() {
            return this == CPU ? "cpu" : "cuda";
        }
    }

    /**
     * Every backend, for parameterized tests: each invocation calls {@link TestBackend#get()} first.
     * {@code -Dgradshape.test.backends=cuda} keeps only CUDA (the GPU runner's compute-sanitizer pass,
     * where CPU invocations would only cost time).
     */
    public static List<TestBackend> all() {
        String only = System.getProperty("gradshape.test.backends", "cpu,cuda");
        return Arrays.stream(TestBackend.values()).filter(b -> Arrays.asList(only.split(",")).contains(b.toString())).toList();
    }

    /** True under -Dgradshape.test.cuda=required (the GPU-host runner): CUDA must work, never skip. */
    static boolean cudaRequired() {
        return "required".equals(System.getProperty("gradshape.test.cuda"));
    }
}
