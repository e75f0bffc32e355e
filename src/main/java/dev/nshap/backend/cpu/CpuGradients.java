package dev.nshap.backend.cpu;

import dev.nshap.NshapException;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.RequestChecks;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;

/**
 * The backward pass of the CPU forward: a forward that keeps what the backward reads, then one backward per
 * forward op in reverse (llm.c's train_gpt2.c is the model of the shape). Interventions of the request apply in
 * the differentiated forward through the forward's own hook code; their derivatives are applied on the way back.
 *
 * <p>Kept per layer (after each hook's interventions): the residual entering the layer and after attention, both
 * LayerNorms' mean and 1/std, qkv, the attention output, the MLP's pre- and post-activation. The LayerNorm
 * outputs are recomputed from those in the backward, and attention probabilities are recomputed per row from
 * q and k, so memory is O(N C) per layer whatever the sequence length. Logits exist only 256 rows at a time.
 *
 * <p>Not thread-safe: the workspace is reused between calls (grown when a call needs more rows).
 */
public final class CpuGradients {
    /** Rows of logits held at once: 256 x 50257 floats = 51 MB. */
    static final int CHUNK = 256;

    private final GPT2Weights w;
    private final GPT2Config c;
    private final CpuBackend forward;
    private final boolean exactGelu;
    private final int C, H, V, NH, NL;

    private int capN, capS;
    /** xs[2l] = blocks.l.hook_resid_pre, xs[2l+1] = hook_resid_mid, xs[2L] = the last hook_resid_post. */
    private float[][] xs, qkv, atty, fcPre, fcPost, mean1, rstd1, mean2, rstd2;
    private float[] lnIn, normed, meanF, rstdF;
    private int[] rowOf, targetOf, foilOf;
    private double[] rowValue;
    private float[] dx, dBranch, dln, dqkv, datt, dh, lnBuf;
    private float[] headT, logits, chunkIn, chunkOut, dHeadT;
    private final float[][] headScratch = new float[2][];
    private long lastBytes;
    private final float[][] linScratch = new float[3][];
    private final Timings timings = new Timings();

    /** Time per stage since the last reset: how a benchmark splits a backward call. */
    public static final class Timings {
        public long forwardNanos, logitsNanos, softmaxNanos, headDxNanos, headDwNanos, backwardNanos, attentionBackNanos;

        public void reset() { forwardNanos = logitsNanos = softmaxNanos = headDxNanos = headDwNanos = backwardNanos = attentionBackNanos = 0; }
    }

    public Timings timings() { return timings; }

    private static final ThreadLocal<float[][]> ATT_SCRATCH = new ThreadLocal<>();

    public CpuGradients(GPT2Weights weights) {
        this.w = weights;
        this.c = weights.config;
        this.forward = new CpuBackend(weights);
        this.exactGelu = c.activationFunction().equals("gelu");
        C = c.nEmbd(); H = c.nInner(); V = c.vocabSize(); NH = c.nHead(); NL = c.nLayer();
    }

    /**
     * Training objective: mean over every position t < T-1 of every sequence of -log p(seq[t+1] | seq[..t]).
     * Adds dLoss/dW into {@code grads} (tied head: grads.lmHead == grads.wte, both contributions land there).
     * Returns the mean loss. No interventions.
     */
    public double lmLoss(List<int[]> sequences, GPT2Weights grads) {
        if (grads == null) throw new IllegalArgumentException("lmLoss needs a gradient buffer");
        ForwardRequest req = new ForwardRequest();
        for (int[] s : sequences) req.add(s, null, null);
        return run(req, Objective.lmLoss(), Collections.emptySet(), grads).value();
    }

    /**
     * The forward of {@code request} with its interventions applied, then the backward of {@code objective}:
     * the objective, the activations and d objective / d activation at each hook in {@code hooks}; weight
     * gradients are added to {@code weightGrads} when it is not null.
     */
    public GradientResult backward(ForwardRequest request, Objective objective, Set<HookPoint> hooks, GPT2Weights weightGrads) {
        return run(request, objective, hooks == null ? Collections.emptySet() : hooks, weightGrads);
    }

    /** Bytes of activations kept for the last backward: 4 x [(L - start) N (6C + 2H + 4) + N C + S (2C + 2)]. */
    public long lastActivationBytes() { return lastBytes; }

    /** The formula of {@link #lastActivationBytes}: N rows in all, S of them scored, layers from {@code start}. */
    public static long activationBytes(GPT2Config c, int start, long n, long s) {
        long C = c.nEmbd(), H = c.nInner();
        return 4L * ((c.nLayer() - start) * n * (6 * C + 2 * H + 4) + n * C + s * (2 * C + 2));
    }

