package dev.nshap.backend.cpu;

import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.RefGpt2;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** lmLoss on a tiny model: its weight gradient against central differences of the float64 RefGpt2, its value, its batching. */
class CpuGradientsTest {

    static GPT2Config tiny(String act) { return new GPT2Config(2, 2, 16, 160, 50, 1e-5, act); }

    /** Weights large enough that every path (attention pattern, gelu curvature, LayerNorm) matters to the loss. */
    static GPT2Weights randomWeights(GPT2Config c, boolean tied, long seed) {
        GPT2Weights w = new GPT2Weights(c, tied);
        Random r = new Random(seed);
        for (float[] t : tensors(w)) {
            boolean gain = false;
            for (GPT2Weights.Block b : w.blocks) gain |= t == b.ln1W || t == b.ln2W;
            gain |= t == w.lnfW;
            for (int i = 0; i < t.length; i++) t[i] = (float) ((gain ? 1 : 0) + (t.length <= 4 * c.nEmbd() ? 0.2 : 0.35) * r.nextGaussian());
        }
        return w;
    }

    /** Every parameter tensor once (the tied head is the embedding). */
    static List<float[]> tensors(GPT2Weights w) {
        List<float[]> t = new ArrayList<>(List.of(w.wte, w.wpe));
        for (GPT2Weights.Block b : w.blocks)
            t.addAll(List.of(b.ln1W, b.ln1B, b.attnW, b.attnB, b.attnProjW, b.attnProjB, b.ln2W, b.ln2B, b.fcW, b.fcB, b.projW, b.projB));
        t.addAll(List.of(w.lnfW, w.lnfB));
        if (!w.tied()) t.add(w.lmHead);
        return t;
    }

    static List<int[]> sequences(Random r, int vocab, int... lengths) {
        List<int[]> s = new ArrayList<>();
        for (int n : lengths) {
            int[] t = new int[n];
            for (int i = 0; i < n; i++) t[i] = r.nextInt(vocab);
            s.add(t);
        }
        return s;
    }

    /** The LM loss in float64: mean over every t < T-1 of -log p(seq[t+1]). */
    static double refLoss(GPT2Weights w, List<int[]> seqs) {
        RefGpt2 ref = new RefGpt2(w);
        double sum = 0;
        int n = 0;
        for (int[] s : seqs) {
            double[][] lp = ref.logSoftmax(s, null, 0);
            for (int t = 0; t + 1 < s.length; t++, n++) sum -= lp[t][s[t + 1]];
        }
        return sum / n;
    }

    @Test void lmLossGradientMatchesFloat64FiniteDifferences() {
        // Measured worst |analytic - FD| / max |FD| per tensor: 2.5e-6 (float32 rounding); a 1% error in one op gives ~2e-3.
        for (String act : new String[]{"gelu_new", "gelu"})
            for (boolean tied : act.equals("gelu") ? new boolean[]{true} : new boolean[]{true, false}) {
                GPT2Config c = tiny(act);
                GPT2Weights w = randomWeights(c, tied, 3), g = new GPT2Weights(c, tied);
                Random r = new Random(5);
                List<int[]> seqs = sequences(r, c.vocabSize(), 8, 5, 3);
                double loss = new CpuGradients(w).lmLoss(seqs, g);
                assertEquals(refLoss(w, seqs), loss, 1e-5, "loss");
                List<float[]> ws = tensors(w), gs = tensors(g);
                for (int ti = 0; ti < ws.size(); ti++) {
                    float[] wt = ws.get(ti), gt = gs.get(ti);
                    double worst = 0, scale = 0;
                    for (int k = 0; k < 6; k++) {
                        // The embedding: mostly rows of tokens that occur; any other row has only the head's gradient.
                        int i = r.nextInt(wt.length);
                        if (wt == w.wte && k < 5) i = seqs.get(0)[k] * c.nEmbd() + r.nextInt(c.nEmbd());
                        if (wt == w.wpe) i = r.nextInt(8 * c.nEmbd());
                        float keep = wt[i];
                        wt[i] = keep + 1e-3f;
                        double up = refLoss(w, seqs), hUp = (double) wt[i] - keep;
                        wt[i] = keep - 1e-3f;
                        double dn = refLoss(w, seqs), hDn = keep - (double) wt[i];
                        wt[i] = keep;
                        double want = (up - dn) / (hUp + hDn);
                        worst = Math.max(worst, Math.abs(want - gt[i]));
                        scale = Math.max(scale, Math.abs(want));
                    }
                    String what = act + (tied ? " tied" : " untied") + " tensor " + ti;
                    assertTrue(scale > 1e-4, what + ": sampled gradients are ~0, the check would be empty");
                    assertTrue(worst <= 5e-5 * scale + 1e-7, what + ": worst |analytic - FD| " + worst + " against max |FD| " + scale);
                }
            }
    }

