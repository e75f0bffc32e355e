package dev.nshap.train;

import dev.nshap.NshapException;
import dev.nshap.backend.CounterRng;
import dev.nshap.eval.corpus.TokenCorpus;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The token files of {@code nshap datasets tokenize} (uint16 GPT-2 ids; FILE.bin for training, FILE.val.bin held
 * out), and the windows a training run reads from them.
 *
 * <p>A window is {@code ctx} contiguous tokens (the model's whole context); its targets are window[1..], each
 * predicted from the tokens before it. Training windows are random slices whose starts are a pure function of
 * (seed, step, index in the batch) (counter-based, {@link CounterRng#mix64}): a resumed run needs no saved RNG state
 * to draw exactly the batches an unbroken run draws, and the batch of step s does not depend on the steps before.
 */
public final class TokenData {
    public final Path trainFile, valFile;
    public final int[] train, val;

    private TokenData(Path trainFile, Path valFile, int[] train, int[] val) {
        this.trainFile = trainFile;
        this.valFile = valFile;
        this.train = train;
        this.val = val;
    }

    /** Reads FILE.bin and FILE.val.bin; refuses missing files, odd sizes, ids outside the vocabulary, too few tokens. */
    public static TokenData load(Path trainFile, int vocab, int ctx) {
        Path valFile = TokenCorpus.valPath(trainFile);
        int[] tr = read(trainFile, vocab), va = read(valFile, vocab);
        if (tr.length < ctx + 1)
            throw new NshapException(trainFile + ": " + tr.length + " tokens, fewer than one training window of " + ctx + " plus one");
        if (va.length < ctx)
            throw new NshapException(valFile + ": " + va.length + " tokens, fewer than one validation window of " + ctx);
        return new TokenData(trainFile, valFile, tr, va);
    }

    private static int[] read(Path f, int vocab) {
        if (!Files.isRegularFile(f)) throw new NshapException(f + ": no such token file (write it with `nshap datasets tokenize --out`)");
        int[] ids = TokenCorpus.readUint16(f);
        for (int i = 0; i < ids.length; i++)
            if (ids[i] >= vocab)
                throw new NshapException(f + ": token " + ids[i] + " at position " + i + " is outside the model's vocabulary of " + vocab);
        return ids;
    }

    /** Window start {@code i} of step {@code step}: uniform over [0, n - ctx] (modulo bias below 2^-40). */
    public static int windowStart(long seed, long step, int i, int n, int ctx) {
        long range = (long) n - ctx + 1;
        long r = CounterRng.mix64(CounterRng.mix64(seed ^ 0x5851F42D4C957F2DL) + step * 0x9E3779B97F4A7C15L + i);
        return (int) Long.remainderUnsigned(r, range);
    }

    /** The {@code batch} training windows (ctx tokens each) of step {@code step}. */
    public List<int[]> batch(long seed, long step, int batch, int ctx) {
        List<int[]> out = new ArrayList<>(batch);
        for (int i = 0; i < batch; i++) {
            int s = windowStart(seed, step, i, train.length, ctx);
            int[] w = new int[ctx];
            System.arraycopy(train, s, w, 0, ctx);
            out.add(w);
        }
        return out;
    }

    /**
     * {@code n} validation windows of ctx tokens spread evenly over the file (the same set at every evaluation);
     * {@code n <= 0} or more than fit: every window at stride ctx - 1, so that each token of the file after the first
     * (up to the last whole window) is a target exactly once.
     */
    public List<int[]> valWindows(int n, int ctx) {
        int stride = Math.max(1, ctx - 1);   // consecutive windows share one token: the next one's first context
        int all = (val.length - ctx) / stride + 1;
        List<int[]> out = new ArrayList<>();
        if (n <= 0 || n >= all) {
            for (int k = 0; k < all; k++) out.add(slice(val, k * stride, ctx));
            return out;
        }
        long last = val.length - ctx;
        for (int k = 0; k < n; k++) out.add(slice(val, (int) Math.round(n == 1 ? 0 : (double) last * k / (n - 1)), ctx));
        return out;
    }

    private static int[] slice(int[] a, int from, int len) {
        int[] w = new int[len];
        System.arraycopy(a, from, w, 0, len);
        return w;
    }
}
