package dev.nshap.testutil;

import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;

import java.util.Random;

/** Random tiny models for tests, with weights large enough that attention and the MLP do real work. */
public final class TestModels {
    private TestModels() {}

    public static GPT2Config tinyConfig(int vocab) {
        return new GPT2Config(2, 4, 32, 32, vocab, 1e-5, "gelu_new");
    }

    public static GPT2Weights random(GPT2Config c, long seed, float std) {
        GPT2Weights w = new GPT2Weights(c, true);
        Random r = new Random(seed);
        fill(w.wte, r, std); fill(w.wpe, r, std);
        for (GPT2Weights.Block b : w.blocks) {
            fillAround(b.ln1W, r, 1f, 0.1f); fill(b.ln1B, r, 0.1f);
            fill(b.attnW, r, std); fill(b.attnB, r, 0.1f);
            fill(b.attnProjW, r, std); fill(b.attnProjB, r, 0.1f);
            fillAround(b.ln2W, r, 1f, 0.1f); fill(b.ln2B, r, 0.1f);
            fill(b.fcW, r, std); fill(b.fcB, r, 0.1f);
            fill(b.projW, r, std); fill(b.projB, r, 0.1f);
        }
        fillAround(w.lnfW, r, 1f, 0.1f); fill(w.lnfB, r, 0.1f);
        return w;
    }

    public static void fill(float[] a, Random r, float std) {
        for (int i = 0; i < a.length; i++) a[i] = (float) (r.nextGaussian() * std);
    }

    private static void fillAround(float[] a, Random r, float mean, float std) {
        for (int i = 0; i < a.length; i++) a[i] = (float) (mean + r.nextGaussian() * std);
    }

    public static int[] randomTokens(Random r, int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = r.nextInt(vocab);
        return t;
    }
}
