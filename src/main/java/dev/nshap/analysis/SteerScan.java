package dev.nshap.analysis;

import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.eval.Condition;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * An injection-coefficient scan: for every (layer, coefficient) cell, coefficient x the layer's steering vector is
 * added at {@code blocks.L.<kind>}, and the cells x prompts run as one packed set of batches (each cell its own group
 * of sequences). Per cell and prompt: the metrics, and the final residual stream at the first answer position split
 * into the components that write it (the embeddings, each layer's attention output, each layer's MLP output, and
 * what the steering added directly), each dotted with the prompt's logit-difference direction through the final
 * LayerNorm's scale. The contributions plus the LayerNorm bias term sum to the logit difference exactly.
 */
public final class SteerScan {
    /** Component names, in order: embed, L0.attn, L0.mlp, ..., steer. */
    public static List<String> components(GPT2Config c) {
        List<String> n = new ArrayList<>();
        n.add("embed");
        for (int l = 0; l < c.nLayer(); l++) { n.add("L" + l + ".attn"); n.add("L" + l + ".mlp"); }
        n.add("steer");
        return n;
    }

    /**
     * @param metrics [metric][cell][prompt]
     * @param contrib [cell][prompt][component]: contribution to the direction's logit difference
     * @param bias    [prompt]: the final LayerNorm's bias dotted with the direction (the same in every cell)
     */
    public record Result(List<Metric> metricNames, double[][][] metrics, double[][][] contrib, double[] bias, int evaluatorPasses) {
        /** The direction's logit difference of a cell and prompt: contributions + bias. */
        public double logitDiff(int cell, int prompt) {
            double s = bias[prompt];
            for (double v : contrib[cell][prompt]) s += v;
            return s;
        }
    }

    private SteerScan() {}

    /** Cell index of (layer i, coefficient j). */
    public static int cell(int layerIndex, int coefIndex, int nCoef) { return layerIndex * nCoef + coefIndex; }

    /**
     * @param vectors  per entry of {@code layers}, the vector added at that layer's hook (hook width)
     * @param from     positions: 0 all, p from p on, {@link Intervention#LAST} the last only
     * @param dirA     per prompt, the token whose logit counts up
     * @param dirB     per prompt, the token whose logit counts down
     */
    public static Result run(Evaluator ev, GPT2Weights w, HookPoint.Kind kind, int[] layers, float[][] vectors,
                             double[] coefs, int from, List<Metric> metrics, int[] dirA, int[] dirB) {
        GPT2Config c = w.config;
        TokenizedDataset data = ev.data();
        int n = data.size(), C = c.nEmbd(), L = c.nLayer(), nComp = 2 + 2 * L;
        List<Condition> cells = new ArrayList<>();
        for (int i = 0; i < layers.length; i++)
            for (double coef : coefs)
                cells.add(Condition.of(List.of(Intervention.add(new HookPoint(layers[i], kind), null, null, vectors[i], (float) coef, from)), L));
        Set<HookPoint> cache = new LinkedHashSet<>();
        for (int l = 0; l < L; l++) { cache.add(new HookPoint(l, HookPoint.Kind.ATTN_OUT)); cache.add(new HookPoint(l, HookPoint.Kind.MLP_OUT)); }
        cache.add(new HookPoint(L - 1, HookPoint.Kind.RESID_POST));
        int[][] prompts = new int[cells.size()][];
        java.util.Arrays.fill(prompts, ev.allPrompts());

        // per prompt: the LayerNorm-scaled direction g * (W_U[a] - W_U[b]) and the bias term b . (W_U[a] - W_U[b])
        double[][] gd = new double[n][C];
        double[] bias = new double[n];
        for (int p = 0; p < n; p++)
            for (int k = 0; k < C; k++) {
                double d = (double) w.lmHead[dirA[p] * C + k] - w.lmHead[dirB[p] * C + k];
                gd[p][k] = w.lnfW[k] * d;
                bias[p] += w.lnfB[k] * d;
            }
        double[][][] contrib = new double[cells.size()][n][nComp];
        long before = ev.forwardPasses();
        double eps = c.layerNormEpsilon();
        double[][][] values = ev.evaluate(cells, prompts, metrics, cache, (ci, pi, res, s) -> {
            int p = prompts[ci][pi], t = data.scorePositions[p][0];
            double[][] comp = new double[nComp][];
            int tok = data.sequences[p][t];
            comp[0] = new double[C];
            for (int k = 0; k < C; k++) comp[0][k] = (double) w.wte[tok * C + k] + w.wpe[t * C + k];
            for (int l = 0; l < L; l++) {
                comp[1 + 2 * l] = row(res, new HookPoint(l, HookPoint.Kind.ATTN_OUT), s, t, C);
                comp[2 + 2 * l] = row(res, new HookPoint(l, HookPoint.Kind.MLP_OUT), s, t, C);
            }
            double[] x = row(res, new HookPoint(L - 1, HookPoint.Kind.RESID_POST), s, t, C);
            // what no block wrote: the steering vector where it was added to the residual stream directly
            double[] rest = x.clone();
            for (int i = 0; i < nComp - 1; i++) for (int k = 0; k < C; k++) rest[k] -= comp[i][k];
            comp[nComp - 1] = rest;
            double mean = 0, var = 0;
            for (double v : x) mean += v;
            mean /= C;
            for (double v : x) var += (v - mean) * (v - mean);
            double sigma = Math.sqrt(var / C + eps);
            for (int i = 0; i < nComp; i++) {
                double m = 0, dot = 0;
                for (double v : comp[i]) m += v;
                m /= C;
                for (int k = 0; k < C; k++) dot += (comp[i][k] - m) * gd[p][k];
                contrib[ci][pi][i] = dot / sigma;
            }
        });
        return new Result(metrics, values, contrib, bias, (int) (ev.forwardPasses() - before));
    }

