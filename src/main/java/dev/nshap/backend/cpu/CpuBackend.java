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

    /** Time spent per stage since the last reset: how a benchmark splits the forward pass. */
    public static final class Timings {
        public long gemmNanos, gemmFlop, attentionNanos, unembedNanos, unembedFlop, otherNanos;

        public void reset() { gemmNanos = gemmFlop = attentionNanos = unembedNanos = unembedFlop = otherNanos = 0; }
    }

    public Timings timings() { return timings; }

    private void gemm(float[] out, float[] x, float[] wt, float[] bias, int n, int k, int m) {
        long t0 = System.nanoTime();
        CpuKernels.matmul(out, x, wt, bias, n, k, m);
        timings.gemmNanos += System.nanoTime() - t0;
        timings.gemmFlop += 2L * n * k * m;
    }

    /** activation_function "gelu" is the erf form; "gelu_new" and "gelu_pytorch_tanh" the tanh approximation. */
    private final boolean exactGelu;

    public CpuBackend(GPT2Weights weights) {
        this.w = weights;
        this.c = weights.config;
        this.exactGelu = c.activationFunction().equals("gelu");
    }

    @Override public String name() { return "cpu"; }

    @Override public GPT2Config config() { return c; }

    @Override
    public ForwardResult forward(ForwardRequest req) {
        final int nSeq = req.size();
        final int C = c.nEmbd(), H = c.nInner();
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

        float[] x = new float[N * C];
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

        float[] ln = new float[N * C], qkv = new float[N * 3 * C], att = new float[N * C], proj = new float[N * C], h = new float[N * H];
        Hooks hooks = new Hooks(byHook, req.cache, cache, len, row0, nSeq);
        for (int l = start; l < c.nLayer(); l++) {
            GPT2Weights.Block b = w.blocks[l];
            hooks.at(l, HookPoint.Kind.RESID_PRE, x, C);
            layerNormRows(ln, x, b.ln1W, b.ln1B, N, C);
            gemm(qkv, ln, b.attnW, b.attnB, N, C, 3 * C);
            long ta = System.nanoTime();
            IntStream.range(0, nSeq * c.nHead()).parallel().forEach(task -> {
                int s = task / c.nHead(), head = task % c.nHead();
                CpuKernels.attentionHead(att, qkv, row0[s], len[s], C, c.nHead(), head, new float[len[s]]);
            });
            timings.attentionNanos += System.nanoTime() - ta;
            gemm(proj, att, b.attnProjW, b.attnProjB, N, C, C);
            hooks.at(l, HookPoint.Kind.ATTN_OUT, proj, C);
            CpuKernels.addInPlace(x, proj, N * C);
            hooks.at(l, HookPoint.Kind.RESID_MID, x, C);
            layerNormRows(ln, x, b.ln2W, b.ln2B, N, C);
            gemm(h, ln, b.fcW, b.fcB, N, C, H);
            hooks.at(l, HookPoint.Kind.MLP_PRE, h, H);
            geluRows(h, N, H, exactGelu);
            hooks.at(l, HookPoint.Kind.MLP_POST, h, H);
            gemm(proj, h, b.projW, b.projB, N, H, C);
            hooks.at(l, HookPoint.Kind.MLP_OUT, proj, C);
            CpuKernels.addInPlace(x, proj, N * C);
            hooks.at(l, HookPoint.Kind.RESID_POST, x, C);
        }
        return score(req, x, len, row0, nSeq, cache);
    }

    private ForwardResult score(ForwardRequest req, float[] x, int[] len, int[] row0, int nSeq, Map<HookPoint, float[][]> cache) {
        final int C = c.nEmbd(), V = c.vocabSize();
        int total = RequestChecks.scoredRows(req, len, c);
        float[][] logits = new float[nSeq][], targetLp = new float[nSeq][];
        int[][] top1 = new int[nSeq][];
        if (total == 0) return new ForwardResult(logits, targetLp, top1, cache);
        float[] rows = new float[total * C];
        int r = 0;
        for (int s = 0; s < nSeq; s++) {
            int[] pos = RequestChecks.scorePositions(req, s);
            if (pos == null) continue;
            for (int p : pos) System.arraycopy(x, (row0[s] + p) * C, rows, (r++) * C, C);
        }
        float[] normed = new float[total * C];
        CpuKernels.layerNorm(normed, rows, w.lnfW, w.lnfB, total, C, c.layerNormEpsilon());
        float[] all = new float[Math.multiplyExact(total, V)];
        long tu = System.nanoTime();
        CpuKernels.unembed(all, normed, w.lmHead, total, C, V);
        timings.unembedNanos += System.nanoTime() - tu;
        timings.unembedFlop += 2L * total * C * V;
        r = 0;
        for (int s = 0; s < nSeq; s++) {
            int[] pos = RequestChecks.scorePositions(req, s);
            if (pos == null) continue;
            int[] tg = RequestChecks.targets(req, s);
            top1[s] = new int[pos.length];
            if (tg != null) targetLp[s] = new float[pos.length];
            for (int i = 0; i < pos.length; i++) {
                int o = (r + i) * V;
                int best = 0;
                float max = all[o];
                for (int v = 1; v < V; v++) if (all[o + v] > max) { max = all[o + v]; best = v; }
                top1[s][i] = best;
                if (tg != null) {
                    double sum = 0;
                    for (int v = 0; v < V; v++) sum += Math.exp(all[o + v] - max);
                    targetLp[s][i] = (float) (all[o + tg[i]] - max - Math.log(sum));
                }
            }
            if (req.wantLogits) {
                logits[s] = new float[pos.length * V];
                System.arraycopy(all, r * V, logits[s], 0, pos.length * V);
            }
            r += pos.length;
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
    private final class Hooks {
        final Map<HookPoint, List<Intervention>> byHook;
        final java.util.Set<HookPoint> wanted;
        final Map<HookPoint, float[][]> cache;
        final int[] len, row0;
        final int nSeq;

        Hooks(Map<HookPoint, List<Intervention>> byHook, java.util.Set<HookPoint> wanted, Map<HookPoint, float[][]> cache,
              int[] len, int[] row0, int nSeq) {
            this.byHook = byHook; this.wanted = wanted; this.cache = cache; this.len = len; this.row0 = row0; this.nSeq = nSeq;
        }

        void at(int layer, HookPoint.Kind kind, float[] a, int width) {
            HookPoint hp = new HookPoint(layer, kind);
            List<Intervention> ivs = byHook.get(hp);
            if (ivs != null) for (Intervention iv : ivs) apply(iv, a, width);
            if (wanted.contains(hp)) {
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
                for (int t = iv.firstPosition(len[s]), end = iv.endPosition(len[s]); t < end; t++) {
                    int base = (row0[s] + t) * width;
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
    }
}
