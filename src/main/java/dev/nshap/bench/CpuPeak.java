package dev.nshap.bench;

import dev.nshap.backend.cpu.Gemm;

import java.util.Locale;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * The CPU's attainable rates, measured in the same run as the figures divided by them: the GEMM the forward
 * pass uses ({@link Gemm#linear}: OpenBLAS or the Vector-API kernels) on a few large shapes, and a parallel array copy for memory bandwidth.
 * On a shared machine a single measurement can land in someone else's burst, so {@link #around} measures
 * before and after the workload and keeps the better median: a peak can only be under-, never over-estimated
 * by noise, and the higher of two honest medians is the closer one.
 */
public final class CpuPeak {
    private CpuPeak() {}

    public record Result(double gflops, int n, int k, int m) {}

    public static Result matmul(int warmup, int reps) {
        int[][] shapes = {{1024, 1024, 1024}, {512, 768, 3072}, {512, 3072, 768}};
        Result best = null;
        SplittableRandom r = new SplittableRandom(1);
        for (int[] s : shapes) {
            int n = s[0], k = s[1], m = s[2];
            float[] x = new float[n * k], w = new float[k * m], b = new float[m], o = new float[n * m];
            for (int i = 0; i < x.length; i++) x[i] = (float) (r.nextDouble() - 0.5);
            for (int i = 0; i < w.length; i++) w[i] = (float) (r.nextDouble() - 0.5);
            Stats st = Stats.time(warmup, reps, () -> Gemm.linear(o, x, w, b, n, k, m));
            double gf = 2.0 * n * k * m / st.median() / 1e9;
            if (best == null || gf > best.gflops) best = new Result(gf, n, k, m);
        }
        return best;
    }

    /** Bytes read + written per second (GB/s) by a parallel copy of 256 MiB, one slice per core. */
    public static double copyBandwidth(int warmup, int reps) {
        int n = 64 << 20; // floats
        float[] a = new float[n], b = new float[n];
        java.util.Arrays.fill(a, 1f);
        int parts = Runtime.getRuntime().availableProcessors();
        Stats st = Stats.time(warmup, reps, () -> IntStream.range(0, parts).parallel().forEach(p -> {
            int lo = (int) ((long) n * p / parts), hi = (int) ((long) n * (p + 1) / parts);
            System.arraycopy(a, lo, b, lo, hi - lo);
        }));
        return 2.0 * 4 * n / st.median() / 1e9;
    }

    /** Measures the matmul peak, runs the workload, measures again; records the better one in the report. */
    public static <T> T around(BenchReport report, java.util.function.Supplier<T> workload) {
        Result before = matmul(2, 5);
        T out = workload.get();
        Result after = matmul(1, 5);
        Result best = before.gflops >= after.gflops ? before : after;
        report.peak("cpu_matmul", best.gflops, "GFLOP/s", String.format(Locale.ROOT,
                Gemm.active() + " GEMM (the forward's), best median of 3 shapes (1024^3, 512x768x3072, 512x3072x768), measured before (%.1f) "
                        + "and after (%.1f) the workload; the higher is kept", before.gflops, after.gflops));
        return out;
    }
}
