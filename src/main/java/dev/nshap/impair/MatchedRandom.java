package dev.nshap.impair;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.backend.CounterRng;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.eval.Condition;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.model.GPT2Config;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The norm-matched random baseline of an impairment: at every site the real impairment touches, each position gets a
 * random direction over all of the hook's units, scaled to the L2 distance the real impairment moves that position
 * from its clean activation. So "does impairing these units matter more than moving the activations as far in any
 * direction?" has an answer: the ratio of the two effects, with a bootstrap interval over prompts.
 *
 * <p>Distances: noise modes, |level| x the norm of the noise drawn over the target's units (the very draw the real run
 * adds, seed for seed); scale mode, |level - 1| x the norm of the clean activation over the target's units (the clean
 * run's, not the one already changed by impairments upstream). Each (draw, prompt, layer) has one random unit
 * direction, scaled per position.
 */
public final class MatchedRandom {
    private MatchedRandom() {}

    /** Per metric, [level][prompt]: the metric under the matched random perturbation, mean over the draws. */
    public static List<double[][]> run(Evaluator ev, Target target, Mode mode, double[] levels, int seeds, long seed, int draws,
                                       long drawSeed, List<Metric> metrics) {
        GPT2Config c = ev.backend().config();
        int nSeeds = mode.random() ? seeds : 1;
        Map<Integer, float[][]> clean = new HashMap<>();
        if (mode == Mode.SCALE)
            for (int l : target.units().keySet()) clean.put(l, ev.collect(new HookPoint(l, target.kind())));
        int[] lengths = new int[ev.data().size()];
        for (int p = 0; p < lengths.length; p++) lengths[p] = ev.data().sequences[p].length;
        List<Condition> conds = new ArrayList<>();
        for (double level : levels)
            for (int r = 0; r < draws; r++) conds.add(condition(c, target, mode, level, seed + (r % nSeeds), r, drawSeed, clean, lengths));
        int[] prompts = ev.allPrompts();
        int[][] per = new int[conds.size()][];
        java.util.Arrays.fill(per, prompts);
        double[][][] v = ev.evaluate(conds, per, metrics);
        List<double[][]> out = new ArrayList<>();
        for (int m = 0; m < metrics.size(); m++) {
            double[][] o = new double[levels.length][prompts.length];
            for (int l = 0; l < levels.length; l++)
                for (int r = 0; r < draws; r++)
                    for (int p = 0; p < prompts.length; p++) o[l][p] += v[m][l * draws + r][p] / draws;
            out.add(o);
        }
        return out;
    }

    /**
     * Adds to each point of an impairment curve the matched random harm (mean, 95% t-interval over prompts) and the
     * ratio real harm / matched random harm with a percentile bootstrap interval over prompts (resampled in pairs).
     * The ratio is null where the random harm is not positive (the neutral level, or a metric it does not move): no
     * number is better than a meaningless one.
     */
    public static void annotate(ObjectNode curve, Sweep.Values v, double[][] matched, int draws, long bootSeed) {
        curve.put("matched_random_draws", draws);
        int n = v.prompts(), B = 2000;
        var pts = curve.get("points");
        for (int l = 0; l < v.levels().length; l++) {
            ObjectNode pt = (ObjectNode) pts.get(l);
            double[] real = v.harm(0, l), rand = new double[n];
            for (int p = 0; p < n; p++) rand[p] = v.metric().higherIsBetter ? v.clean()[p] - matched[l][p] : matched[l][p] - v.clean()[p];
            Stats s = Stats.of(rand);
            Results.num(pt, "matched_harm", s.mean());
            Results.num(pt, "matched_harm_ci_low", s.ciLow());
            Results.num(pt, "matched_harm_ci_high", s.ciHigh());
            double ratio = ratio(real, rand, null);
            Results.num(pt, "ratio", ratio);
            double lo = Double.NaN, hi = Double.NaN;
            if (Double.isFinite(ratio) && n >= 2) {
                java.util.SplittableRandom rng = new java.util.SplittableRandom(CounterRng.mix64(bootSeed + 31L * l));
                double[] bs = new double[B];
                int ok = 0;
                for (int b = 0; b < B; b++) {
                    int[] idx = new int[n];
                    for (int i = 0; i < n; i++) idx[i] = rng.nextInt(n);
                    double x = ratio(real, rand, idx);
                    if (Double.isFinite(x)) bs[ok++] = x;
                }
                // resamples where the random harm vanished have no ratio; too many of them and the interval means nothing
                if (ok >= 0.95 * B) {
                    double[] sorted = java.util.Arrays.copyOf(bs, ok);
                    java.util.Arrays.sort(sorted);
                    lo = sorted[(int) Math.floor(0.025 * (ok - 1))];
                    hi = sorted[(int) Math.ceil(0.975 * (ok - 1))];
                }
            }
            Results.num(pt, "ratio_ci_low", lo);
            Results.num(pt, "ratio_ci_high", hi);
        }
    }

