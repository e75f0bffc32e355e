package dev.nshap.testutil;

import dev.nshap.eval.Dataset;
import dev.nshap.eval.Prompt;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * A one-layer GPT-2 built by hand so that the answer to a prompt is carried by one known neuron.
 * <ul>
 * <li>vocab = n_embd = 16 and wte[t] is the one-hot e_t (tied head): a token's logit is its own coordinate of ln_f(x).</li>
 * <li>wpe = 0 and every attention weight is 0: attention writes nothing, so the last position sees only its own token.</li>
 * <li>neuron {@link #NA} reads token {@link #A} with weight 3 (ln_2 turns e_A into 2.6458 at A, -0.378 elsewhere, so
 *     it fires at gelu(7.94) = 7.94 on A and at gelu(-1.13) = -0.146 otherwise) and writes 2 x e_X;
 *     neuron {@link #NB} does the same for B -> Y.</li>
 * <li>the other 62 neurons have small random weights (fc sd 0.1, proj sd 0.05): they move logits by ~0.1.</li>
 * </ul>
 * Clean: a prompt ending in A has X at 15.9 against A's 1: it answers X; ending in B it answers Y. Without NA,
 * an A prompt's largest coordinate is A itself, so it no longer answers X, while B prompts do not need NA at all.
 */
public final class KeyNeuronModel {
    public static final int V = 16, A = 3, B = 4, X = 10, Y = 11, NA = 7, NB = 20;
    public static final int[] FILLERS = {12, 13, 14, 15};

    private KeyNeuronModel() {}

    public static GPT2Config config() {
        return new GPT2Config(1, 2, V, 16, V, 1e-5, "gelu_new");
    }

    public static GPT2Weights weights() {
        GPT2Config c = config();
        GPT2Weights w = new GPT2Weights(c, true);
        int C = c.nEmbd(), H = c.nInner();
        for (int t = 0; t < V; t++) w.wte[t * C + t] = 1f;
        GPT2Weights.Block b = w.blocks[0];
        java.util.Arrays.fill(b.ln1W, 1f);
        java.util.Arrays.fill(b.ln2W, 1f);
        java.util.Arrays.fill(w.lnfW, 1f);
        Random r = new Random(77);
        for (int n = 0; n < H; n++) {
            if (n == NA || n == NB) continue;
            for (int k = 0; k < C; k++) {
                b.fcW[k * H + n] = (float) (r.nextGaussian() * 0.1);
                b.projW[n * C + k] = (float) (r.nextGaussian() * 0.05);
            }
        }
        b.fcW[A * H + NA] = 3f;
        b.fcW[B * H + NB] = 3f;
        b.projW[NA * C + X] = 2f;
        b.projW[NB * C + Y] = 2f;
        return w;
    }

    /** n prompts of 1..4 filler tokens then {@code last}, answered by {@code answer}. */
    public static TokenizedDataset prompts(String topic, int last, int answer, int n, long seed) {
        Random r = new Random(seed);
        int[][] seqs = new int[n][], pos = new int[n][], ans = new int[n][];
        int[] foils = new int[n];
        List<Prompt> ps = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int len = 2 + r.nextInt(4);
            seqs[i] = new int[len];
            for (int k = 0; k < len - 1; k++) seqs[i][k] = FILLERS[r.nextInt(FILLERS.length)];
            seqs[i][len - 1] = last;
            pos[i] = new int[]{len - 1};
            ans[i] = new int[]{answer};
            foils[i] = last;
            ps.add(new Prompt(topic + i, topic, "tokens", "answer", null, null));
        }
        return TokenizedDataset.ofTokens(new Dataset(topic, Path.of(topic + ".jsonl"), ps), seqs, pos, ans, foils);
    }

    /** gelu_new in closed form. */
    public static double gelu(double x) {
        return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    }

    /** ln_2 of a one-hot residual (weight 1, bias 0): the hot coordinate's value. */
    public static double lnHot() {
        return (1 - 1.0 / V) / Math.sqrt((1.0 / V) * (1 - 1.0 / V) + 1e-5);
    }
}
