package dev.nshap.backend.cpu;

import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** ADD shifts the activation by a constant: the gradient passes through it unchanged, unlike ZERO or REPLACE. */
class AddGradientTest {
    @Test void theGradientPassesThroughAnAddedVector() {
        GPT2Config c = TestModels.tinyConfig(53);
        GPT2Weights w = TestModels.random(c, 3, 0.3f);
        Random r = new Random(4);
        int[] toks = TestModels.randomTokens(r, 7, 53);
        float[] v = new float[c.nEmbd()];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
        HookPoint at = new HookPoint(0, HookPoint.Kind.MLP_OUT), up = new HookPoint(0, HookPoint.Kind.RESID_PRE);
        float[][] plain = grad(w, toks, null, up), added = grad(w, toks, Intervention.add(at, null, null, v, 0f, 0), up),
                zeroed = grad(w, toks, Intervention.zero(at, null, null), up);
        // coefficient 0 leaves the forward as it was: the gradient must be the plain one, not ZERO's, which cuts the MLP path
        assertArrayEquals(plain[0], added[0], 1e-6f);
        double diff = 0;
        for (int i = 0; i < plain[0].length; i++) diff += Math.abs(plain[0][i] - zeroed[0][i]);
        assertTrue(diff > 1e-3, "zeroing the MLP output does change the gradient upstream");
    }

    static float[][] grad(GPT2Weights w, int[] toks, Intervention iv, HookPoint hp) {
        ForwardRequest q = new ForwardRequest().add(toks, new int[]{toks.length - 2, toks.length - 1}, new int[]{1, 2});
        if (iv != null) q.interventions.add(iv);
        return new CpuGradients(w).backward(q, Objective.answerNll(), Set.of(hp), null).grads().get(hp);
    }
}
