package io.gradshape;

import java.util.ArrayList;
import java.util.List;

/** The backends a parity test runs on: always the CPU; CUDA device 0 when usable. */
public final class TestBackends {
    private TestBackends() {}

    /** The CPU backend, plus CUDA when usable (or required by -Dgradshape.test.cuda=required). */
    public static List<Backend> all() {
        List<Backend> list = new ArrayList<>();
        list.add(Backends.cpu());
        if ("required".equals(System.getProperty("gradshape.test.cuda")) || Backends.cudaUnavailableReason(0) == null) {
            list.add(Backends.cuda());
        }
        return list;
    }
}
