package dev.nshap.impair;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.backend.CounterRng;
import dev.nshap.io.Json;

/**
 * Where an impairment curve crosses a threshold: the least impairment (the level nearest the neutral one) at which the mean metric over prompts reaches T
 * (falls to T for a higher-is-better metric, rises to T otherwise), linearly interpolated between the two levels around
 * the crossing. Its interval is a percentile bootstrap over prompts; resamples that never cross are counted, and the
 * interval is left out when more than 5% of them do not cross (it would hide that the crossing itself is uncertain).
 */
public final class Threshold {
    private Threshold() {}

    /** The interpolated crossing level of the mean curve over the prompts idx (null = all), or NaN if it never crosses. */
    static double crossing(Sweep.Values v, double t, double neutral, int[] idx) {
        double[] lv = v.levels();
        Integer[] order = new Integer[lv.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        // from the least impaired level to the most: noise grows away from 0, scale shrinks from 1 towards 0
        java.util.Arrays.sort(order, (a, b) -> Double.compare(Math.abs(lv[a] - neutral), Math.abs(lv[b] - neutral)));
        boolean down = v.metric().higherIsBetter;
        double prevX = Double.NaN, prevY = Double.NaN;
        for (int k = 0; k < order.length; k++) {
            double[] vals = v.impaired()[0][order[k]];
            double y = 0;
            int n = idx == null ? vals.length : idx.length;
            for (int i = 0; i < n; i++) y += vals[idx == null ? i : idx[i]];
            y /= n;
            double x = lv[order[k]];
            if (down ? y <= t : y >= t) {
                if (k == 0 || y == prevY) return x;
                return prevX + (t - prevY) / (y - prevY) * (x - prevX);
            }
            prevX = x;
            prevY = y;
        }
        return Double.NaN;
    }

    /** @param neutral the level that leaves the model untouched ({@link Mode#neutralLevel}); levels are ordered by distance from it */
    public static ObjectNode crossing(Sweep.Values v, double t, double neutral, long seed) {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("threshold", t);
        o.put("direction", v.metric().higherIsBetter ? "falls to" : "rises to");
        double x = crossing(v, t, neutral, null);
        Results.num(o, "level", x);
        int n = v.prompts(), B = 2000, crossed = 0;
        double[] bs = new double[B];
        java.util.SplittableRandom rng = new java.util.SplittableRandom(CounterRng.mix64(seed ^ 0x7F4A7C15L));
        for (int b = 0; b < B; b++) {
            int[] idx = new int[n];
            for (int i = 0; i < n; i++) idx[i] = rng.nextInt(n);
            double c = crossing(v, t, neutral, idx);
            if (Double.isFinite(c)) bs[crossed++] = c;
        }
        o.put("bootstrap_crossed_fraction", (double) crossed / B);
        double lo = Double.NaN, hi = Double.NaN;
        if (Double.isFinite(x) && n >= 2 && crossed >= 0.95 * B) {
            double[] s = java.util.Arrays.copyOf(bs, crossed);
            java.util.Arrays.sort(s);
            lo = s[(int) Math.floor(0.025 * (crossed - 1))];
            hi = s[(int) Math.ceil(0.975 * (crossed - 1))];
        }
        Results.num(o, "ci_low", lo);
        Results.num(o, "ci_high", hi);
        return o;
    }
}
