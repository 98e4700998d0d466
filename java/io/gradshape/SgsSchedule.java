package io.gradshape;

/**
 * When spatial gradient scaling refreshes {@code G}: the papers' schedule. {@code G} is all ones
 * until the first refresh, which happens at the start of epoch {@code warmupEpochs}; afterwards at
 * the start of every epoch {@code e} with {@code e % everyEpochs == 0 && e > warmupEpochs}. Epochs
 * are counted from 0. Each refresh measures the conv inputs over {@code batches} batches (in eval
 * mode), merged exactly.
 *
 * <p>Defaults ({@link #defaults()}): {@code everyEpochs = 5}, {@code batches = 2},
 * {@code warmupEpochs = 1}: refreshes at epochs 1, 5, 10, 15, ...
 */
public record SgsSchedule(int everyEpochs, int batches, int warmupEpochs) {
    public SgsSchedule {
        if (everyEpochs < 1) {
            throw new IllegalArgumentException("everyEpochs: must be >= 1, got " + everyEpochs);
        }
        if (batches < 1) {
            throw new IllegalArgumentException("batches: must be >= 1, got " + batches);
        }
        if (warmupEpochs < 0) {
            throw new IllegalArgumentException("warmupEpochs: must be >= 0, got " + warmupEpochs);
        }
    }

    /** E = 5, B = 2, warmup = 1, as in the papers' reference code. */
    public static SgsSchedule defaults() {
        return new SgsSchedule(5, 2, 1);
    }

    /** True when {@code G} is to be refreshed at the start of {@code epoch} (0-based). */
    public boolean refreshAt(int epoch) {
        if (epoch < 0) {
            throw new IllegalArgumentException("epoch: must be >= 0, got " + epoch);
        }
        return (epoch % everyEpochs == 0 && epoch > warmupEpochs) || epoch == warmupEpochs;
    }
}