    private GradientResult run(ForwardRequest req, Objective obj, Set<HookPoint> hooks, GPT2Weights g) {
        if (g != null && (!g.config.equals(c) || g.tied() != w.tied()))
            throw new IllegalArgumentException("gradient buffer has another shape than the model");
        final int nSeq = req.size();
        int[] len = RequestChecks.lengths(req, c), row0 = new int[nSeq];
        int n = 0;
        for (int s = 0; s < nSeq; s++) { row0[s] = n; n += len[s]; }
        final int N = n;
        int start = RequestChecks.startLayer(req, len, c);
        Map<HookPoint, List<Intervention>> byHook = RequestChecks.interventionsByHook(req, c, nSeq, start);
        for (HookPoint hp : hooks) {
            hp.checkFor(c);
            if (hp.layer() < start) throw new NshapException("gradients: hook " + hp + " lies before the start layer " + start);
        }
        int S = countRows(req, obj, len);
        ensure(N, S);
        fillRows(req, obj, len, row0);

        Map<HookPoint, float[][]> acts = new LinkedHashMap<>(), grads = new LinkedHashMap<>();
        CpuBackend.Hooks fwdHooks = forward.new Hooks(byHook, hooks, acts, len, row0, nSeq);
        long t0 = System.nanoTime();
        forwardPass(req, start, len, row0, N, fwdHooks);
        timings.forwardNanos += System.nanoTime() - t0;
        double value = head(obj.kind(), S, N, g);
        BackHooks back = new BackHooks(byHook, hooks, grads, len, row0, nSeq);
        t0 = System.nanoTime();
        backwardPass(req, start, len, row0, N, back, g);
        timings.backwardNanos += System.nanoTime() - t0;
        lastBytes = activationBytes(c, start, N, S);
        return new GradientResult(value, acts, grads);
    }

    // ---------------------------------------------------------------- rows scored by the objective

    private int countRows(ForwardRequest req, Objective obj, int[] len) {
        if (obj.kind() == Objective.Kind.LM_LOSS) {
            int s = 0;
            for (int l : len) s += l - 1;
            if (s == 0) throw new NshapException("gradients: LM loss needs a sequence of at least 2 tokens");
            return s;
        }
        int total = RequestChecks.scoredRows(req, len, c);
        if (total == 0) throw new NshapException("gradients: no scored position to differentiate");
        for (int s = 0; s < req.size(); s++) {
            int[] pos = RequestChecks.scorePositions(req, s);
            if (pos == null || pos.length == 0) continue;
            if (RequestChecks.targets(req, s) == null)
                throw new NshapException("gradients: objective " + obj.kind() + " needs a target at every scored position (sequence " + s + " has none)");
            if (obj.kind() == Objective.Kind.LOGIT_DIFF) {
                int[] f = s < obj.foils().size() ? obj.foils().get(s) : null;
                if (f == null || f.length != pos.length)
                    throw new NshapException("gradients: sequence " + s + " needs " + pos.length + " foil tokens for logit-diff");
                for (int t : f) if (t < 0 || t >= V) throw new NshapException("gradients: foil token " + t + " outside the vocabulary");
            }
        }
        return total;
    }

    private void fillRows(ForwardRequest req, Objective obj, int[] len, int[] row0) {
        int r = 0;
        for (int s = 0; s < req.size(); s++) {
            if (obj.kind() == Objective.Kind.LM_LOSS) {
                int[] toks = req.tokens.get(s);
                for (int t = 0; t + 1 < len[s]; t++, r++) { rowOf[r] = row0[s] + t; targetOf[r] = toks[t + 1]; foilOf[r] = -1; }
                continue;
            }
            int[] pos = RequestChecks.scorePositions(req, s);
            if (pos == null) continue;
            int[] tg = RequestChecks.targets(req, s);
            int[] f = obj.kind() == Objective.Kind.LOGIT_DIFF ? obj.foils().get(s) : null;
            for (int i = 0; i < pos.length; i++, r++) { rowOf[r] = row0[s] + pos[i]; targetOf[r] = tg[i]; foilOf[r] = f == null ? -1 : f[i]; }
        }
    }

