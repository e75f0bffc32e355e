package dev.nshap.eval;

import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.model.GPT2Config;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * Scores a dataset under many conditions with as few forward passes as possible: conditions x prompts are
 * packed into batches of at most {@code maxTokens} tokens, and the layers before the first intervened layer
 * are run once per prompt and reused from then on.
 */
public final class Evaluator {
    private final Backend backend;
    private final TokenizedDataset data;
    private final GPT2Config cfg;
    private final int maxTokens;
    private final Map<Integer, float[][]> prefix = new HashMap<>();
    /** KL's clean side per prompt: probabilities [positions x V], and sum p log p per position. */
    private float[][] cleanProbs;
    private double[][] cleanNegEntropy;
    private final Map<Metric, double[]> cleanValues = new java.util.EnumMap<>(Metric.class);
    private long forwardPasses, sequencesRun;

    public Evaluator(Backend backend, TokenizedDataset data, int maxTokens) {
        this.backend = backend;
        this.data = data;
        this.cfg = backend.config();
        this.maxTokens = Math.max(1, maxTokens);
    }

    public TokenizedDataset data() { return data; }
    public Backend backend() { return backend; }
    public long forwardPasses() { return forwardPasses; }
    public long sequencesRun() { return sequencesRun; }
    public int maxTokens() { return maxTokens; }

    public int[] allPrompts() { return IntStream.range(0, data.size()).toArray(); }

    /** Per condition, per prompt of {@code prompts}: the metric. */
    public double[][] evaluate(List<Condition> conditions, int[] prompts, Metric metric) {
        int[][] per = new int[conditions.size()][];
        java.util.Arrays.fill(per, prompts);
        return evaluate(conditions, per, metric);
    }

    /**
     * Per condition c, per prompt of {@code prompts[c]}: the metric. Each condition may score its own prompts
     * (a game that subsamples prompts per permutation); all (condition, prompt) pairs still share the batches.
     */
    public double[][] evaluate(List<Condition> conditions, int[][] prompts, Metric metric) {
        return evaluate(conditions, prompts, List.of(metric))[0];
    }

    /**
     * Several metrics from the same forward passes: [metric][condition][prompt]. One result carries the top-1,
     * the answer log-probs and (when a metric needs them) the logits, so a second metric costs no second pass.
     */
    public double[][][] evaluate(List<Condition> conditions, int[][] prompts, List<Metric> metrics) {
        return evaluate(conditions, prompts, metrics, java.util.Set.of(), null);
    }

    /** Sees each (condition, prompt slot)'s forward result: its cached hooks, logits, summaries. */
    public interface Tap { void accept(int condition, int promptSlot, ForwardResult result, int sequence); }

    /**
     * As {@link #evaluate(List, int[][], List)}, also caching {@code cache} in the same passes and handing every
     * result to {@code tap} (an analysis that needs activations and metrics pays for one set of passes). Layers
     * before a cached hook are then run again rather than reused.
     */
    public double[][][] evaluate(List<Condition> conditions, int[][] prompts, List<Metric> metrics, java.util.Set<HookPoint> cache,
                                 Tap tap) {
        if (prompts.length != conditions.size())
            throw new IllegalArgumentException(prompts.length + " prompt lists for " + conditions.size() + " conditions");
        for (int[] ps : prompts) {
            if (ps.length == 0) throw new NshapException("evaluate: no prompts selected");
            if (metrics.contains(Metric.LOGIT_DIFF))
                for (int p : ps)
                    if (data.foils[p] < 0 || data.foils[p] >= cfg.vocabSize())
                        throw new NshapException(data.dataset.file() + ": prompt '" + data.dataset.prompts().get(p).id()
                                + (data.foils[p] < 0 ? "' has no foil, which the logit-diff metric needs"
                                : "' has foil token " + data.foils[p] + ", outside the model's vocabulary of " + cfg.vocabSize()));
        }
        if (metrics.contains(Metric.KL)) cleanDistributions();
        double[][][] out = new double[metrics.size()][conditions.size()][];
        int first = cfg.nLayer();
        for (Condition c : conditions) first = Math.min(first, c.firstLayer());
        for (HookPoint hp : cache) first = Math.min(first, hp.layer());
        // A backend that shares prefixes itself gets whole prompts (one mechanism per backend, not two).
        int start = backend.sharesPrefixes() ? 0 : first;
        float[][] pre = start > 0 ? prefix(start) : null;
        int maxTokens = backend.tokenBudget(this.maxTokens);

        List<int[]> batch = new ArrayList<>(); // (condition, prompt slot)
        int tokens = 0;
        for (int ci = 0; ci < conditions.size(); ci++) {
            for (double[][] o : out) o[ci] = new double[prompts[ci].length];
            for (int pi = 0; pi < prompts[ci].length; pi++) {
                int len = data.sequences[prompts[ci][pi]].length;
                if (!batch.isEmpty() && tokens + len > maxTokens) {
                    run(batch, conditions, prompts, metrics, start, first, pre, out, cache, tap);
                    batch.clear();
                    tokens = 0;
                }
                batch.add(new int[]{ci, pi});
                tokens += len;
            }
        }
        if (!batch.isEmpty()) run(batch, conditions, prompts, metrics, start, first, pre, out, cache, tap);
        return out;
    }

