package dev.nshap.eval;

import dev.nshap.NshapException;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.Tokenizer;

/**
 * Prompts as token sequences for teacher forcing: sequence = prompt tokens + answer tokens except the last;
 * the answer's k-th token is predicted at position (promptLength - 1 + k). Prompt and answer are encoded
 * separately so the answer's tokens are the same whatever the prompt ends with.
 */
public final class TokenizedDataset {
    public final Dataset dataset;
    public final int[][] sequences;
    public final int[][] scorePositions;
    public final int[][] answers;
    /** First token of the foil per prompt, or -1 where the prompt has none. */
    public final int[] foils;

    private TokenizedDataset(Dataset d, int[][] seqs, int[][] pos, int[][] answers, int[] foils) {
        this.dataset = d;
        this.sequences = seqs;
        this.scorePositions = pos;
        this.answers = answers;
        this.foils = foils;
    }

    public int size() { return sequences.length; }

    public static TokenizedDataset of(Dataset d, Tokenizer tok, GPT2Config cfg) {
        int n = d.prompts().size();
        int[][] seqs = new int[n][], pos = new int[n][], ans = new int[n][];
        int[] foils = new int[n];
        for (int i = 0; i < n; i++) {
            Prompt p = d.prompts().get(i);
            int[] pt = tok.encode(p.prompt());
            int[] at = tok.encode(p.answer());
            if (pt.length == 0) throw new NshapException(d.where(p) + ": the prompt encodes to no tokens");
            if (at.length == 0) throw new NshapException(d.where(p) + ": the answer encodes to no tokens");
            int len = pt.length + at.length - 1;
            if (pt.length + at.length > cfg.nPositions() + 1 || len > cfg.nPositions())
                throw new NshapException(d.where(p) + ": prompt + answer is " + (pt.length + at.length)
                        + " tokens, longer than the model's context of " + cfg.nPositions());
            int[] s = new int[len];
            System.arraycopy(pt, 0, s, 0, pt.length);
            System.arraycopy(at, 0, s, pt.length, at.length - 1);
            int[] ps = new int[at.length];
            for (int k = 0; k < at.length; k++) ps[k] = pt.length - 1 + k;
            seqs[i] = s;
            pos[i] = ps;
            ans[i] = at;
            if (p.foil() != null) {
                int[] ft = tok.encode(p.foil());
                foils[i] = ft.length == 0 ? -1 : ft[0];
            } else foils[i] = -1;
            for (int t : s) checkToken(t, cfg, d, p, "prompt");
            for (int t : at) checkToken(t, cfg, d, p, "answer");
            if (foils[i] != -1) checkToken(foils[i], cfg, d, p, "foil");
        }
        return new TokenizedDataset(d, seqs, pos, ans, foils);
    }

    /**
     * A token id the model has no row for would index past the logits of its own position (silently reading the
     * next position's) or past the embedding table: refuse it, naming the prompt.
     */
    private static void checkToken(int t, GPT2Config cfg, Dataset d, Prompt p, String what) {
        if (t < 0 || t >= cfg.vocabSize())
            throw new NshapException(d.where(p) + ": " + what + " token " + t + " is outside the model's vocabulary (0.."
                    + (cfg.vocabSize() - 1) + "): the tokenizer does not match the model");
    }

    /** For tests and synthetic sets: already-tokenised prompts. */
    public static TokenizedDataset ofTokens(Dataset d, int[][] sequences, int[][] scorePositions, int[][] answers, int[] foils) {
        return new TokenizedDataset(d, sequences, scorePositions, answers, foils);
    }

    public long tokenCount() {
        long t = 0;
        for (int[] s : sequences) t += s.length;
        return t;
    }
}
