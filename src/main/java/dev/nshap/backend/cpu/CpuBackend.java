package dev.nshap.backend.cpu;

import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.backend.CounterRng;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.RequestChecks;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * The reference GPT-2 forward pass in plain Java. Every sequence of the batch is packed into one [N, C]
 * activation matrix, so each linear layer is a single GEMM whatever the lengths; attention runs per
 * (sequence, head). Interventions are applied at each hook point in the order given, and caches hold the
 * activations after them.
 */
public final class CpuBackend implements Backend {
    private final GPT2Weights w;
    private final GPT2Config c;
    private final Timings timings = new Timings();
    private final Gemm.Impl gemmImpl;

    /** The GEMM implementation this backend's linear layers run on. */
    public Gemm.Impl gemm() { return gemmImpl; }

    /** Time spent per stage since the last reset: how a benchmark splits the forward pass. */
    public static final class Timings {
        public long gemmNanos, gemmFlop, attentionNanos, unembedNanos, unembedFlop, otherNanos;

        public void reset() { gemmNanos = gemmFlop = attentionNanos = unembedNanos = unembedFlop = otherNanos = 0; }
    }

    public Timings timings() { return timings; }

    private void gemm(float[] out, float[] x, float[] wt, float[] bias, int n, int k, int m) {
        long t0 = System.nanoTime();
        gemmImpl.linear(out, x, wt, bias, n, k, m, resident);
        timings.gemmNanos += System.nanoTime() - t0;
        timings.gemmFlop += 2L * n * k * m;
    }

    /**
     * The weights' native copies for OpenBLAS: the backend's contract is that its weights do not change while it
     * is open (the trainer builds a new backend for each validation), so they are copied once, not per GEMM.
     */
    private final Gemm.Resident resident = new Gemm.Resident();

    @Override public void close() { resident.close(); }

    /** activation_function "gelu" is the erf form; "gelu_new" and "gelu_pytorch_tanh" the tanh approximation. */
    private final boolean exactGelu;

    public CpuBackend(GPT2Weights weights) {
        this(weights, Gemm.active());
    }

    /** A backend whose weight GEMMs run on the given implementation (tests run both). */
    public CpuBackend(GPT2Weights weights, Gemm.Impl gemm) {
        this.gemmImpl = gemm;
        this.w = weights;
        this.c = weights.config;
        this.exactGelu = c.activationFunction().equals("gelu");
    }

    @Override public String name() { return "cpu"; }

    @Override public GPT2Config config() { return c; }

    @Override
    public ForwardResult forward(ForwardRequest req) {
        final int nSeq = req.size();
        int[] len = RequestChecks.lengths(req, c), row0 = new int[nSeq];
        int n = 0;
        for (int s = 0; s < nSeq; s++) {
            row0[s] = n;
            n += len[s];
        }
        final int N = n;
        int start = RequestChecks.startLayer(req, len, c);
        Map<HookPoint, List<Intervention>> byHook = RequestChecks.interventionsByHook(req, c, nSeq, start);
        Map<HookPoint, float[][]> cache = new LinkedHashMap<>();

        Workspace ws = takeWorkspace(N);
        try {
            return forward(req, ws, nSeq, len, row0, N, start, byHook, cache);
        } finally {
            workspace.set(ws);
        }
    }

