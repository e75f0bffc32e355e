package dev.nshap.backend.cpu;

import dev.nshap.NshapException;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.RefGpt2;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * backward(): d objective / d activation at every hook kind, with interventions of every op in the request,
 * against central differences of the float64 RefGpt2 with the activation bumped after its hook's interventions.
 */
class CpuGradientsHooksTest {
    private final GPT2Config c = CpuGradientsTest.tiny("gelu_new");
    private final GPT2Weights w = CpuGradientsTest.randomWeights(c, true, 21);
    private final Random r = new Random(4);
    private final List<int[]> seqs = CpuGradientsTest.sequences(r, c.vocabSize(), 7, 5, 6);
    private final int[][] pos = {{3, 6}, {4}, {0, 2, 5}};
    private final int[][] targets = new int[3][], foils = new int[3][];

    private final float[] vec = new float[c.nEmbd()];

    {
        for (int i = 0; i < vec.length; i++) vec[i] = (float) r.nextGaussian();
    }

    private ForwardRequest request() {
        ForwardRequest req = new ForwardRequest();
        for (int s = 0; s < 3; s++) {
            if (targets[s] == null) {
                targets[s] = new int[pos[s].length];
                foils[s] = new int[pos[s].length];
                for (int i = 0; i < pos[s].length; i++) { targets[s][i] = r.nextInt(c.vocabSize()); foils[s][i] = r.nextInt(c.vocabSize()); }
            }
            req.add(seqs.get(s), pos[s], targets[s]);
        }
        req.interventions.add(Intervention.scale(new HookPoint(0, HookPoint.Kind.RESID_PRE), null, new int[]{2}, 1.3f));
        req.interventions.add(Intervention.noise(new HookPoint(0, HookPoint.Kind.MLP_PRE), null, new int[]{1}, 0.3f, 7));
        req.interventions.add(Intervention.zero(HookPoint.mlpPost(0), new int[]{1, 5, 9, 40}, new int[]{0, 2}));
        req.interventions.add(Intervention.replace(new HookPoint(1, HookPoint.Kind.ATTN_OUT), new int[]{0, 4}, new int[]{0}, vec));
        req.interventions.add(Intervention.scale(new HookPoint(1, HookPoint.Kind.RESID_MID), new int[]{2, 3}, null, 0.5f));
        req.interventions.add(Intervention.negativeNoise(new HookPoint(1, HookPoint.Kind.MLP_OUT), new int[]{0, 1, 2}, null, 0.2f, 3));
        req.interventions.add(Intervention.zero(HookPoint.mlpPost(1), new int[]{7}, null));
        return req;
    }

    private static Set<HookPoint> everyHook(GPT2Config c) {
        Set<HookPoint> h = new LinkedHashSet<>();
        for (int l = 0; l < c.nLayer(); l++) for (HookPoint.Kind k : HookPoint.Kind.values()) h.add(new HookPoint(l, k));
        return h;
    }

    /** One sequence's contribution to the sum of each objective (NLL, log-prob, logit-diff) from float64 log-probs. */
    private double[] terms(double[][] lp, int s) {
        double nll = 0, logp = 0, diff = 0;
        for (int i = 0; i < pos[s].length; i++) {
            double[] row = lp[pos[s][i]];
            nll -= row[targets[s][i]];
            logp += row[targets[s][i]];
            diff += row[targets[s][i]] - row[foils[s][i]]; // the log-sum-exp cancels: a logit difference
        }
        return new double[]{nll, logp, diff};
    }

