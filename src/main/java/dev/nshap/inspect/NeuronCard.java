package dev.nshap.inspect;

import dev.nshap.backend.HookPoint;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.model.GPT2Weights;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;

/**
 * What one neuron (or a cluster's sum) does: the tokens its output direction (its mlp.c_proj row, summed over a
 * cluster) pushes up and down through the unembedding, and where in a dataset it fires.
 */
public final class NeuronCard {
    private NeuronCard() {}

    public record TokenScore(int token, String text, double score) {}

    /** One prompt's strongest firing: the activation, the position and the token there. */
    public record Firing(int prompt, double activation, int position, int token) {}

    public record DatasetStats(String dataset, double meanActivation, double meanAtAnswer, List<Firing> top) {}

    /** The residual-stream direction written per unit of activation: sum of the members' c_proj rows. */
    public static float[] direction(GPT2Weights w, Map<Integer, int[]> neurons) {
        int c = w.config.nEmbd();
        float[] d = new float[c];
        neurons.forEach((l, idx) -> {
            float[] proj = w.blocks[l].projW;
            for (int n : idx) for (int k = 0; k < c; k++) d[k] += proj[n * c + k];
        });
        return d;
    }

    /**
     * Per vocabulary token, the direct effect of the direction on the logits: lm_head . d, or with the final
     * LayerNorm's scale, lm_head . (ln_f.weight * d) (its centring and the norm itself depend on the whole residual).
     */
    public static double[] logitEffect(GPT2Weights w, float[] d, boolean lnScale) {
        int c = w.config.nEmbd(), v = w.config.vocabSize();
        double[] dir = new double[c];
        for (int k = 0; k < c; k++) dir[k] = lnScale ? (double) d[k] * w.lnfW[k] : d[k];
        double[] out = new double[v];
        for (int t = 0; t < v; t++) {
            double s = 0;
            int off = t * c;
            for (int k = 0; k < c; k++) s += w.lmHead[off + k] * dir[k];
            out[t] = s;
        }
        return out;
    }

    /** The k tokens with the largest ({@code highest}) or smallest scores, best first; ties by token id. */
    public static List<TokenScore> top(double[] scores, int k, boolean highest, IntFunction<String> decode) {
        Integer[] idx = new Integer[scores.length];
        for (int i = 0; i < idx.length; i++) idx[i] = i;
        Comparator<Integer> cmp = Comparator.comparingDouble(i -> scores[i]);
        if (highest) cmp = cmp.reversed();
        Arrays.sort(idx, cmp.thenComparingInt(i -> i));
        List<TokenScore> out = new ArrayList<>();
        for (int i = 0; i < Math.min(k, idx.length); i++) out.add(new TokenScore(idx[i], decode.apply(idx[i]), scores[idx[i]]));
        return out;
    }

    /**
     * Activation of the neurons (summed over a cluster) at every position of every prompt in the clean run:
     * the mean over all positions, the mean at the position that predicts the answer's first token, and the
     * k prompts where it fires most.
     */
    public static DatasetStats activations(Evaluator ev, Map<Integer, int[]> neurons, int k) {
        TokenizedDataset d = ev.data();
        int width = ev.backend().config().nInner();
        double[][] act = new double[d.size()][];
        for (int p = 0; p < d.size(); p++) act[p] = new double[d.sequences[p].length];
        for (Map.Entry<Integer, int[]> e : neurons.entrySet()) {
            float[][] h = ev.collect(new HookPoint(e.getKey(), HookPoint.Kind.MLP_POST));
            for (int p = 0; p < d.size(); p++)
                for (int t = 0; t < act[p].length; t++)
                    for (int n : e.getValue()) act[p][t] += h[p][t * width + n];
        }
        double sum = 0, atAns = 0;
        long count = 0;
        List<Firing> fires = new ArrayList<>();
        for (int p = 0; p < d.size(); p++) {
            int best = 0;
            for (int t = 0; t < act[p].length; t++) {
                sum += act[p][t];
                count++;
                if (act[p][t] > act[p][best]) best = t;
            }
            atAns += act[p][d.scorePositions[p][0]];
            fires.add(new Firing(p, act[p][best], best, d.sequences[p][best]));
        }
        fires.sort(Comparator.comparingDouble(Firing::activation).reversed().thenComparingInt(Firing::prompt));
        return new DatasetStats(d.dataset.name(), sum / count, atAns / d.size(), List.copyOf(fires.subList(0, Math.min(k, fires.size()))));
    }

    /**
     * Ablated text: for each sequence, the activation of the neurons (summed) at position {@code at[i]}, and its change
     * when each earlier token is removed in turn (the sequence one shorter, the same token then at {@code at[i] - 1}).
     * All variants of all sequences run as one batch (split only at {@code maxTokens}).
     *
     * @return per sequence: [0] the clean activation at its position, then [1 + j] the change when token j is removed
     */
    public static double[][] ablateTokens(dev.nshap.backend.Backend b, Map<Integer, int[]> neurons, List<int[]> seqs, int[] at, int maxTokens) {
        List<int[]> variants = new ArrayList<>();
        List<int[]> where = new ArrayList<>(); // (sequence, removed token or -1)
        for (int i = 0; i < seqs.size(); i++) {
            int[] s = seqs.get(i);
            variants.add(s);
            where.add(new int[]{i, -1});
            for (int j = 0; j < at[i]; j++) {
                int[] v = new int[s.length - 1];
                System.arraycopy(s, 0, v, 0, j);
                System.arraycopy(s, j + 1, v, j, s.length - 1 - j);
                variants.add(v);
                where.add(new int[]{i, j});
            }
        }
        double[] act = new double[variants.size()];
        int width = b.config().nInner();
        for (int from = 0; from < variants.size(); ) {
            dev.nshap.backend.ForwardRequest q = new dev.nshap.backend.ForwardRequest();
            q.wantLogits = false;
            for (int l : neurons.keySet()) q.cache.add(HookPoint.mlpPost(l));
            int to = from, tokens = 0;
            while (to < variants.size() && (to == from || tokens + variants.get(to).length <= maxTokens)) {
                q.add(variants.get(to), null, null);
                tokens += variants.get(to++).length;
            }
            dev.nshap.backend.ForwardResult r = b.forward(q);
            for (int k = from; k < to; k++) {
                int[] wh = where.get(k);
                int t = wh[1] < 0 ? at[wh[0]] : at[wh[0]] - 1;
                double sum = 0;
                for (Map.Entry<Integer, int[]> e : neurons.entrySet()) {
                    float[] h = r.cache().get(HookPoint.mlpPost(e.getKey()))[k - from];
                    for (int n : e.getValue()) sum += h[t * width + n];
                }
                act[k] = sum;
            }
            from = to;
        }
        double[][] out = new double[seqs.size()][];
        int k = 0;
        for (int i = 0; i < seqs.size(); i++) {
            out[i] = new double[1 + at[i]];
            out[i][0] = act[k++];
            for (int j = 0; j < at[i]; j++) out[i][1 + j] = act[k++] - out[i][0];
        }
        return out;
    }
}