    private void ensure(int N, int S) {
        if (N > capN) {
            capN = N;
            xs = new float[2 * NL + 1][N * C];
            qkv = new float[NL][N * 3 * C];
            atty = new float[NL][N * C];
            fcPre = new float[NL][N * H];
            fcPost = new float[NL][N * H];
            mean1 = new float[NL][N]; rstd1 = new float[NL][N]; mean2 = new float[NL][N]; rstd2 = new float[NL][N];
            dx = new float[N * C]; dBranch = new float[N * C]; dln = new float[N * C]; lnBuf = new float[N * C];
            dqkv = new float[N * 3 * C]; datt = new float[N * C]; dh = new float[N * H];
        }
        if (S > capS) {
            capS = S;
            lnIn = new float[S * C]; normed = new float[S * C]; meanF = new float[S]; rstdF = new float[S];
            rowOf = new int[S]; targetOf = new int[S]; foilOf = new int[S]; rowValue = new double[S];
        }
        if (headT == null) {
            headT = new float[Math.multiplyExact(V, C)];
            logits = new float[Math.multiplyExact(CHUNK, V)];
            chunkIn = new float[CHUNK * C]; chunkOut = new float[CHUNK * C];
        }
    }

    // ---------------------------------------------------------------- forward, keeping what the backward reads

    private void forwardPass(ForwardRequest req, int start, int[] len, int[] row0, int N, CpuBackend.Hooks hooks) {
        float[] x0 = xs[2 * start];
        for (int s = 0; s < req.size(); s++) {
            if (start == 0) {
                int[] toks = req.tokens.get(s);
                for (int t = 0; t < toks.length; t++) {
                    int o = (row0[s] + t) * C, eo = toks[t] * C, po = t * C;
                    for (int k = 0; k < C; k++) x0[o + k] = w.wte[eo + k] + w.wpe[po + k];
                }
            } else {
                float[] r = req.startResidual.get(s);
                System.arraycopy(r, 0, x0, row0[s] * C, r.length);
            }
        }
        for (int l = start; l < NL; l++) {
            GPT2Weights.Block b = w.blocks[l];
            float[] x = xs[2 * l], xm = xs[2 * l + 1], xn = xs[2 * l + 2];
            hooks.at(l, HookPoint.Kind.RESID_PRE, x, C);
            layerNorm(lnBuf, x, b.ln1W, b.ln1B, mean1[l], rstd1[l], N);
            Gemm.linear(qkv[l], lnBuf, b.attnW, b.attnB, N, C, 3 * C);
            float[] q = qkv[l], y = atty[l];
            IntStream.range(0, len.length * NH).parallel().forEach(task -> {
                int s = task / NH, head = task % NH;
                CpuKernels.attentionHead(y, q, row0[s], len[s], C, NH, head, scratch(len[s])[0]);
            });
            Gemm.linear(dBranch, y, b.attnProjW, b.attnProjB, N, C, C);
            hooks.at(l, HookPoint.Kind.ATTN_OUT, dBranch, C);
            for (int i = 0; i < N * C; i++) xm[i] = x[i] + dBranch[i];
            hooks.at(l, HookPoint.Kind.RESID_MID, xm, C);
            layerNorm(lnBuf, xm, b.ln2W, b.ln2B, mean2[l], rstd2[l], N);
            Gemm.linear(fcPre[l], lnBuf, b.fcW, b.fcB, N, C, H);
            hooks.at(l, HookPoint.Kind.MLP_PRE, fcPre[l], H);
            System.arraycopy(fcPre[l], 0, fcPost[l], 0, N * H);
            gelu(fcPost[l], N);
            hooks.at(l, HookPoint.Kind.MLP_POST, fcPost[l], H);
            Gemm.linear(dBranch, fcPost[l], b.projW, b.projB, N, H, C);
            hooks.at(l, HookPoint.Kind.MLP_OUT, dBranch, C);
            for (int i = 0; i < N * C; i++) xn[i] = xm[i] + dBranch[i];
            hooks.at(l, HookPoint.Kind.RESID_POST, xn, C);
        }
    }

    /** Two per-thread float[nPositions] rows (probabilities, their gradient) for attention. */
    private float[][] scratch(int t) {
        float[][] s = ATT_SCRATCH.get();
        int need = (t + CpuKernels.L - 1) / CpuKernels.L * CpuKernels.L;
        if (s == null || s[0].length < need) { s = new float[][]{new float[need], new float[need]}; ATT_SCRATCH.set(s); }
        return s;
    }

    /** The forward's LayerNorm kernel (so the activations are the forward's bits), plus the statistics the backward reads. */
    private void layerNorm(float[] out, float[] x, float[] g, float[] b, float[] mean, float[] rstd, int n) {
        int chunks = Math.min(n, 64);
        double eps = c.layerNormEpsilon();
        IntStream.range(0, chunks).parallel().forEach(q -> {
            int r0 = (int) ((long) n * q / chunks), r1 = (int) ((long) n * (q + 1) / chunks);
            float[] lanes = new float[CpuKernels.L];
            // One pass: the forward's own row kernel also leaves the statistics it used.
            for (int i = r0; i < r1; i++) CpuKernels.layerNormRow(out, i * C, x, i * C, g, b, C, eps, lanes, mean, rstd, i);
        });
    }