    @Test void activationGradientsMatchFloat64FiniteDifferencesAtEveryHookWithInterventions() {
        ForwardRequest req = request();
        List<Intervention> ivs = req.interventions;
        Set<HookPoint> hooks = everyHook(c);
        CpuGradients grad = new CpuGradients(w);
        List<int[]> foilList = List.of(foils);
        Objective[] objs = {Objective.answerNll(), Objective.answerLogProb(), Objective.logitDiff(foilList)};
        GradientResult[] res = new GradientResult[3];
        for (int o = 0; o < 3; o++) res[o] = grad.backward(req, objs[o], hooks, null);

        RefGpt2 ref = new RefGpt2(w);
        int scored = 6;
        double[] base = new double[3];
        for (int s = 0; s < 3; s++) {
            double[] t = terms(ref.logSoftmax(seqs.get(s), ivs, s), s);
            for (int o = 0; o < 3; o++) base[o] += t[o] / scored;
        }
        for (int o = 0; o < 3; o++) assertEquals(base[o], res[o].value(), 1e-5 * (1 + Math.abs(base[o])), objs[o].kind() + " value");

        for (HookPoint hp : hooks) {
            int width = hp.width(c);
            double worst = 0, scale = 0;
            for (int k = 0; k < 6; k++) {
                int s = k % 3, t = r.nextInt(seqs.get(s).length), u = r.nextInt(width);
                if (k == 0 && hp.equals(HookPoint.mlpPost(0))) u = 5;                       // a zeroed unit: gradient of what reads it
                if (k == 0 && hp.equals(new HookPoint(0, HookPoint.Kind.MLP_PRE))) u = 9;  // upstream of a zeroed unit: 0
                double h = 1e-4;
                double[] up = terms(ref.logSoftmaxBumped(seqs.get(s), ivs, s, hp, t, u, h), s);
                double[] dn = terms(ref.logSoftmaxBumped(seqs.get(s), ivs, s, hp, t, u, -h), s);
                for (int o = 0; o < 3; o++) {
                    double want = (up[o] - dn[o]) / (2 * h) / scored;
                    float got = res[o].grads().get(hp)[s][t * width + u];
                    worst = Math.max(worst, Math.abs(want - got));
                    scale = Math.max(scale, Math.abs(want));
                }
            }
            assertTrue(scale > 1e-4, hp + ": sampled gradients are ~0, the check would be empty");
            assertTrue(worst <= 1e-4 * scale + 1e-7, hp + ": worst |analytic - FD| " + worst + " against max |FD| " + scale);
        }
        // Upstream of a unit zeroed in sequences 0 and 2, the gradient is exactly 0 there and not in sequence 1.
        HookPoint pre0 = new HookPoint(0, HookPoint.Kind.MLP_PRE);
        for (int t = 0; t < 7; t++) assertTrue(res[0].grads().get(pre0)[0][t * c.nInner() + 5] == 0f);
        assertTrue(res[0].grads().get(pre0)[1][3 * c.nInner() + 5] != 0f);
    }

    @Test void activationsAndValueAreTheForwardBackendsBitForBit() {
        ForwardRequest req = request();
        Set<HookPoint> hooks = everyHook(c);
        req.cache.addAll(hooks);
        ForwardResult f = new CpuBackend(w).forward(req);
        GradientResult g = new CpuGradients(w).backward(req, Objective.answerLogProb(), hooks, null);
        for (HookPoint hp : hooks)
            for (int s = 0; s < 3; s++) assertArrayEquals(f.cache().get(hp)[s], g.activations().get(hp)[s], hp + " sequence " + s);
        double sum = 0;
        for (float[] lp : f.targetLogProb()) for (float v : lp) sum += v;
        assertEquals(sum / 6, g.value(), 2e-6 * Math.abs(g.value()));
    }

