package dev.nshap.backend;

/**
 * Counter-based gaussian noise: a pure function of (seed, position, unit). The CUDA kernels compute the
 * same function (cuda/rng.cuh), so noise is reproducible across batches, runs and backends.
 */
public final class CounterRng {
    private CounterRng() {}

    public static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    public static float gaussian(long seed, int position, int unit) {
        long key = mix64(seed ^ 0x9E3779B97F4A7C15L) + (((long) position << 32) | (unit & 0xFFFFFFFFL));
        long a = mix64(key);
        long b = mix64(key ^ 0xD1B54A32D192ED03L);
        double u1 = ((a >>> 11) + 1) * 0x1.0p-53; // (0, 1]
        double u2 = (b >>> 11) * 0x1.0p-53;       // [0, 1)
        return (float) (Math.sqrt(-2.0 * Math.log(u1)) * Math.cos(2.0 * Math.PI * u2));
    }
}