    private void gelu(float[] h, int n) {
        int chunks = Math.min(n, 64);
        IntStream.range(0, chunks).parallel().forEach(q -> {
            int r0 = (int) ((long) n * q / chunks), r1 = (int) ((long) n * (q + 1) / chunks);
            if (exactGelu) CpuKernels.geluErf(h, r0 * H, (r1 - r0) * H);
            else CpuKernels.geluNew(h, r0 * H, (r1 - r0) * H);
        });
    }

    // ---------------------------------------------------------------- final LayerNorm, unembedding, objective

    /**
     * Objective value; leaves d value / d (last hook_resid_post) in dx and adds the head's weight gradients.
     * logits = X W^T, dX = dlogits W, dW += dlogits^T X. On OpenBLAS the transposes are flags (productBt, addAtB).
     * The Java kernels want packed layouts with the columns over V, the long side, which they split across cores:
     * W^T [C, V] transposed once per call rather than per chunk, and dW^T = X^T dlogits summed over the chunks and
     * added to dW at the end (measured on 2 cores at C = 128: ~5x faster than Gemm.sgemm's transposed-A path).
     */
    private double head(Objective.Kind kind, int S, int N, GPT2Weights g) {
        float[] xf = xs[2 * NL];
        double eps = c.layerNormEpsilon();
        IntStream.range(0, S).parallel().forEach(r -> System.arraycopy(xf, rowOf[r] * C, lnIn, r * C, C));
        layerNorm(normed, lnIn, w.lnfW, w.lnfB, meanF, rstdF, S);
        boolean blas = Gemm.active() == Gemm.Impl.OPENBLAS;
        if (!blas) transpose(w.lmHead, 0, headT, V, C, false);
        if (!blas && g != null && dHeadT == null) dHeadT = new float[headT.length];
        if (!blas && g != null) Arrays.fill(dHeadT, 0f);
        Arrays.fill(dx, 0, N * C, 0f);
        float scale = 1f / S;
        for (int r0 = 0; r0 < S; r0 += CHUNK) {
            final int R = Math.min(CHUNK, S - r0), base = r0;
            System.arraycopy(normed, r0 * C, chunkIn, 0, R * C);
            long t0 = System.nanoTime();
            if (blas) productBt(logits, chunkIn, w.lmHead, R, C, V, headScratch, 0);
            else Gemm.linear(logits, chunkIn, headT, null, R, C, V);
            long t1 = System.nanoTime();
            IntStream.range(0, R).parallel().forEach(i ->
                    rowValue[base + i] = objectiveRow(kind, logits, i * V, V, targetOf[base + i], foilOf[base + i], scale));
            long t2 = System.nanoTime();
            Gemm.linear(chunkOut, logits, w.lmHead, null, R, V, C);
            long t3 = System.nanoTime();
            if (g != null) {
                if (blas) addAtB(g.lmHead, logits, chunkIn, R, V, C, headScratch, 0);
                else addAtB(dHeadT, chunkIn, logits, R, C, V, headScratch, 0);
            }
            timings.logitsNanos += t1 - t0;
            timings.softmaxNanos += t2 - t1;
            timings.headDxNanos += t3 - t2;
            timings.headDwNanos += System.nanoTime() - t3;
            for (int i = 0; i < R; i++) {
                int r = r0 + i;
                layerNormBackwardRow(dx, rowOf[r] * C, chunkOut, i * C, lnIn, r * C, meanF[r], rstdF[r], w.lnfW, C);
                if (g != null) layerNormParamGrads(g.lnfW, g.lnfB, chunkOut, i * C, lnIn, r * C, meanF[r], rstdF[r], C);
            }
        }
        if (!blas && g != null) transpose(dHeadT, 0, g.lmHead, C, V, true);
        double sum = 0;
        for (int r = 0; r < S; r++) sum += rowValue[r];
        return sum / S;
    }