    private ForwardResult forward(ForwardRequest req, Workspace ws, int nSeq, int[] len, int[] row0, int N, int start,
                                  Map<HookPoint, List<Intervention>> byHook, Map<HookPoint, float[][]> cache) {
        final int C = c.nEmbd(), H = c.nInner();
        float[] x = ws.x;
        if (start == 0) {
            for (int s = 0; s < nSeq; s++) {
                int[] toks = req.tokens.get(s);
                for (int t = 0; t < toks.length; t++) {
                    int o = (row0[s] + t) * C, eo = toks[t] * C, po = t * C;
                    for (int k = 0; k < C; k++) x[o + k] = w.wte[eo + k] + w.wpe[po + k];
                }
            }
        } else {
            for (int s = 0; s < nSeq; s++) {
                float[] r = req.startResidual.get(s);
                System.arraycopy(r, 0, x, row0[s] * C, r.length);
            }
        }

        float[] ln = ws.ln, qkv = ws.qkv, att = ws.att, proj = ws.proj, h = ws.h;
        Hooks hooks = new Hooks(byHook, req.cache, cache, len, row0, nSeq);
        int last = c.nLayer() - 1;
        // After the last layer's attention every op is row-local, so only the scored rows need the attention
        // output, the MLP and the residual: 3/4 of that layer's GEMM work for last-position scoring. Not when a
        // post-attention hook of that layer is cached (the caller wants every row).
        int[][] pos = new int[nSeq][];
        int[] crow0 = new int[nSeq];
        int total = RequestChecks.scoredRows(req, len, c);
        for (int s = 0, r = 0; s < nSeq; s++) {
            pos[s] = RequestChecks.scorePositions(req, s);
            crow0[s] = r;
            if (pos[s] != null) r += pos[s].length;
        }
        boolean trim = start <= last && total > 0 && total < N && !hooks.cachesAfterAttention(last);
        for (int l = start; l < c.nLayer(); l++) {
            GPT2Weights.Block b = w.blocks[l];
            boolean trimmed = trim && l == last;
            hooks.at(l, HookPoint.Kind.RESID_PRE, x, C);
            layerNormRows(ln, x, b.ln1W, b.ln1B, N, C);
            gemm(qkv, ln, b.attnW, b.attnB, N, C, 3 * C);
            long ta = System.nanoTime();
            IntStream.range(0, nSeq * c.nHead()).parallel().forEach(task -> {
                int s = task / c.nHead(), head = task % c.nHead();
                if (!trimmed) CpuKernels.attentionHead(att, qkv, row0[s], len[s], C, c.nHead(), head, new float[len[s]]);
                else if (pos[s] != null && pos[s].length > 0)
                    CpuKernels.attentionHead(att, qkv, row0[s], len[s], C, c.nHead(), head, new float[len[s]], pos[s], crow0[s]);
            });
            timings.attentionNanos += System.nanoTime() - ta;
            if (!trimmed) {
                mlpHalf(l, b, hooks, x, N, ln, att, proj, h);
                continue;
            }
            float[] xs = gatherScored(x, row0, pos, ws.scored(total, C));
            mlpHalf(l, b, new Hooks(byHook, req.cache, cache, len, row0, nSeq, pos, crow0), xs, total, ln, att, proj, h);
            return score(req, ws, xs, total, pos, cache);
        }
        return score(req, ws, gatherScored(x, row0, pos, ws.scored(total, C)), total, pos, cache);
    }

    /** The scored rows of x (sequence by sequence, positions in request order) packed into dst. */
    private float[] gatherScored(float[] x, int[] row0, int[][] pos, float[] dst) {
        final int C = c.nEmbd();
        int r = 0;
        for (int s = 0; s < pos.length; s++) if (pos[s] != null) for (int p : pos[s]) System.arraycopy(x, (row0[s] + p) * C, dst, (r++) * C, C);
        return dst;
    }

    /** A layer from its attention output on: projection, residual, LayerNorm, MLP, residual, over n rows of x. */
    private void mlpHalf(int l, GPT2Weights.Block b, Hooks hooks, float[] x, int n, float[] ln, float[] att, float[] proj, float[] h) {
        final int C = c.nEmbd(), H = c.nInner();
        gemm(proj, att, b.attnProjW, b.attnProjB, n, C, C);
        hooks.at(l, HookPoint.Kind.ATTN_OUT, proj, C);
        CpuKernels.addInPlace(x, proj, n * C);
        hooks.at(l, HookPoint.Kind.RESID_MID, x, C);
        layerNormRows(ln, x, b.ln2W, b.ln2B, n, C);
        gemm(h, ln, b.fcW, b.fcB, n, C, H);
        hooks.at(l, HookPoint.Kind.MLP_PRE, h, H);
        geluRows(h, n, H, exactGelu);
        hooks.at(l, HookPoint.Kind.MLP_POST, h, H);
        gemm(proj, h, b.projW, b.projB, n, H, C);
        hooks.at(l, HookPoint.Kind.MLP_OUT, proj, C);
        CpuKernels.addInPlace(x, proj, n * C);
        hooks.at(l, HookPoint.Kind.RESID_POST, x, C);
    }

    /**
     * Activation buffers, sized for the largest batch seen and reused by the next forward instead of allocated
     * per forward (a 2048-token GPT-2 small batch needs about 60 MB). Two forwards running at once get one each.
     */
    private static final class Workspace {
        int rows, scoredCap, logitsCap;
        float[] x, ln, qkv, att, proj, h, scored, normed, all, lse;

