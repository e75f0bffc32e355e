package dev.nshap.train;

import java.util.Arrays;
import java.util.List;

/**
 * Count-based baselines for the model card, fitted on the training tokens and scored on exactly the (previous
 * token, target) pairs the model's validation loss scores:
 * <ul>
 * <li>unigram, add-one (Laplace): p(b) = (c(b) + 1) / (N + V);</li>
 * <li>bigram, Witten-Bell interpolation with that unigram (no tuned constant):
 *     p(b|a) = (c(a,b) + T(a) p(b)) / (c(a) + T(a)), T(a) = distinct tokens seen after a;
 *     a never-seen a (c(a) = 0) falls back to p(b).</li>
 * </ul>
 * Every target of a window (window[1..]) has its previous token inside the window, so the baselines and the model
 * score the same targets.
 */
public final class Baselines {
    public record Result(double unigram, double bigram, long pairs) {}

    private final int vocab;
    private final long n;
    private final long[] uni;
    private final long[] pairKeys;   // sorted a * V + b
    private final int[] pairCounts;
    private final long[] ctxCount;
    private final int[] ctxTypes;

    public Baselines(int[] train, int vocab) {
        this.vocab = vocab;
        this.n = train.length;
        uni = new long[vocab];
        for (int t : train) uni[t]++;
        long[] keys = new long[Math.max(0, train.length - 1)];
        for (int i = 0; i + 1 < train.length; i++) keys[i] = (long) train[i] * vocab + train[i + 1];
        Arrays.sort(keys);
        int distinct = 0;
        for (int i = 0; i < keys.length; i++) if (i == 0 || keys[i] != keys[i - 1]) distinct++;
        pairKeys = new long[distinct];
        pairCounts = new int[distinct];
        ctxCount = new long[vocab];
        ctxTypes = new int[vocab];
        int d = -1;
        for (int i = 0; i < keys.length; i++) {
            if (i == 0 || keys[i] != keys[i - 1]) {
                pairKeys[++d] = keys[i];
                ctxTypes[(int) (keys[i] / vocab)]++;
            }
            pairCounts[d]++;
            ctxCount[(int) (keys[i] / vocab)]++;
        }
    }

    public double unigramProb(int b) { return (uni[b] + 1.0) / (n + vocab); }

    public double bigramProb(int a, int b) {
        double pu = unigramProb(b);
        if (ctxCount[a] == 0) return pu;
        int k = Arrays.binarySearch(pairKeys, (long) a * vocab + b);
        long c = k >= 0 ? pairCounts[k] : 0;
        return (c + ctxTypes[a] * pu) / (ctxCount[a] + ctxTypes[a]);
    }

    /** Mean NLL of both baselines over the windows' targets (window[1..]), each given window[t-1]. */
    public Result score(List<int[]> windows) {
        double su = 0, sb = 0;
        long count = 0;
        for (int[] w : windows)
            for (int t = 1; t < w.length; t++) {
                su -= Math.log(unigramProb(w[t]));
                sb -= Math.log(bigramProb(w[t - 1], w[t]));
                count++;
            }
        return new Result(su / count, sb / count, count);
    }
}