    /**
     * One row of logits [o, o + v): returns the row's objective term and overwrites the row with
     * scale x d term / d logits. NLL / LM loss: -log p(t), gradient p - onehot(t); log-prob: the negatives;
     * logit-diff: logit[t] - logit[f], gradient onehot(t) - onehot(f).
     */
    static double objectiveRow(Objective.Kind kind, float[] lg, int o, int v, int target, int foil, float scale) {
        if (kind == Objective.Kind.LOGIT_DIFF) {
            double d = (double) lg[o + target] - lg[o + foil];
            Arrays.fill(lg, o, o + v, 0f);
            lg[o + target] += scale;
            lg[o + foil] -= scale;
            return d;
        }
        int L = CpuKernels.L, vv = v / L * L;
        FloatVector mv = FloatVector.broadcast(CpuKernels.S, Float.NEGATIVE_INFINITY);
        for (int j = 0; j < vv; j += L) mv = mv.max(FloatVector.fromArray(CpuKernels.S, lg, o + j));
        float max = mv.reduceLanes(VectorOperators.MAX);
        for (int j = vv; j < v; j++) max = Math.max(max, lg[o + j]);
        float lt = lg[o + target];
        FloatVector maxv = FloatVector.broadcast(CpuKernels.S, max), sumv = FloatVector.zero(CpuKernels.S);
        for (int j = 0; j < vv; j += L) {
            FloatVector e = CpuKernels.exp(FloatVector.fromArray(CpuKernels.S, lg, o + j).sub(maxv));
            e.intoArray(lg, o + j);
            sumv = sumv.add(e);
        }
        double sum = sumv.reduceLanes(VectorOperators.ADD);
        for (int j = vv; j < v; j++) { float e = CpuKernels.exp(lg[o + j] - max); lg[o + j] = e; sum += e; }
        double logp = lt - max - Math.log(sum);
        float sign = kind == Objective.Kind.ANSWER_LOGPROB ? -1f : 1f;
        float f = (float) (sign * scale / sum);
        FloatVector fv = FloatVector.broadcast(CpuKernels.S, f);
        for (int j = 0; j < vv; j += L) FloatVector.fromArray(CpuKernels.S, lg, o + j).mul(fv).intoArray(lg, o + j);
        for (int j = vv; j < v; j++) lg[o + j] *= f;
        lg[o + target] -= sign * scale;
        return kind == Objective.Kind.ANSWER_LOGPROB ? logp : -logp;
    }

    /** at[cols, rows] = a[rows, cols]^T (or += when add), in 64 x 64 tiles so both sides stay in cache. */
    static void transpose(float[] a, int aOff, float[] at, int rows, int cols, boolean add) {
        int tb = 64, colBlocks = (cols + tb - 1) / tb;
        IntStream.range(0, colBlocks).parallel().forEach(q -> {
            int k0 = q * tb, k1 = Math.min(cols, k0 + tb);
            for (int r0 = 0; r0 < rows; r0 += tb) {
                int r1 = Math.min(rows, r0 + tb);
                for (int k = k0; k < k1; k++) {
                    int o = k * rows;
                    if (add) for (int r = r0; r < r1; r++) at[o + r] += a[aOff + r * cols + k];
                    else for (int r = r0; r < r1; r++) at[o + r] = a[aOff + r * cols + k];
                }
            }
        });
    }

    // ---------------------------------------------------------------- backward

    private void backwardPass(ForwardRequest req, int start, int[] len, int[] row0, int N, BackHooks hooks, GPT2Weights g) {
        for (int l = NL - 1; l >= start; l--) {
            GPT2Weights.Block b = w.blocks[l];
            GPT2Weights.Block gb = g == null ? null : g.blocks[l];
            float[] x = xs[2 * l], xm = xs[2 * l + 1];
            hooks.at(l, HookPoint.Kind.RESID_POST, dx, C);
            // MLP branch: dx flows to it unchanged through the residual add.
            System.arraycopy(dx, 0, dBranch, 0, N * C);
            hooks.at(l, HookPoint.Kind.MLP_OUT, dBranch, C);
            linearBackward(dh, gb == null ? null : gb.projW, gb == null ? null : gb.projB, dBranch, fcPost[l], b.projW, N, H, C, linScratch);
            hooks.at(l, HookPoint.Kind.MLP_POST, dh, H);
            geluBackward(dh, fcPre[l], N * H, exactGelu);
            hooks.at(l, HookPoint.Kind.MLP_PRE, dh, H);
            if (gb != null) layerNormOut(lnBuf, xm, b.ln2W, b.ln2B, N);
            linearBackward(dln, gb == null ? null : gb.fcW, gb == null ? null : gb.fcB, dh, lnBuf, b.fcW, N, C, H, linScratch);
            layerNormBackward(dx, dln, xm, mean2[l], rstd2[l], b.ln2W, gb == null ? null : gb.ln2W, gb == null ? null : gb.ln2B, N);
            hooks.at(l, HookPoint.Kind.RESID_MID, dx, C);
            // Attention branch.
            System.arraycopy(dx, 0, dBranch, 0, N * C);
            hooks.at(l, HookPoint.Kind.ATTN_OUT, dBranch, C);
            linearBackward(datt, gb == null ? null : gb.attnProjW, gb == null ? null : gb.attnProjB, dBranch, atty[l], b.attnProjW, N, C, C, linScratch);
            float[] q = qkv[l];
            long ta = System.nanoTime();
            IntStream.range(0, len.length * NH).parallel().forEach(task -> {
                int s = task / NH, head = task % NH;
                float[][] sc = scratch(len[s]);
                attentionHeadBackward(dqkv, datt, q, row0[s], len[s], C, NH, head, sc[0], sc[1]);
            });
            timings.attentionBackNanos += System.nanoTime() - ta;
            if (gb != null) layerNormOut(lnBuf, x, b.ln1W, b.ln1B, N);
            linearBackward(dln, gb == null ? null : gb.attnW, gb == null ? null : gb.attnB, dqkv, lnBuf, b.attnW, N, C, 3 * C, linScratch);
            layerNormBackward(dx, dln, x, mean1[l], rstd1[l], b.ln1W, gb == null ? null : gb.ln1W, gb == null ? null : gb.ln1B, N);
            hooks.at(l, HookPoint.Kind.RESID_PRE, dx, C);
        }
        if (g != null && start == 0)
            for (int s = 0; s < req.size(); s++) embeddingBackward(g.wte, g.wpe, dx, req.tokens.get(s), row0[s], C);
    }

