package dev.nshap.impair;

import org.apache.commons.statistics.distribution.TDistribution;

/** Mean and a two-sided 95% Student-t interval of independent values. */
public record Stats(double mean, double sd, int n, double ciLow, double ciHigh) {

    public static Stats of(double[] v) {
        int n = v.length;
        double m = 0;
        for (double x : v) m += x;
        m /= n;
        if (n < 2) return new Stats(m, Double.NaN, n, Double.NaN, Double.NaN);
        double ss = 0;
        for (double x : v) ss += (x - m) * (x - m);
        double sd = Math.sqrt(ss / (n - 1));
        double h = TDistribution.of(n - 1).inverseCumulativeProbability(0.975) * sd / Math.sqrt(n);
        return new Stats(m, sd, n, m - h, m + h);
    }
}