    @Test void weightGradientsUnderInterventionsMatchFiniteDifferences() {
        ForwardRequest req = request();
        GPT2Weights g = new GPT2Weights(c, true);
        new CpuGradients(w).backward(req, Objective.answerNll(), Set.of(), g);
        RefGpt2 ref = new RefGpt2(w);
        float[][] ws = {w.blocks[0].fcW, w.blocks[1].projW, w.blocks[0].attnW, w.wte}, gs = {g.blocks[0].fcW, g.blocks[1].projW, g.blocks[0].attnW, g.wte};
        for (int ti = 0; ti < ws.length; ti++) {
            double worst = 0, scale = 0;
            for (int k = 0; k < 5; k++) {
                int i = ti == 3 ? seqs.get(k % 3)[k] * c.nEmbd() + k : r.nextInt(ws[ti].length);
                float keep = ws[ti][i];
                ws[ti][i] = keep + 1e-3f;
                double up = 0, dn = 0, hUp = (double) ws[ti][i] - keep;
                for (int s = 0; s < 3; s++) up += terms(ref.logSoftmax(seqs.get(s), req.interventions, s), s)[0];
                ws[ti][i] = keep - 1e-3f;
                double hDn = keep - (double) ws[ti][i];
                for (int s = 0; s < 3; s++) dn += terms(ref.logSoftmax(seqs.get(s), req.interventions, s), s)[0];
                ws[ti][i] = keep;
                double want = (up - dn) / (hUp + hDn) / 6;
                worst = Math.max(worst, Math.abs(want - gs[ti][i]));
                scale = Math.max(scale, Math.abs(want));
            }
            assertTrue(scale > 1e-4 && worst <= 1e-4 * scale + 1e-7, "tensor " + ti + ": worst " + worst + " of " + scale);
        }
    }

    @Test void startLayerGivesTheSameGradientsAsTheFullPass() {
        ForwardRequest full = request();
        full.interventions.removeIf(iv -> iv.hook().layer() == 0);
        HookPoint pre1 = new HookPoint(1, HookPoint.Kind.RESID_PRE), post1 = HookPoint.mlpPost(1);
        CpuGradients grad = new CpuGradients(w);
        GradientResult a = grad.backward(full, Objective.answerNll(), Set.of(pre1, post1), null);
        ForwardRequest part = request();
        part.interventions.removeIf(iv -> iv.hook().layer() == 0);
        part.startLayer = 1;
        part.startResidual = new ArrayList<>(List.of(a.activations().get(pre1)));
        GradientResult b = grad.backward(part, Objective.answerNll(), Set.of(pre1, post1), null);
        assertEquals(a.value(), b.value(), 0.0);
        for (int s = 0; s < 3; s++) {
            assertArrayEquals(a.grads().get(pre1)[s], b.grads().get(pre1)[s]);
            assertArrayEquals(a.grads().get(post1)[s], b.grads().get(post1)[s]);
        }
        int n = 7 + 5 + 6, scoredRows = 6;
        long C = c.nEmbd(), H = c.nInner();
        // Kept per layer: two residuals (C each), qkv (3C), attention output (C), MLP pre and post (H each),
        // two LayerNorms' mean and 1/std (4); then the last residual (C) and, per scored row, the final LayerNorm's output and statistics.
        assertEquals(4 * (1 * n * (6 * C + 2 * H + 4) + n * C + scoredRows * (C + 2)), grad.lastActivationBytes());
        grad.backward(full, Objective.answerNll(), Set.of(), null);
        assertEquals(4 * (2 * n * (6 * C + 2 * H + 4) + n * C + scoredRows * (C + 2)), grad.lastActivationBytes());
    }

    @Test void badObjectivesAreRefusedWithOneLine() {
        CpuGradients grad = new CpuGradients(w);
        ForwardRequest noTargets = new ForwardRequest().add(seqs.get(0), new int[]{2}, null);
        NshapException e = assertThrows(NshapException.class, () -> grad.backward(noTargets, Objective.answerNll(), Set.of(), null));
        assertTrue(e.getMessage().contains("target"), e.getMessage());
        ForwardRequest req = request();
        e = assertThrows(NshapException.class, () -> grad.backward(req, Objective.logitDiff(List.of(new int[]{1, 2})), Set.of(), null));
        assertTrue(e.getMessage().contains("foil"), e.getMessage());
        e = assertThrows(NshapException.class, () -> grad.lmLoss(List.of(new int[]{3}), new GPT2Weights(c, true)));
        assertTrue(e.getMessage().contains("2 tokens"), e.getMessage());
    }
}