    /** The LayerNorm output again, from the kept input (the dW of the GEMM after it reads it). */
    private void layerNormOut(float[] out, float[] x, float[] g, float[] b, int n) {
        int chunks = Math.min(n, 64);
        IntStream.range(0, chunks).parallel().forEach(q -> {
            int r0 = (int) ((long) n * q / chunks), r1 = (int) ((long) n * (q + 1) / chunks);
            CpuKernels.layerNormRows(out, x, g, b, r0, r1, C, c.layerNormEpsilon());
        });
    }

    /**
     * y[n,m] = x[n,k] W[k,m] + b: dx = dy W^T (overwritten); dW += x^T dy and db += column sums of dy when
     * dW / db are not null. {@code scratch} holds three buffers, grown as needed (used by the Java kernels only).
     */
    static void linearBackward(float[] dx, float[] dW, float[] db, float[] dy, float[] x, float[] W, int n, int k, int m,
                               float[][] scratch) {
        productBt(dx, dy, W, n, m, k, scratch, 0);
        if (dW != null) addAtB(dW, x, dy, n, k, m, scratch, 1);
        if (db != null)
            for (int i = 0; i < n; i++) for (int j = 0, o = i * m; j < m; j++) db[j] += dy[o + j];
    }

    /**
     * out[n,m] = a[n,k] b[m,k]^T. OpenBLAS takes the transpose as a flag; the Java kernels run the packed forward
     * GEMM on a transposed copy of b (scratch slot s), several times faster than Gemm.sgemm's transposed paths there.
     */
    static void productBt(float[] out, float[] a, float[] b, int n, int k, int m, float[][] scratch, int s) {
        if (Gemm.active() == Gemm.Impl.OPENBLAS) {
            Gemm.sgemm(false, true, n, m, k, 1f, a, 0, k, b, 0, k, 0f, out, 0, m);
            return;
        }
        float[] bt = grow(scratch, s, k * m);
        transpose(b, 0, bt, m, k, false);
        Gemm.linear(out, a, bt, null, n, k, m);
    }

    /** acc[k,m] += a[n,k]^T b[n,m]; as {@link #productBt}, by flag on OpenBLAS, on a transposed copy (slots s, s + 1) otherwise. */
    static void addAtB(float[] acc, float[] a, float[] b, int n, int k, int m, float[][] scratch, int s) {
        if (Gemm.active() == Gemm.Impl.OPENBLAS) {
            Gemm.sgemm(true, false, k, m, n, 1f, a, 0, k, b, 0, m, 1f, acc, 0, m);
            return;
        }
        float[] at = grow(scratch, s, n * k), part = grow(scratch, s + 1, k * m);
        transpose(a, 0, at, n, k, false);
        Gemm.linear(part, at, b, null, k, n, m);
        CpuKernels.addInPlace(acc, part, k * m);
    }

    private static float[] grow(float[][] scratch, int i, int size) {
        if (scratch[i] == null || scratch[i].length < size) scratch[i] = new float[size];
        return scratch[i];
    }

