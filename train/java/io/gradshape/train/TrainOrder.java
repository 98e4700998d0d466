package io.gradshape.train;

import java.util.Random;

/** The data order every arm and trainer shares: a seeded subset of the training set, reshuffled per epoch. */
public final class TrainOrder {
    private TrainOrder() {}

    /** {@code size} distinct training indices, a prefix of a seeded permutation of {@code 0..count-1}. */
    public static int[] subset(int count, int size, long seed) {
        if (size < 1 || size > count) {
            throw new IllegalArgumentException("size: expected 1.." + count + ", got " + size);
        }
        int[] p = permutation(count, new Random(seed));
        int[] out = new int[size];
        System.arraycopy(p, 0, out, 0, size);
        return out;
    }

    /** The order of {@code subset} in epoch {@code epoch} (0-based): the same for every arm of a seed. */
    public static int[] epoch(int[] subset, long seed, int epoch) {
        int[] p = permutation(subset.length, new Random(seed * 1_000_003L + epoch + 1));
        int[] out = new int[subset.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = subset[p[i]];
        }
        return out;
    }

    private static int[] permutation(int n, Random r) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }
}
