package io.gradshape;

import io.gradshape.natives.CoreNative;
import io.gradshape.natives.Natives;

/** The native C++ kernels, multi-threaded over every core (see {@link Gradshape#setCpuThreads}). */
public final class CpuBackend implements Backend {
    static final CpuBackend INSTANCE = new CpuBackend();

    private CpuBackend() {}

    @Override
    public Kind kind() {
        return Kind.CPU;
    }

    @Override
    public String description() {
        return "CPU (" + Gradshape.cpuThreads() + " threads)";
    }

    @Override
    public void synchronize(long stream) {
        // CPU kernels return when done.
    }

    @Override
    public String toString() {
        return description();
    }

    static void ensureLoaded() {
        Natives.load();
        CoreNative.gs_version(); // initialises the mapping class
    }
}