        void ensure(int n, int cc, int hh) {
            if (n <= rows) return;
            rows = Math.max(n, rows + rows / 2);
            x = new float[Math.multiplyExact(rows, cc)]; ln = new float[rows * cc]; att = new float[rows * cc]; proj = new float[rows * cc];
            qkv = new float[Math.multiplyExact(rows, 3 * cc)]; h = new float[Math.multiplyExact(rows, hh)];
        }

        /** The scored rows' residual (and its final LayerNorm and log-sum-exp buffers), total rows. */
        float[] scored(int total, int cc) {
            if (total > scoredCap) {
                scored = new float[Math.multiplyExact(total, cc)]; normed = new float[total * cc]; lse = new float[2 * total];
                scoredCap = total;
            }
            return scored;
        }

        /** The logits of every scored row are kept only up to 64 MB: all-position scoring of big batches allocates. */
        float[] logits(int total, int v) {
            long n = (long) total * v;
            if (n > (16 << 20)) return new float[Math.multiplyExact(total, v)];
            if (total > logitsCap) { all = new float[(int) n]; logitsCap = total; }
            return all;
        }
    }

    private final java.util.concurrent.atomic.AtomicReference<Workspace> workspace = new java.util.concurrent.atomic.AtomicReference<>();

    private Workspace takeWorkspace(int n) {
        Workspace ws = workspace.getAndSet(null);
        if (ws == null) ws = new Workspace();
        ws.ensure(n, c.nEmbd(), c.nInner());
        return ws;
    }

    /** Logits at the total scored rows, packed in {@code rows} in scoring order ({@code pos}: each sequence's positions). */
    private ForwardResult score(ForwardRequest req, Workspace ws, float[] rows, int total, int[][] pos, Map<HookPoint, float[][]> cache) {
        final int C = c.nEmbd(), V = c.vocabSize(), nSeq = pos.length;
        float[][] logits = new float[nSeq][], targetLp = new float[nSeq][];
        int[][] top1 = new int[nSeq][];
        if (total == 0) return new ForwardResult(logits, targetLp, top1, cache);
        float[] all = ws.logits(total, V);
        float[] normed = ws.normed;
        layerNormRows(normed, rows, w.lnfW, w.lnfB, total, C);
        long tu = System.nanoTime();
        gemmImpl.unembed(all, normed, w.lmHead, total, C, V, resident);
        timings.unembedNanos += System.nanoTime() - tu;
        timings.unembedFlop += 2L * total * C * V;
        // max, argmax and log-sum-exp of every scored row, rows over the cores
        float[] lse = ws.lse;
        int[] best = new int[total];
        IntStream.range(0, total).parallel().forEach(i -> best[i] = CpuKernels.logSoftmaxRow(all, i * V, V, lse, i));
        int r = 0;
        for (int s = 0; s < nSeq; s++) {
            if (pos[s] == null) continue;
            int np = pos[s].length;
            int[] tg = RequestChecks.targets(req, s);
            top1[s] = new int[np];
            if (tg != null) targetLp[s] = new float[np];
            for (int i = 0; i < np; i++) {
                top1[s][i] = best[r + i];
                if (tg != null) targetLp[s][i] = all[(r + i) * V + tg[i]] - lse[2 * (r + i)] - lse[2 * (r + i) + 1];
            }
            if (req.wantLogits) {
                logits[s] = new float[np * V];
                System.arraycopy(all, r * V, logits[s], 0, np * V);
            }
            r += np;
        }
        return new ForwardResult(logits, targetLp, top1, cache);
    }

    private void layerNormRows(float[] out, float[] x, float[] g, float[] b, int n, int cc) {
        int chunks = Math.min(n, 64);
        IntStream.range(0, chunks).parallel().forEach(q -> {
            int r0 = (int) ((long) n * q / chunks), r1 = (int) ((long) n * (q + 1) / chunks);
            CpuKernels.layerNormRows(out, x, g, b, r0, r1, cc, c.layerNormEpsilon());
        });
    }

    private static void geluRows(float[] h, int n, int width, boolean exact) {
        int chunks = Math.min(n, 64);
        IntStream.range(0, chunks).parallel().forEach(q -> {
            int r0 = (int) ((long) n * q / chunks), r1 = (int) ((long) n * (q + 1) / chunks);
            if (exact) CpuKernels.geluErf(h, r0 * width, (r1 - r0) * width);
            else CpuKernels.geluNew(h, r0 * width, (r1 - r0) * width);
        });
    }

