package dev.nshap.bench;

import java.util.Arrays;

/** Median and spread of repeated timings (seconds). */
public record Stats(double median, double mean, double min, double max, double p10, double p90, int n) {
    public static Stats of(double[] seconds) {
        double[] s = seconds.clone();
        Arrays.sort(s);
        return new Stats(quantile(s, 0.5), Arrays.stream(s).average().orElse(0), s[0], s[s.length - 1], quantile(s, 0.1), quantile(s, 0.9), s.length);
    }

    static double quantile(double[] sorted, double q) {
        double pos = q * (sorted.length - 1);
        int lo = (int) Math.floor(pos), hi = (int) Math.ceil(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }

    /** Relative spread (p90 - p10) / median. */
    public double spread() { return median > 0 ? (p90 - p10) / median : 0; }

    @FunctionalInterface
    public interface Body { void run() throws Exception; }

    /** Runs {@code warmup} untimed then {@code reps} timed repetitions. */
    public static Stats time(int warmup, int reps, Body body) {
        try {
            for (int i = 0; i < warmup; i++) body.run();
            double[] t = new double[reps];
            for (int i = 0; i < reps; i++) {
                long t0 = System.nanoTime();
                body.run();
                t[i] = (System.nanoTime() - t0) / 1e9;
            }
            return of(t);
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
