package io.gradshape;

import java.util.ArrayList;
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

    /** Every backend, for parameterized tests: each invocation calls {@link TestBackend#get()} first. */
    public static List<TestBackend> all() {
        return List.of(TestBackend.values());
    }

    /**
     * The backends usable now (the CPU, plus CUDA when usable or required), for a loop inside one
     * test, where aborting on CUDA would skip the CPU part too.
     */
    public static List<Backend> usable() {
        List<Backend> list = new ArrayList<>();
        list.add(Backends.cpu());
        if (cudaRequired() || Backends.cudaUnavailableReason(0) == null) {
            list.add(Backends.cuda());
        }
        return list;
    }

    /** True under -Dgradshape.test.cuda=required (the GPU-host runner): CUDA must work, never skip. */
    static boolean cudaRequired() {
        return "required".equals(System.getProperty("gradshape.test.cuda"));
    }
}
