package dev.nshap.train;

import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.ModelInit;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** AdamW against an independent float64 AdamW written here from the paper's update, given the same gradients. */
class AdamWTest {

    @Test
    void stepsMatchAFloat64AdamWByHand() {
        GPT2Config c = new GPT2Config(2, 2, 8, 6, 13, 1e-5, "gelu_new");
        GPT2Weights w = ModelInit.random(c, 7);
        double b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, clip = 1.0;
        AdamW opt = new AdamW(w, b1, b2, eps, wd, clip);
        List<AdamW.Param> ps = opt.params();
        int n = 0;
        for (AdamW.Param p : ps) n += p.p().length;
        double[] p = new double[n], m = new double[n], v = new double[n], mAbs = new double[n];
        boolean[] decay = new boolean[n];
        int o = 0;
        for (AdamW.Param q : ps) {
            // Decayed: the Conv1D matrices only (named independently of AdamW's own rule).
            boolean d = q.name().matches("transformer\\.h\\.\\d+\\.(attn\\.c_attn|attn\\.c_proj|mlp\\.c_fc|mlp\\.c_proj)\\.weight");
            for (int i = 0; i < q.p().length; i++) { p[o + i] = q.p()[i]; decay[o + i] = d; }
            o += q.p().length;
        }
        assertEquals(4 * c.nLayer(), ps.stream().filter(AdamW.Param::decay).count());
        Random rnd = new Random(3);
        double[] lrs = {1e-3, 3e-3, 2e-3};
        double[] scales = {0.01, 5.0, 0.2};   // the second step's gradients are clipped, the others are not
        for (int t = 1; t <= 3; t++) {
            double[] g = new double[n];
            opt.zeroGrads();
            o = 0;
            for (AdamW.Param q : ps) {
                for (int i = 0; i < q.g().length; i++) { q.g()[i] = (float) (rnd.nextGaussian() * scales[t - 1] / 30); g[o + i] = q.g()[i]; }
                o += q.g().length;
            }
            double norm = 0;
            for (double x : g) norm += x * x;
            norm = Math.sqrt(norm);
            double s = norm > clip ? clip / (norm + 1e-6) : 1;
            if (t == 2) assertTrue(s < 1, "the test means to clip the second step");
            double lr = lrs[t - 1];
            for (int i = 0; i < n; i++) {
                double gi = g[i] * s;
                if (decay[i]) p[i] -= lr * wd * p[i];
                m[i] = b1 * m[i] + (1 - b1) * gi;
                mAbs[i] = b1 * mAbs[i] + (1 - b1) * Math.abs(gi); // the scale f32 rounding errors of m follow
                v[i] = b2 * v[i] + (1 - b2) * gi * gi;
                double mh = m[i] / (1 - Math.pow(b1, t)), vh = v[i] / (1 - Math.pow(b2, t));
                p[i] -= lr * mh / (Math.sqrt(vh) + eps);
            }
            double got = opt.step(lr);
            assertEquals(norm, got, 1e-9 * norm, "gradient norm before clipping");
            o = 0;
            for (AdamW.Param q : ps) {
                for (int i = 0; i < q.p().length; i++) {
                    double d = Math.abs(q.p()[i] - p[o + i]);
                    // f32 keeps ~7 digits of the weight; the step itself is ~lr, so compare both scales.
                    assertTrue(d <= 2e-7 * Math.abs(p[o + i]) + 2e-6 * lr,
                            q.name() + "[" + i + "] step " + t + ": " + q.p()[i] + " vs float64 " + p[o + i]);
                    assertEquals(m[o + i], q.m()[i], 1e-6 * mAbs[o + i] + 1e-15, q.name() + " first moment");
                    assertEquals(v[o + i], q.v()[i], 1e-5 * Math.abs(v[o + i]) + 1e-15, q.name() + " second moment");
                }
                o += q.p().length;
            }
        }
        assertEquals(3, opt.steps());
        // Tied head: the unembedding is wte, one parameter, not two.
        assertEquals(1, ps.stream().filter(q -> q.name().endsWith("wte.weight")).count());
        assertTrue(ps.stream().noneMatch(q -> q.name().startsWith("lm_head")));
    }
}