    /** The clean model's per-prompt value of each metric over all prompts, computed once per metric and kept. */
    public synchronized List<double[]> clean(List<Metric> metrics) {
        List<Metric> missing = metrics.stream().filter(m -> !cleanValues.containsKey(m)).distinct().toList();
        if (!missing.isEmpty()) {
            int[] all = allPrompts();
            double[][][] v = evaluate(List.of(Condition.clean(cfg.nLayer())), new int[][]{all}, missing);
            for (int i = 0; i < missing.size(); i++) cleanValues.put(missing.get(i), v[i][0]);
        }
        return metrics.stream().map(cleanValues::get).toList();
    }

    /** Mean over prompts for each condition. */
    public double[] evaluateMean(List<Condition> conditions, int[] prompts, Metric metric) {
        double[][] v = evaluate(conditions, prompts, metric);
        double[] m = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            double s = 0;
            for (double x : v[i]) s += x;
            m[i] = s / v[i].length;
        }
        return m;
    }

    private void run(List<int[]> items, List<Condition> conds, int[][] prompts, List<Metric> metrics, int start, int first,
                     float[][] pre, double[][][] out, java.util.Set<HookPoint> cache, Tap tap) {
        ForwardRequest req = new ForwardRequest();
        req.cache.addAll(cache);
        req.wantLogits = metrics.stream().anyMatch(m -> m.needsLogits);
        req.startLayer = start;
        if (start > 0) req.startResidual = new ArrayList<>();
        Map<Integer, List<Integer>> seqsOf = new LinkedHashMap<>();
        for (int i = 0; i < items.size(); i++) {
            int p = prompts[items.get(i)[0]][items.get(i)[1]];
            req.add(data.sequences[p], data.scorePositions[p], data.answers[p]);
            if (start > 0) req.startResidual.add(pre[p]);
            seqsOf.computeIfAbsent(items.get(i)[0], k -> new ArrayList<>()).add(i);
        }
        for (Map.Entry<Integer, List<Integer>> e : seqsOf.entrySet()) {
            int[] seqs = e.getValue().stream().mapToInt(Integer::intValue).toArray();
            int[] ps = new int[seqs.length];
            for (int k = 0; k < seqs.length; k++) ps[k] = prompts[e.getKey()][items.get(seqs[k])[1]];
            for (Intervention iv : conds.get(e.getKey()).interventions(seqs, ps)) {
                if (iv.hook().layer() < first)
                    throw new IllegalStateException("condition intervenes at " + iv.hook() + " before its declared first layer");
                req.interventions.add(iv);
            }
        }
        ForwardResult res = backend.forward(req);
        forwardPasses++;
        sequencesRun += items.size();
        for (int s = 0; s < items.size(); s++) {
            int ci = items.get(s)[0], pi = items.get(s)[1], p = prompts[ci][pi];
            for (int mi = 0; mi < metrics.size(); mi++) out[mi][ci][pi] = score(metrics.get(mi), res, s, p);
            if (tap != null) tap.accept(ci, pi, res, s);
        }
    }

    private double score(Metric metric, ForwardResult res, int s, int p) {
        int[] ans = data.answers[p];
        int V = cfg.vocabSize();
        return switch (metric) {
            case ACCURACY -> {
                boolean ok = true;
                for (int k = 0; k < ans.length; k++) ok &= res.top1()[s][k] == ans[k];
                yield ok ? 1.0 : 0.0;
            }
            case LOSS -> {
                double nll = 0;
                for (int k = 0; k < ans.length; k++) nll -= res.targetLogProb()[s][k];
                yield nll / ans.length;
            }
            case LOGIT_DIFF -> res.logits()[s][ans[0]] - res.logits()[s][data.foils[p]];
            case KL -> { // sum p (log p - log q) = sum p log p - sum p lg + lse * sum p
                float[] lg = res.logits()[s];
                float[] pc = cleanProbs[p];
                double kl = 0;
                for (int k = 0; k < ans.length; k++) {
                    double dot = 0, mass = 0;
                    for (int v = 0; v < V; v++) {
                        dot += (double) pc[k * V + v] * lg[k * V + v];
                        mass += pc[k * V + v];
                    }
                    kl += cleanNegEntropy[p][k] - dot + logSumExp(lg, k * V, V) * mass;
                }
                yield kl / ans.length;
            }
        };
    }

    /** The residual stream entering {@code layer} in the clean run, per prompt ([T x C]). */
    public synchronized float[][] prefix(int layer) {
        float[][] cached = prefix.get(layer);
        if (cached != null) return cached;
        HookPoint hp = layer < cfg.nLayer() ? new HookPoint(layer, HookPoint.Kind.RESID_PRE)
                : new HookPoint(cfg.nLayer() - 1, HookPoint.Kind.RESID_POST);
        float[][] res = collect(hp);
        prefix.put(layer, res);
        return res;
    }

    /** Mean activation at a hook over every position of every prompt in the clean run (for mean ablation). */
    public float[] meanActivation(HookPoint hp) {
        return meanActivations(List.of(hp)).get(0);
    }

    /** Means at several hooks from one clean pass, summed as it goes (no activations kept). */
    public List<float[]> meanActivations(List<HookPoint> hooks) {
        double[][] sum = new double[hooks.size()][];
        for (int i = 0; i < hooks.size(); i++) sum[i] = new double[hooks.get(i).width(cfg)];
        cleanBatches(false, new java.util.LinkedHashSet<>(hooks), (p, r, s) -> {
            for (int i = 0; i < hooks.size(); i++) {
                float[] a = r.cache().get(hooks.get(i))[s];
                double[] acc = sum[i];
                int width = acc.length;
                for (int row = 0; row < a.length / width; row++)
                    for (int u = 0; u < width; u++) acc[u] += a[row * width + u];
            }
        });
        long rows = data.tokenCount();
        List<float[]> out = new ArrayList<>();
        for (double[] acc : sum) {
            float[] mean = new float[acc.length];
            for (int u = 0; u < acc.length; u++) mean[u] = (float) (acc[u] / rows);
            out.add(mean);
        }
        return out;
    }

    /** Clean-run activations at a hook, per prompt. */
    public float[][] collect(HookPoint hp) {
        float[][] out = new float[data.size()][];
        cleanBatches(false, java.util.Set.of(hp), (p, r, s) -> out[p] = r.cache().get(hp)[s]);
        return out;
    }

    private synchronized void cleanDistributions() {
        if (cleanProbs != null) return;
        int V = cfg.vocabSize();
        float[][] probs = new float[data.size()][];
        double[][] negEnt = new double[data.size()][];
        cleanBatches(true, java.util.Set.of(), (p, r, s) -> {
            float[] lg = r.logits()[s];
            int n = lg.length / V;
            float[] o = new float[lg.length];
            double[] h = new double[n];
            for (int k = 0; k < n; k++) {
                double lse = logSumExp(lg, k * V, V);
                for (int v = 0; v < V; v++) {
                    double lp = lg[k * V + v] - lse, pv = Math.exp(lp);
                    o[k * V + v] = (float) pv;
                    h[k] += pv * lp;
                }
            }
            probs[p] = o;
            negEnt[p] = h;
        });
        cleanNegEntropy = negEnt;
        cleanProbs = probs;
    }

    private interface PerPrompt { void accept(int prompt, ForwardResult result, int sequence); }

    /** Runs the clean model over every prompt in batches of at most maxTokens, handing each prompt its result. */
    private void cleanBatches(boolean scored, java.util.Set<HookPoint> cache, PerPrompt each) {
        int from = 0;
        while (from < data.size()) {
            ForwardRequest req = new ForwardRequest();
            req.cache.addAll(cache);
            int tokens = 0, to = from;
            while (to < data.size() && (to == from || tokens + data.sequences[to].length <= maxTokens)) {
                req.add(data.sequences[to], scored ? data.scorePositions[to] : null, null);
                tokens += data.sequences[to].length;
                to++;
            }
            ForwardResult r = backend.forward(req);
            forwardPasses++;
            for (int i = from; i < to; i++) each.accept(i, r, i - from);
            from = to;
        }
    }

    static double logSumExp(float[] a, int off, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, a[off + i]);
        double s = 0;
        for (int i = 0; i < n; i++) s += Math.exp(a[off + i] - max);
        return max + Math.log(s);
    }
}
