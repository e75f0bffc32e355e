package dev.nshap.bench;

import dev.nshap.backend.cpu.CpuKernels;

import java.util.SplittableRandom;

/**
 * The CPU's attainable matmul rate, measured with the same Vector-API kernel the forward pass uses on a few
 * large shapes; the best median is the "peak" other figures are divided by.
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
            Stats st = Stats.time(warmup, reps, () -> CpuKernels.matmul(o, x, w, b, n, k, m));
            double gf = 2.0 * n * k * m / st.median() / 1e9;
            if (best == null || gf > best.gflops) best = new Result(gf, n, k, m);
        }
        return best;
    }
}
