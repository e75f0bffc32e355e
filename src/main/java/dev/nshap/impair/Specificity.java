package dev.nshap.impair;

import dev.nshap.NshapException;

import java.util.List;

/**
 * The cluster topic x evaluation topic matrix of impairment effects. Each cell compares a real cluster with
 * random clusters of the same per-layer counts, impaired the same way on the same prompts.
 */
public final class Specificity {
    private Specificity() {}

    /**
     * @param effect   mean over prompts of the per-prompt harm (drop at a level, or area under the harm curve)
     * @param baseMean mean over random clusters of their effect; {@code baseSd} their sample sd
     * @param z        (effect - baseMean) / baseSd; NaN when the random effects do not vary
     */
    public record Cell(double effect, double ciLow, double ciHigh, double baseMean, double baseSd, int baseCount, double z) {
        /** Upper edge of the random band, mean + 1.96 sd (the mean itself when there is no spread to measure). */
        public double baseHigh() { return Double.isFinite(baseSd) ? baseMean + 1.96 * baseSd : baseMean; }
    }

    /** A cell from a sweep whose target 0 is the real cluster and targets 1.. are its random matches. */
    public static Cell cell(Sweep.Values v, int level) {
        double[] real = level >= 0 ? v.harm(0, level) : v.harmAuc(0);
        Stats s = Stats.of(real);
        int r = v.impaired().length - 1;
        double[] base = new double[r];
        for (int k = 0; k < r; k++) {
            double[] h = level >= 0 ? v.harm(k + 1, level) : v.harmAuc(k + 1);
            double m = 0;
            for (double x : h) m += x;
            base[k] = m / h.length;
        }
        double bm = Double.NaN, bsd = Double.NaN;
        if (r > 0) {
            Stats b = Stats.of(base);
            bm = b.mean();
            bsd = b.sd();
        }
        double z = bsd > 0 ? (s.mean() - bm) / bsd : Double.NaN;
        double lo = Double.isNaN(s.ciLow()) ? s.mean() : s.ciLow(), hi = Double.isNaN(s.ciHigh()) ? s.mean() : s.ciHigh();
        return new Cell(s.mean(), lo, hi, bm, bsd, r, z);
    }

    /**
     * A cluster is specific when its own-topic effect's CI lies above the CI of its effect on every other topic
     * AND above the random baseline's band (mean + 1.96 sd of the random clusters' own-topic effects).
     */
    public static boolean specific(Cell[] row, int own) {
        Cell c = row[own];
        if (!(c.ciLow() > 0)) return false; // no harm at all is never specific
        for (int j = 0; j < row.length; j++) if (j != own && !(c.ciLow() > row[j].ciHigh())) return false;
        return c.baseCount() == 0 || c.ciLow() > c.baseHigh();
    }

    /** Why {@link #specific} said what it said, in words. */
    public static String reason(Cell[] row, int own, List<String> datasetNames) {
        Cell c = row[own];
        if (!(c.ciLow() > 0)) return "own-topic effect is not above 0";
        for (int j = 0; j < row.length; j++)
            if (j != own && !(c.ciLow() > row[j].ciHigh())) return "own-topic effect does not beat " + datasetNames.get(j) + " beyond the CI";
        if (c.baseCount() > 0 && !(c.ciLow() > c.baseHigh())) return "own-topic effect does not beat the random baseline band";
        return "own-topic effect beats every other topic and the random baseline";
    }

    /**
     * Which dataset is the cluster's own topic: the one whose topic label or file name equals the cluster's topic;
     * failing that, the dataset in the same position when there are as many datasets as clusters.
     */
    public static int ownIndex(String clusterTopic, int clusterIndex, List<String> datasetTopics, List<String> datasetNames, int clusters) {
        for (int j = 0; j < datasetTopics.size(); j++) if (datasetTopics.get(j).equals(clusterTopic)) return j;
        for (int j = 0; j < datasetNames.size(); j++) if (datasetNames.get(j).equals(clusterTopic)) return j;
        if (clusters == datasetTopics.size()) return clusterIndex;
        throw new NshapException("cluster " + (clusterIndex + 1) + " has topic '" + clusterTopic
                + "', which matches no dataset topic or name; give one dataset per cluster in the same order");
    }
}