    /** Applies the interventions registered at a hook point, then caches it if asked. */
    final class Hooks {
        final Map<HookPoint, List<Intervention>> byHook;
        final java.util.Set<HookPoint> wanted;
        final Map<HookPoint, float[][]> cache;
        final int[] len, row0;
        final int nSeq;
        /** Null: a sequence's rows are all its positions, from row0. Else only positions scored[s], from row0[s]. */
        final int[][] scored;

        Hooks(Map<HookPoint, List<Intervention>> byHook, java.util.Set<HookPoint> wanted, Map<HookPoint, float[][]> cache,
              int[] len, int[] row0, int nSeq) {
            this(byHook, wanted, cache, len, row0, nSeq, null, null);
        }

        Hooks(Map<HookPoint, List<Intervention>> byHook, java.util.Set<HookPoint> wanted, Map<HookPoint, float[][]> cache,
              int[] len, int[] row0, int nSeq, int[][] scored, int[] scoredRow0) {
            this.byHook = byHook; this.wanted = wanted; this.cache = cache; this.len = len; this.nSeq = nSeq;
            this.scored = scored;
            this.row0 = scored == null ? row0 : scoredRow0;
        }

        boolean cachesAfterAttention(int layer) {
            for (HookPoint hp : wanted) if (hp.layer() == layer && hp.kind() != HookPoint.Kind.RESID_PRE) return true;
            return false;
        }

        void at(int layer, HookPoint.Kind kind, float[] a, int width) {
            HookPoint hp = new HookPoint(layer, kind);
            List<Intervention> ivs = byHook.get(hp);
            if (ivs != null) for (Intervention iv : ivs) apply(iv, a, width);
            if (wanted.contains(hp)) {
                if (scored != null) throw new IllegalStateException("cached hook " + hp + " on the scored rows only");
                float[][] per = new float[nSeq][];
                for (int s = 0; s < nSeq; s++) {
                    per[s] = new float[len[s] * width];
                    System.arraycopy(a, row0[s] * width, per[s], 0, per[s].length);
                }
                cache.put(hp, per);
            }
        }

        void apply(Intervention iv, float[] a, int width) {
            int[] units = iv.units();
            int nu = units == null ? width : units.length;
            int[] seqs = iv.sequences();
            int count = seqs == null ? nSeq : seqs.length;
            float[] z = iv.op() == Intervention.Op.NEGATIVE_NOISE ? new float[nu] : null;
            for (int si = 0; si < count; si++) {
                int s = seqs == null ? si : seqs[si];
                int first = iv.firstPosition(len[s]), end = iv.endPosition(len[s]);
                if (scored == null) {
                    for (int t = first; t < end; t++) applyAt(iv, a, (row0[s] + t) * width, t, units, nu, z);
                } else if (scored[s] != null) {
                    for (int i = 0; i < scored[s].length; i++) {
                        int t = scored[s][i];
                        if (t >= first && t < end) applyAt(iv, a, (row0[s] + i) * width, t, units, nu, z);
                    }
                }
            }
        }

        /** One intervention at one row (position t of its sequence, which seeds the noise ops). */
        private void applyAt(Intervention iv, float[] a, int base, int t, int[] units, int nu, float[] z) {
            switch (iv.op()) {
                case ZERO -> { for (int i = 0; i < nu; i++) a[base + (units == null ? i : units[i])] = 0f; }
                case REPLACE -> {
                    for (int i = 0; i < nu; i++) { int u = units == null ? i : units[i]; a[base + u] = iv.vector()[u]; }
                }
                case SCALE -> { for (int i = 0; i < nu; i++) a[base + (units == null ? i : units[i])] *= iv.amount(); }
                case NOISE -> {
                    for (int i = 0; i < nu; i++) {
                        int u = units == null ? i : units[i];
                        a[base + u] += iv.amount() * CounterRng.gaussian(iv.seed(), t, u);
                    }
                }
                case NEGATIVE_NOISE -> {
                    float max = Float.NEGATIVE_INFINITY;
                    for (int i = 0; i < nu; i++) {
                        z[i] = CounterRng.gaussian(iv.seed(), t, units == null ? i : units[i]);
                        if (z[i] > max) max = z[i];
                    }
                    for (int i = 0; i < nu; i++) a[base + (units == null ? i : units[i])] += iv.amount() * (z[i] - max);
                }
                case ADD -> {
                    for (int i = 0; i < nu; i++) { int u = units == null ? i : units[i]; a[base + u] += iv.amount() * iv.vector()[u]; }
                }
            }
        }
    }
}
