package dev.nshap.bench.jmh;

import java.util.SplittableRandom;

final class Fill {
    private Fill() {}

    static float[] random(int n, SplittableRandom r) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextDouble() - 0.5);
        return a;
    }
}