    @Test void lossEqualsTheForwardBackendsLogProbs() {
        GPT2Config c = new GPT2Config(2, 2, 16, 160, 301, 1e-5, "gelu_new"); // 301: a vector tail over the vocabulary
        GPT2Weights w = randomWeights(c, true, 8);
        List<int[]> seqs = sequences(new Random(2), c.vocabSize(), 140, 150, 9); // 296 rows: two logit chunks
        ForwardRequest req = new ForwardRequest();
        for (int[] s : seqs) {
            int[] pos = new int[s.length - 1], tg = new int[s.length - 1];
            for (int t = 0; t + 1 < s.length; t++) { pos[t] = t; tg[t] = s[t + 1]; }
            req.add(s, pos, tg);
        }
        ForwardResult f = new CpuBackend(w).forward(req);
        double sum = 0;
        int n = 0;
        for (float[] lp : f.targetLogProb()) for (float v : lp) { sum -= v; n++; }
        double loss = new CpuGradients(w).lmLoss(seqs, new GPT2Weights(c, true));
        assertEquals(sum / n, loss, 2e-6 * Math.abs(loss));
    }

    /**
     * The gradient of a batch equals the token-weighted mean of the gradients of its parts (within float
     * rounding: sums are grouped differently), and a reused workspace gives the same bits as a fresh one.
     */
    @Test void gradientDoesNotDependOnTheBatchSplitOrOnReuse() {
        GPT2Config c = tiny("gelu_new");
        GPT2Weights w = randomWeights(c, true, 4);
        List<int[]> seqs = sequences(new Random(9), c.vocabSize(), 150, 150); // 298 rows: more than one chunk
        CpuGradients grad = new CpuGradients(w);
        GPT2Weights all = new GPT2Weights(c, true), parts = new GPT2Weights(c, true);
        double lAll = grad.lmLoss(seqs, all);
        double l0 = grad.lmLoss(seqs.subList(0, 1), parts), l1 = grad.lmLoss(seqs.subList(1, 2), parts);
        assertEquals(lAll, (l0 + l1) / 2, 1e-6 * lAll);
        List<float[]> a = tensors(all), p = tensors(parts);
        for (int ti = 0; ti < a.size(); ti++) {
            float max = 0;
            for (float v : a.get(ti)) max = Math.max(max, Math.abs(v));
            for (int i = 0; i < a.get(ti).length; i++)
                assertEquals(a.get(ti)[i], p.get(ti)[i] / 2, 1e-6 * max + 1e-9, "tensor " + ti + " at " + i);
        }
        // The workspace now holds the larger shape: the single-sequence result is still a fresh instance's, bit for bit.
        GPT2Weights again = new GPT2Weights(c, true), fresh = new GPT2Weights(c, true);
        grad.lmLoss(seqs.subList(1, 2), again);
        new CpuGradients(w).lmLoss(seqs.subList(1, 2), fresh);
        List<float[]> ag = tensors(again), fr = tensors(fresh);
        for (int ti = 0; ti < ag.size(); ti++) assertTrue(java.util.Arrays.equals(ag.get(ti), fr.get(ti)), "tensor " + ti);
    }
}
