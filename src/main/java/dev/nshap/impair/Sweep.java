package dev.nshap.impair;

import dev.nshap.eval.Condition;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.util.Progress;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Scores one dataset under every target x level x noise seed. Values are kept per prompt (averaged over the
 * noise seeds, which are drawn independently per prompt), so every statistic downstream is a mean over
 * independent prompts whose spread covers both prompt and noise variation.
 */
public final class Sweep {
    private Sweep() {}

    /**
     * @param clean    per prompt, the metric of the clean model
     * @param impaired [target][level][prompt], the metric under impairment, mean over noise seeds
     */
    public record Values(Metric metric, double[] levels, double[] clean, double[][][] impaired) {
        public int prompts() { return clean.length; }

        /** Per prompt, how much worse than clean (positive = harm, whatever the metric's direction). */
        public double[] harm(int target, int level) {
            double[] v = impaired[target][level];
            double[] h = new double[v.length];
            for (int p = 0; p < v.length; p++) h[p] = metric.higherIsBetter ? clean[p] - v[p] : v[p] - clean[p];
            return h;
        }

        /** Per prompt, the area under the harm curve over the levels (trapezoids, levels in ascending order). */
        public double[] harmAuc(int target) {
            Integer[] order = new Integer[levels.length];
            for (int i = 0; i < order.length; i++) order[i] = i;
            Arrays.sort(order, (a, b) -> Double.compare(levels[a], levels[b]));
            double[] auc = new double[prompts()];
            for (int k = 1; k < order.length; k++) {
                double dx = levels[order[k]] - levels[order[k - 1]];
                double[] h0 = harm(target, order[k - 1]), h1 = harm(target, order[k]);
                for (int p = 0; p < auc.length; p++) auc[p] += 0.5 * dx * (h0[p] + h1[p]);
            }
            return auc;
        }

        /** Mean over prompts of target's metric at each level. */
        public double meanAt(int target, int level) {
            double s = 0;
            for (double x : impaired[target][level]) s += x;
            return s / prompts();
        }
    }

    public static Values run(Evaluator ev, List<Target> targets, Mode mode, double[] levels, int seeds, long seed,
                             Metric metric, Progress progress, long[] done) {
        return run(ev, targets, mode, levels, seeds, seed, List.of(metric), progress, done).get(0);
    }

    /**
     * Every metric from the same forward passes (one result per metric, in order). The clean values come from
     * the evaluator's cache, so sweeping several clusters over one dataset runs the clean model once.
     */
    public static List<Values> run(Evaluator ev, List<Target> targets, Mode mode, double[] levels, int seeds, long seed,
                                   List<Metric> metrics, Progress progress, long[] done) {
        int nSeeds = mode.random() ? seeds : 1;
        int[] prompts = ev.allPrompts();
        List<double[]> clean = ev.clean(metrics);
        double[][][][] out = new double[metrics.size()][targets.size()][levels.length][prompts.length];
        for (int t = 0; t < targets.size(); t++) {
            Impairment imp = new Impairment(targets.get(t), mode);
            List<Condition> conds = new ArrayList<>();
            for (double level : levels)
                for (int s = 0; s < nSeeds; s++) conds.add(imp.condition(level, seed + s));
            int[][] per = new int[conds.size()][];
            java.util.Arrays.fill(per, prompts);
            double[][][] v = ev.evaluate(conds, per, metrics);
            for (int m = 0; m < metrics.size(); m++)
                for (int l = 0; l < levels.length; l++)
                    for (int s = 0; s < nSeeds; s++)
                        for (int p = 0; p < prompts.length; p++) out[m][t][l][p] += v[m][l * nSeeds + s][p] / nSeeds;
            if (progress != null) progress.update(done[0] += (long) conds.size() * prompts.length);
        }
        List<Values> res = new ArrayList<>();
        for (int m = 0; m < metrics.size(); m++) res.add(new Values(metrics.get(m), levels.clone(), clean.get(m), out[m]));
        return res;
    }

    /** Work units of one run, for a Progress total: sequences evaluated. */
    public static long work(int targets, Mode mode, int levels, int seeds, int prompts) {
        return (long) targets * levels * (mode.random() ? seeds : 1) * prompts;
    }
}