    private static double[] row(ForwardResult r, HookPoint hp, int s, int t, int C) {
        float[] a = r.cache().get(hp)[s];
        double[] o = new double[C];
        for (int k = 0; k < C; k++) o[k] = a[t * C + k];
        return o;
    }

    /**
     * Groups curves by shape: each curve minus its mean, scaled to unit length (a flat curve stays all zeros), then
     * k-means++ (commons-math3) with a fixed seed. Returns the cluster of each curve, numbered by first appearance.
     */
    public static int[] clusterByShape(double[][] curves, int k, long seed) {
        int n = curves.length;
        if (n == 0) return new int[0];
        k = Math.max(1, Math.min(k, n));
        List<org.apache.commons.math3.ml.clustering.DoublePoint> pts = new ArrayList<>();
        for (double[] cv : curves) {
            double m = 0, norm = 0;
            for (double v : cv) m += v;
            m /= cv.length;
            double[] z = new double[cv.length];
            for (int i = 0; i < cv.length; i++) { z[i] = cv[i] - m; norm += z[i] * z[i]; }
            norm = Math.sqrt(norm);
            if (norm > 1e-12) for (int i = 0; i < z.length; i++) z[i] /= norm;
            else java.util.Arrays.fill(z, 0);
            pts.add(new org.apache.commons.math3.ml.clustering.DoublePoint(z));
        }
        var km = new org.apache.commons.math3.ml.clustering.KMeansPlusPlusClusterer<org.apache.commons.math3.ml.clustering.DoublePoint>(
                k, 200, new org.apache.commons.math3.ml.distance.EuclideanDistance(), new org.apache.commons.math3.random.JDKRandomGenerator((int) seed),
                org.apache.commons.math3.ml.clustering.KMeansPlusPlusClusterer.EmptyClusterStrategy.LARGEST_POINTS_NUMBER);
        var clusters = km.cluster(pts);
        int[] raw = new int[n];
        java.util.Arrays.fill(raw, -1);
        for (int ci = 0; ci < clusters.size(); ci++)
            for (var p : clusters.get(ci).getPoints())
                for (int i = 0; i < n; i++) if (raw[i] < 0 && pts.get(i) == p) { raw[i] = ci; break; }
        // renumber by first appearance so the labels do not depend on the clusterer's internal order
        int[] map = new int[clusters.size()];
        java.util.Arrays.fill(map, -1);
        int next = 0;
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            if (map[raw[i]] < 0) map[raw[i]] = next++;
            out[i] = map[raw[i]];
        }
        return out;
    }
}