    /** dx[rows] += d LayerNorm(x) given d out; dg, db += their gradients when not null. */
    private void layerNormBackward(float[] dx, float[] dout, float[] x, float[] mean, float[] rstd, float[] g,
                                   float[] dg, float[] db, int n) {
        int chunks = Math.min(n, 64);
        IntStream.range(0, chunks).parallel().forEach(q -> {
            int r0 = (int) ((long) n * q / chunks), r1 = (int) ((long) n * (q + 1) / chunks);
            for (int i = r0; i < r1; i++) layerNormBackwardRow(dx, i * C, dout, i * C, x, i * C, mean[i], rstd[i], g, C);
        });
        if (dg != null) for (int i = 0; i < n; i++) layerNormParamGrads(dg, db, dout, i * C, x, i * C, mean[i], rstd[i], C);
    }

    /** out = xhat g + b with xhat = (x - mean) rstd: dx += rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = dout g. */
    static void layerNormBackwardRow(float[] dx, int dxo, float[] dout, int doo, float[] x, int xo, float mean, float rstd,
                                     float[] g, int C) {
        double sd = 0, sdx = 0;
        for (int k = 0; k < C; k++) {
            float xh = (x[xo + k] - mean) * rstd, dn = dout[doo + k] * g[k];
            sd += dn;
            sdx += dn * xh;
        }
        float md = (float) (sd / C), mdx = (float) (sdx / C);
        for (int k = 0; k < C; k++) {
            float xh = (x[xo + k] - mean) * rstd, dn = dout[doo + k] * g[k];
            dx[dxo + k] += rstd * (dn - md - xh * mdx);
        }
    }

    static void layerNormParamGrads(float[] dg, float[] db, float[] dout, int doo, float[] x, int xo, float mean, float rstd, int C) {
        for (int k = 0; k < C; k++) {
            float d = dout[doo + k];
            dg[k] += d * (x[xo + k] - mean) * rstd;
            db[k] += d;
        }
    }

    private static final double GELU_C = Math.sqrt(2.0 / Math.PI), INV_SQRT_2PI = 1.0 / Math.sqrt(2.0 * Math.PI);