    /** mean(real) / mean(random) over the prompts idx (null = all); NaN unless the random harm is clearly positive. */
    static double ratio(double[] real, double[] rand, int[] idx) {
        double a = 0, b = 0;
        int n = idx == null ? real.length : idx.length;
        for (int i = 0; i < n; i++) {
            int p = idx == null ? i : idx[i];
            a += real[p];
            b += rand[p];
        }
        return b > 1e-9 * n ? a / b : Double.NaN;
    }

    /** How far the real impairment moves each position of one prompt at one layer: [T]. */
    static double[] distances(GPT2Config c, Target target, Mode mode, double level, long noiseSeed, int prompt, int layer, int T,
                              Map<Integer, float[][]> clean) {
        int width = target.kind().width(c);
        int[] units = target.units().get(layer);
        int nu = units == null ? width : units.length;
        double[] d = new double[T];
        long s = Impairment.noiseSeed(noiseSeed, prompt, layer);
        for (int t = 0; t < T; t++) {
            double ss = 0, max = Double.NEGATIVE_INFINITY;
            if (mode == Mode.NEGATIVE_NOISE)
                for (int i = 0; i < nu; i++) max = Math.max(max, CounterRng.gaussian(s, t, units == null ? i : units[i]));
            for (int i = 0; i < nu; i++) {
                int u = units == null ? i : units[i];
                double x = switch (mode) {
                    case NOISE -> CounterRng.gaussian(s, t, u);
                    case NEGATIVE_NOISE -> CounterRng.gaussian(s, t, u) - max;
                    case SCALE -> clean.get(layer)[prompt][t * width + u];
                };
                ss += x * x;
            }
            d[t] = Math.abs(mode == Mode.SCALE ? level - 1 : level) * Math.sqrt(ss);
        }
        return d;
    }

    /** A random unit vector over the hook's width, a pure function of (drawSeed, draw, prompt, layer). */
    static float[] direction(long drawSeed, int draw, int prompt, int layer, int width) {
        long s = CounterRng.mix64(CounterRng.mix64(CounterRng.mix64(drawSeed ^ 0x5DEECE66DL) + draw) + 0x9E3779B97F4A7C15L * prompt + layer);
        float[] v = new float[width];
        double n = 0;
        for (int u = 0; u < width; u++) { v[u] = CounterRng.gaussian(s, 0, u); n += (double) v[u] * v[u]; }
        float inv = (float) (1 / Math.sqrt(n));
        for (int u = 0; u < width; u++) v[u] *= inv;
        return v;
    }

    static Condition condition(GPT2Config c, Target target, Mode mode, double level, long noiseSeed, int draw, long drawSeed,
                                       Map<Integer, float[][]> clean, int[] lengths) {
        int first = target.firstLayer();
        return new Condition() {
            @Override public List<Intervention> interventions(int[] sequences, int[] prompts) {
                List<Intervention> out = new ArrayList<>();
                for (int l : target.units().keySet()) {
                    HookPoint hp = new HookPoint(l, target.kind());
                    int width = target.kind().width(c);
                    for (int i = 0; i < sequences.length; i++) {
                        int p = prompts[i], T = lengths[p];
                        double[] d = distances(c, target, mode, level, noiseSeed, p, l, T, clean);
                        float[] u = direction(drawSeed, draw, p, l, width);
                        int[] one = {sequences[i]};
                        for (int t = 0; t < T; t++)
                            if (d[t] > 0) out.add(Intervention.add(hp, null, one, u, (float) d[t], Intervention.only(t)));
                    }
                }
                return out;
            }

            @Override public int firstLayer() { return first; }
        };
    }
}
