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

    /**
     * Eight random prompts of 3..8 tokens with 1..2 answer tokens (so per-prompt means differ from batch means),
     * each with a foil: the shared synthetic set of the game and attribution tests.
     */
    public static dev.nshap.eval.TokenizedDataset randomPromptSet(String name, int vocab) {
        Random rnd = new Random(3);
        int n = 8;
        int[][] seqs = new int[n][], pos = new int[n][], ans = new int[n][];
        int[] foils = new int[n];
        java.util.List<dev.nshap.eval.Prompt> prompts = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] p = randomTokens(rnd, 3 + rnd.nextInt(6), vocab);
            int na = 1 + rnd.nextInt(2);
            int[] a = randomTokens(rnd, na, vocab);
            int[] s = java.util.Arrays.copyOf(p, p.length + na - 1);
            for (int k = 0; k < na - 1; k++) s[p.length + k] = a[k];
            seqs[i] = s;
            pos[i] = new int[na];
            for (int k = 0; k < na; k++) pos[i][k] = p.length - 1 + k;
            ans[i] = a;
            foils[i] = (a[0] + 7) % vocab;
            prompts.add(new dev.nshap.eval.Prompt("p" + i, "t", "x", "y", "z", null));
        }
        return dev.nshap.eval.TokenizedDataset.ofTokens(new dev.nshap.eval.Dataset(name, java.nio.file.Path.of(name + ".jsonl"), prompts),
                seqs, pos, ans, foils);
    }
}
