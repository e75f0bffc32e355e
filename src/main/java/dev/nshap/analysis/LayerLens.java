package dev.nshap.analysis;

import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.eval.Condition;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.inspect.NeuronCard;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;

import java.util.ArrayList;
import java.util.List;

/**
 * The layer-difference lens. Residual stream "at layer i" is {@code blocks.i.hook_resid_pre}, and i = n_layer the
 * final {@code hook_resid_post}. For a pair (i, j): the mean over prompts of r_j - r_i at the first answer position,
 * read through the unembedding with ln_f's scale (as a neuron card reads a neuron's direction). For each layer: the
 * effect on KL and loss of skipping its attention output, its MLP output, or both (each zeroed), one packed evaluation.
 */
public final class LayerLens {
    private LayerLens() {}

    /** What a skip removes. */
    public enum Skip { ATTN, MLP, BOTH }

    /** The hook that holds the residual stream at position i of the stack (0..n_layer). */
    public static HookPoint residual(GPT2Config c, int i) {
        return i < c.nLayer() ? new HookPoint(i, HookPoint.Kind.RESID_PRE) : new HookPoint(c.nLayer() - 1, HookPoint.Kind.RESID_POST);
    }

    /** Mean over prompts of r_j - r_i at each prompt's first answer position, [C]. */
    public static float[] meanDifference(Evaluator ev, int i, int j) {
        GPT2Config c = ev.backend().config();
        TokenizedDataset d = ev.data();
        int C = c.nEmbd();
        float[][] a = ev.prefix(i), b = ev.prefix(j); // the evaluator keeps each residual it has run, so pairs share them
        double[] s = new double[C];
        for (int p = 0; p < d.size(); p++) {
            int t = d.scorePositions[p][0];
            for (int k = 0; k < C; k++) s[k] += (double) b[p][t * C + k] - a[p][t * C + k];
        }
        float[] out = new float[C];
        for (int k = 0; k < C; k++) out[k] = (float) (s[k] / d.size());
        return out;
    }

    /** Per vocabulary token, the difference's direct effect on the logits through ln_f's scale. */
    public static double[] lens(GPT2Weights w, float[] diff) { return NeuronCard.logitEffect(w, diff, true); }

    /** The condition that skips {@code skip} of layer l. */
    public static Condition skip(GPT2Config c, int l, Skip skip) {
        List<Intervention> ivs = new ArrayList<>();
        if (skip != Skip.MLP) ivs.add(Intervention.zero(new HookPoint(l, HookPoint.Kind.ATTN_OUT), null, null));
        if (skip != Skip.ATTN) ivs.add(Intervention.zero(new HookPoint(l, HookPoint.Kind.MLP_OUT), null, null));
        return Condition.of(ivs, c.nLayer());
    }

    /**
     * [metric][layer * 3 + skip][prompt] for metrics (KL, loss, ...): every layer x {attn, mlp, both} in one evaluation.
     */
    public static double[][][] skipEffects(Evaluator ev, List<Metric> metrics) {
        GPT2Config c = ev.backend().config();
        List<Condition> conds = new ArrayList<>();
        for (int l = 0; l < c.nLayer(); l++) for (Skip s : Skip.values()) conds.add(skip(c, l, s));
        int[][] per = new int[conds.size()][];
        java.util.Arrays.fill(per, ev.allPrompts());
        return ev.evaluate(conds, per, metrics);
    }
}