    /** dh[i] *= gelu'(pre[i]): tanh form d/dx 0.5x(1 + tanh u) = 0.5(1 + tanh u) + 0.5x(1 - tanh^2 u) u'; erf form Phi(x) + x phi(x). */
    static void geluBackward(float[] dh, float[] pre, int n, boolean exact) {
        int chunks = Math.max(1, Math.min(64, n / 4096));
        IntStream.range(0, chunks).parallel().forEach(q -> {
            int i0 = (int) ((long) n * q / chunks), i1 = (int) ((long) n * (q + 1) / chunks);
            for (int i = i0; i < i1; i++) {
                double x = pre[i], d;
                if (exact) {
                    d = 0.5 * (1 + CpuKernels.erf(x * 0.7071067811865476)) + x * Math.exp(-0.5 * x * x) * INV_SQRT_2PI;
                } else {
                    double u = GELU_C * (x + 0.044715 * x * x * x), t = Math.tanh(u);
                    d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * x * x);
                }
                dh[i] = (float) (dh[i] * d);
            }
        });
    }

    /**
     * Causal attention of one head of one sequence, backward: datt [T, C] (the head's D columns) to dqkv's q, k and
     * v columns of the head (overwritten). Probabilities are recomputed per query row from q and k.
     * With s_j = q.k_j / sqrt(D), p = softmax(s), y = sum p_j v_j:
     * dv_j += p_j dy, dp_j = dy.v_j, ds_j = p_j (dp_j - sum_j p_j dp_j), dq += ds_j k_j / sqrt(D), dk_j += ds_j q / sqrt(D).
     */
    static void attentionHeadBackward(float[] dqkv, float[] datt, float[] qkv, int row0, int t, int c, int nHead, int h,
                                      float[] p, float[] dp) {
        int d = c / nHead, c3 = 3 * c;
        float scale = (float) (1.0 / Math.sqrt(d));
        for (int i = 0; i < t; i++) {
            int o = (row0 + i) * c3 + h * d;
            Arrays.fill(dqkv, o, o + d, 0f);
            Arrays.fill(dqkv, o + c, o + c + d, 0f);
            Arrays.fill(dqkv, o + 2 * c, o + 2 * c + d, 0f);
        }
        for (int i = 0; i < t; i++) {
            int qo = (row0 + i) * c3 + h * d, yo = (row0 + i) * c + h * d;
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j <= i; j++) {
                p[j] = scale * CpuKernels.dot(qkv, qo, qkv, (row0 + j) * c3 + c + h * d, d);
                max = Math.max(max, p[j]);
            }
            double sum = 0;
            for (int j = 0; j <= i; j++) { p[j] = (float) Math.exp(p[j] - max); sum += p[j]; }
            float inv = (float) (1.0 / sum);
            double pdp = 0;
            for (int j = 0; j <= i; j++) {
                p[j] *= inv;
                int vo = (row0 + j) * c3 + 2 * c + h * d;
                dp[j] = CpuKernels.dot(datt, yo, qkv, vo, d);
                pdp += p[j] * dp[j];
                axpy(dqkv, vo, p[j], datt, yo, d);
            }
            for (int j = 0; j <= i; j++) {
                float ds = p[j] * (float) (dp[j] - pdp) * scale;
                int ko = (row0 + j) * c3 + c + h * d;
                axpy(dqkv, qo, ds, qkv, ko, d);
                axpy(dqkv, ko, ds, qkv, qo, d);
            }
        }
    }

    /** y += a x over one head's D columns: whole vectors, then the tail by the scalar fma (the same rounding). */
    private static void axpy(float[] y, int yo, float a, float[] x, int xo, int n) {
        int k = 0, L = CpuKernels.L;
        if (n >= L) {
            FloatVector av = FloatVector.broadcast(CpuKernels.S, a);
            for (; k + L <= n; k += L)
                FloatVector.fromArray(CpuKernels.S, x, xo + k).fma(av, FloatVector.fromArray(CpuKernels.S, y, yo + k)).intoArray(y, yo + k);
        }
        for (; k < n; k++) y[yo + k] = Math.fma(a, x[xo + k], y[yo + k]);
    }

    /** x = wte[token] + wpe[position]: both rows receive the row's gradient. */
    static void embeddingBackward(float[] dwte, float[] dwpe, float[] dx, int[] toks, int rowStart, int C) {
        for (int t = 0; t < toks.length; t++) {
            int o = (rowStart + t) * C, eo = toks[t] * C, po = t * C;
            for (int k = 0; k < C; k++) { dwte[eo + k] += dx[o + k]; dwpe[po + k] += dx[o + k]; }
        }
    }

    /**
     * The backward of the forward's hooks: records d/d(activation after the hook's interventions) when asked,
     * then applies the interventions' derivatives in reverse order (ZERO / REPLACE: 0 for the edited units;
     * SCALE: times the factor; NOISE / NEGATIVE_NOISE add a constant: unchanged).
     */
    private static final class BackHooks {
        final Map<HookPoint, List<Intervention>> byHook;
        final Set<HookPoint> wanted;
        final Map<HookPoint, float[][]> grads;
        final int[] len, row0;
        final int nSeq;

        BackHooks(Map<HookPoint, List<Intervention>> byHook, Set<HookPoint> wanted, Map<HookPoint, float[][]> grads,
                  int[] len, int[] row0, int nSeq) {
            this.byHook = byHook; this.wanted = wanted; this.grads = grads; this.len = len; this.row0 = row0; this.nSeq = nSeq;
        }

        void at(int layer, HookPoint.Kind kind, float[] d, int width) {
            if (byHook.isEmpty() && wanted.isEmpty()) return;
            HookPoint hp = new HookPoint(layer, kind);
            if (wanted.contains(hp)) {
                float[][] per = new float[nSeq][];
                for (int s = 0; s < nSeq; s++) per[s] = Arrays.copyOfRange(d, row0[s] * width, (row0[s] + len[s]) * width);
                grads.put(hp, per);
            }
            List<Intervention> ivs = byHook.get(hp);
            if (ivs == null) return;
            for (int k = ivs.size() - 1; k >= 0; k--) {
                Intervention iv = ivs.get(k);
                if (iv.op() == Intervention.Op.NOISE || iv.op() == Intervention.Op.NEGATIVE_NOISE || iv.op() == Intervention.Op.ADD) continue; // additive: d passes
                float f = iv.op() == Intervention.Op.SCALE ? iv.amount() : 0f;
                int[] units = iv.units(), seqs = iv.sequences();
                int nu = units == null ? width : units.length, count = seqs == null ? nSeq : seqs.length;
                for (int si = 0; si < count; si++) {
                    int s = seqs == null ? si : seqs[si];
                    for (int t = 0; t < len[s]; t++) {
                        int base = (row0[s] + t) * width;
                        if (f == 0f) for (int i = 0; i < nu; i++) d[base + (units == null ? i : units[i])] = 0f;
                        else for (int i = 0; i < nu; i++) d[base + (units == null ? i : units[i])] *= f;
                    }
                }
            }
        }
    }
}
