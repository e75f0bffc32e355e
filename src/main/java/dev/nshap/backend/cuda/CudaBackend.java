package dev.nshap.backend.cuda;

import dev.nshap.backend.RequestChecks;

import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.HookPoint.Kind;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.cuda.CudaKernels.GemmKind;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import jcuda.CudaException;
import jcuda.driver.CUdeviceptr;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * GPT-2 on the GPU in the nshap kernels (cuda/), with the CPU backend's semantics: packed sequences of any
 * lengths, interventions at every hook point (per sequence: a batch of coalitions is one launch sequence), cached
 * hooks, prefix reuse and the unembedding only at the scored positions.
 *
 * <p>Two kinds of prefix reuse: the request's own ({@code startLayer} + {@code startResidual}), and within a
 * request, sequences with identical tokens share every layer before the first intervened one, which runs once per
 * distinct prompt and is then broadcast (a batch of 16 coalitions x 64 prompts runs those layers on 64 rows).
 *
 * <p>Precision: fp32 (fp32 SIMT GEMMs, for exact comparison with the CPU) or bf16 (bf16 weights and GEMM
 * operands on tensor cores, fp32 accumulation, fp32 residual stream, statistics and softmax).
 */
public final class CudaBackend implements Backend {
    /** Rows of logits per unembedding launch: bounds the [rows, V] scratch. */
    static final int LOGIT_SLAB = 256;
    /** Launch-grid limits: 65535 blocks of 64 rows in the fp32 GEMM's y, one attention block row per sequence. */
    static final long MAX_ROWS = 1L << 21;
    static final int MAX_SEQS_PER_CHUNK = 65535;

    private final GPT2Config c;
    private final CudaDevice dev;
    private final CudaKernels k;
    private final boolean bf16;
    private final CublasGemm cublas;
    private final int act;
    private final List<CUdeviceptr> weightBuffers = new ArrayList<>();
    private final CUdeviceptr wte, wpe, lnfW, lnfB, lmHead;
    private final DevBlock[] blocks;
    private Workspace ws;
    private long maxRowsOverride = 0;
    private boolean chunkNoted;

    private static final class DevBlock {
        CUdeviceptr ln1W, ln1B, attnW, attnB, attnProjW, attnProjB, ln2W, ln2B, fcW, fcB, projW, projB;
    }

    public CudaBackend(GPT2Weights w, String precision) {
        this(w, precision, "cublas".equalsIgnoreCase(System.getProperty("nshap.gemm", "own")));
    }

    /**
     * @param precision fp32 | bf16
     * @param useCublas the weight GEMMs through cuBLAS instead of the own kernels
     */
    public CudaBackend(GPT2Weights w, String precision, boolean useCublas) {
        this(w, precision, useCublas, null);
    }

    /** device: null = the GPU ({@link CudaDevice#get()}); tests pass a host emulation. */
    public CudaBackend(GPT2Weights w, String precision, boolean useCublas, CudaDevice device) {
        this.c = w.config;
        this.bf16 = switch (precision == null ? "fp32" : precision.toLowerCase()) {
            case "fp32" -> false;
            case "bf16" -> true;
            default -> throw new NshapException("unknown precision '" + precision + "' (expected fp32 or bf16)");
        };
        if (c.nEmbd() % 8 != 0) throw new NshapException("CUDA backend: n_embd " + c.nEmbd() + " is not a multiple of 8");
        if (!CudaKernels.headDimSupported(c.headDim()))
            throw new NshapException("CUDA backend: head dim " + c.headDim() + " is not one of 16, 32, 64, 128");
        this.act = c.activationFunction().equals("gelu") ? CudaKernels.ACT_GELU_ERF : CudaKernels.ACT_GELU_TANH;
        this.dev = device != null ? device : CudaDevice.get();
        this.k = new CudaKernels(dev);
        long need = weightBytes();
        long free = dev.memInfo()[0];
        if (need > free)
            throw new NshapException("GPU " + dev.name + " is too small for this model: the weights need " + mib(need)
                    + " MiB, " + mib(free) + " MiB are free");
        try {
            int C = c.nEmbd(), H = c.nInner();
            wte = keep(dev.upload(w.wte));
            wpe = keep(dev.upload(w.wpe));
            lnfW = keep(dev.upload(w.lnfW));
            lnfB = keep(dev.upload(w.lnfB));
            if (bf16) lmHead = keep(dev.upload(CudaKernels.toBf16(w.lmHead)));
            else lmHead = w.tied() ? wte : keep(dev.upload(w.lmHead));
            blocks = new DevBlock[c.nLayer()];
            for (int l = 0; l < blocks.length; l++) {
                GPT2Weights.Block b = w.blocks[l];
                DevBlock d = blocks[l] = new DevBlock();
                d.ln1W = keep(dev.upload(b.ln1W)); d.ln1B = keep(dev.upload(b.ln1B));
                d.ln2W = keep(dev.upload(b.ln2W)); d.ln2B = keep(dev.upload(b.ln2B));
                d.attnB = keep(dev.upload(b.attnB)); d.attnProjB = keep(dev.upload(b.attnProjB));
                d.fcB = keep(dev.upload(b.fcB)); d.projB = keep(dev.upload(b.projB));
                d.attnW = keep(weight(b.attnW, C, 3 * C));
                d.attnProjW = keep(weight(b.attnProjW, C, C));
                d.fcW = keep(weight(b.fcW, C, H));
                d.projW = keep(weight(b.projW, H, C));
            }
        } catch (CudaException e) {
            close();
            throw new NshapException("GPU " + dev.name + ": uploading the weights failed: " + CudaDevice.oneLine(e.getMessage()));
        }
        this.cublas = useCublas ? new CublasGemm(k) : null;
    }

    /** A Conv1D weight [in, out]: as is in fp32 mode, transposed to bf16 [out, in] for the tensor-core kernel. */
    private CUdeviceptr weight(float[] a, int in, int out) {
        return bf16 ? dev.upload(CudaKernels.transposeBf16(a, in, out)) : dev.upload(a);
    }

    private CUdeviceptr keep(CUdeviceptr p) {
        weightBuffers.add(p);
        return p;
    }

    private long weightBytes() {
        long C = c.nEmbd(), H = c.nInner(), V = c.vocabSize(), e = bf16 ? 2 : 4;
        long perBlock = 4 * C * 4 + (3 * C + C + H + C) * 4 + (3 * C * C + C * C + 2 * C * H) * e;
        return (V * C + (long) c.nPositions() * C + 2 * C) * 4 + (bf16 ? V * C * 2 : 0) + c.nLayer() * perBlock;
    }

    static long mib(long b) { return b >> 20; }

    @Override public String name() { return "cuda"; }

    @Override public GPT2Config config() { return c; }

    public String precision() { return bf16 ? "bf16" : "fp32"; }

    public CudaDevice device() { return dev; }

    /** Caps the rows per chunk (tests use it to exercise the chunked path on a big GPU); 0 = plan from free memory. */
    public void setMaxRowsPerChunk(long rows) { this.maxRowsOverride = rows; }

    @Override public synchronized void close() {
        dev.makeCurrent();
        if (ws != null) { ws.close(); ws = null; }
        for (CUdeviceptr p : weightBuffers) dev.free(p);
        weightBuffers.clear();
        if (cublas != null) cublas.close();
    }

    // ------------------------------------------------------------------ forward

    /** One forward at a time: the workspace is shared. */
    @Override
    public synchronized ForwardResult forward(ForwardRequest req) {
        dev.makeCurrent();
        final int nSeq = req.size();
        int[] len = RequestChecks.lengths(req, c);
        int start = RequestChecks.startLayer(req, len, c);
        Map<HookPoint, List<Intervention>> byHook = RequestChecks.interventionsByHook(req, c, nSeq, start);
        int scored = RequestChecks.scoredRows(req, len, c);
        int firstIntervened = c.nLayer();
        for (HookPoint hp : byHook.keySet()) firstIntervened = Math.min(firstIntervened, hp.layer());

        Map<HookPoint, float[][]> cache = new LinkedHashMap<>();
        for (HookPoint hp : req.cache) cache.put(hp, new float[nSeq][]);
        float[][] logits = new float[nSeq][], targetLp = new float[nSeq][];
        int[][] top1 = new int[nSeq][];
        Out out = new Out(logits, targetLp, top1, cache);

        long maxRows = planRows(req, len, scored);
        try {
            int s0 = 0;
            while (s0 < nSeq) {
                long rows = 0;
                int s1 = s0;
                while (s1 < nSeq && rows + len[s1] <= maxRows && s1 - s0 < MAX_SEQS_PER_CHUNK) rows += len[s1++];
                if (s1 < nSeq && !chunkNoted && maxRowsOverride == 0) {
                    chunkNoted = true;
                    System.err.println("nshap: CUDA: the batch does not fit in GPU memory at once; running it in chunks of up to "
                            + maxRows + " token rows");
                }
                runChunk(req, len, s0, s1, byHook, firstIntervened, out);
                s0 = s1;
            }
            dev.synchronize();
        } catch (CudaException e) {
            throw new IllegalStateException("CUDA error in forward: " + CudaDevice.oneLine(e.getMessage()), e);
        }
        return new ForwardResult(logits, targetLp, top1, cache);
    }

    private record Out(float[][] logits, float[][] targetLp, int[][] top1, Map<HookPoint, float[][]> cache) {}

    // ------------------------------------------------------------------ memory plan

    /** Bytes of device workspace per token row. */
    long bytesPerRow() {
        long C = c.nEmbd(), H = c.nInner(), e = bf16 ? 2 : 4;
        return 2 * C * 4       // residual stream, twice (broadcast of the shared prefix)
                + C * e        // LayerNorm output
                + 3 * C * 4    // qkv
                + C * e        // attention output
                + C * 4        // hook_attn_out / hook_mlp_out when needed on their own
                + H * 4        // mlp.hook_pre (and post in fp32 mode)
                + (bf16 ? H * 2 : 0) // mlp.hook_post as the bf16 c_proj operand
                + 10 * 4;      // per-row ints: tokens, positions, sequences, row map, distinct-prompt layout
    }

    /** Scoring scratch plus headroom for the intervention tables and the driver. */
    long fixedBytes() {
        return (long) LOGIT_SLAB * (c.vocabSize() + c.nEmbd()) * 4 + 12L * LOGIT_SLAB * CudaKernels.summaryTiles(false, c.vocabSize())
                + (128L << 20);
    }

    /** The most token rows one chunk may hold: all of them when they fit, else what free memory allows. */
    private long planRows(ForwardRequest req, int[] len, int scored) {
        long total = 0;
        int longest = 0;
        for (int l : len) { total += l; longest = Math.max(longest, l); }
        long have = ws == null ? 0 : ws.rows;
        long free = dev.memInfo()[0] + (ws == null ? 0 : ws.bytes);
        long budget = (long) ((free - fixedBytes()) * 0.9);
        long fit = Math.max(0, budget / bytesPerRow());
        fit = Math.min(fit, MAX_ROWS);
        if (maxRowsOverride > 0) fit = Math.min(fit, Math.max(maxRowsOverride, longest));
        if (fit < longest)
            throw new NshapException("GPU " + dev.name + " is too small: one sequence of " + longest + " tokens needs "
                    + mib(longest * bytesPerRow() + fixedBytes()) + " MiB of activations, " + mib(free) + " MiB are free");
        long rows = Math.min(total, fit);
        if (ws == null || ws.rows < rows) {
            if (ws != null) ws.close();
            ws = null;
            ws = new Workspace((int) Math.max(rows, have));
        }
        return rows;
    }

    /** Activation buffers for up to {@code rows} token rows, kept across calls. */
    private final class Workspace implements AutoCloseable {
        final int rows;
        final long bytes;
        final CUdeviceptr residA, residB, xln, qkv, z, tmp, h, hact, logits, lnOut;
        final CUdeviceptr tokens, positions, rowSeq, seqStart, seqLen, rowMap, uTokens, uPositions, uSeqStart, uSeqLen;
        final CUdeviceptr scoredRows, targets, logProb, top1, tgtLogit, pMax, pSum, pArg;
        private final List<CUdeviceptr> all = new ArrayList<>();

        Workspace(int rows) {
            this.rows = rows;
            long C = c.nEmbd(), H = c.nInner(), e = bf16 ? 2 : 4, R = rows;
            try {
                residA = a(R * C * 4); residB = a(R * C * 4);
                xln = a(R * C * e); qkv = a(R * 3 * C * 4); z = a(R * C * e); tmp = a(R * C * 4);
                h = a(R * H * 4); hact = bf16 ? a(R * H * 2) : null;
                logits = a((long) LOGIT_SLAB * c.vocabSize() * 4);
                lnOut = a((long) LOGIT_SLAB * C * e);
                tokens = a(R * 4); positions = a(R * 4); rowSeq = a(R * 4); seqStart = a(R * 4); seqLen = a(R * 4);
                rowMap = a(R * 4); uTokens = a(R * 4); uPositions = a(R * 4); uSeqStart = a(R * 4); uSeqLen = a(R * 4);
                scoredRows = a(LOGIT_SLAB * 4); targets = a(LOGIT_SLAB * 4); logProb = a(LOGIT_SLAB * 4); top1 = a(LOGIT_SLAB * 4);
                tgtLogit = a(LOGIT_SLAB * 4);
                long tiles = (long) LOGIT_SLAB * CudaKernels.summaryTiles(false, c.vocabSize());
                pMax = a(tiles * 4); pSum = a(tiles * 4); pArg = a(tiles * 4);
            } catch (CudaException ex) {
                close();
                throw new NshapException("GPU " + dev.name + ": cannot allocate the workspace for " + rows
                        + " token rows (" + CudaDevice.oneLine(ex.getMessage()) + ")");
            }
            bytes = R * bytesPerRow() + (long) LOGIT_SLAB * (c.vocabSize() + C) * 4
                    + 12L * LOGIT_SLAB * CudaKernels.summaryTiles(false, c.vocabSize());
        }

        private CUdeviceptr a(long bytes) {
            CUdeviceptr p = dev.alloc(bytes);
            all.add(p);
            return p;
        }

        @Override public void close() {
            for (CUdeviceptr p : all) dev.free(p);
            all.clear();
        }
    }

    // ------------------------------------------------------------------ one chunk

    /** Packed rows of some sequences: sequence s at rows seqStart[s] .. seqStart[s] + seqLen[s]. */
    private static final class Layout {
        int nSeq, rows, maxLen;
        int[] seqStart, seqLen;
        CUdeviceptr dTokens, dPositions, dSeqStart, dSeqLen, dRowSeq;
    }

    private Layout layout(List<int[]> toks, CUdeviceptr dTok, CUdeviceptr dPos, CUdeviceptr dStart, CUdeviceptr dLen,
                          CUdeviceptr dRowSeq) {
        Layout L = new Layout();
        L.nSeq = toks.size();
        L.seqStart = new int[L.nSeq];
        L.seqLen = new int[L.nSeq];
        int rows = 0;
        for (int s = 0; s < L.nSeq; s++) {
            L.seqStart[s] = rows;
            L.seqLen[s] = toks.get(s).length;
            L.maxLen = Math.max(L.maxLen, L.seqLen[s]);
            rows += L.seqLen[s];
        }
        L.rows = rows;
        int[] tk = new int[rows], pos = new int[rows], rs = new int[rows];
        for (int s = 0; s < L.nSeq; s++) {
            int[] t = toks.get(s);
            for (int i = 0; i < t.length; i++) {
                int r = L.seqStart[s] + i;
                tk[r] = t[i];
                pos[r] = i;
                rs[r] = s;
            }
        }
        dev.copyIn(dTok, tk, rows);
        dev.copyIn(dPos, pos, rows);
        dev.copyIn(dStart, L.seqStart, L.nSeq);
        dev.copyIn(dLen, L.seqLen, L.nSeq);
        if (dRowSeq != null) dev.copyIn(dRowSeq, rs, rows);
        L.dTokens = dTok; L.dPositions = dPos; L.dSeqStart = dStart; L.dSeqLen = dLen; L.dRowSeq = dRowSeq;
        return L;
    }

    private void runChunk(ForwardRequest req, int[] len, int s0, int s1, Map<HookPoint, List<Intervention>> byHook,
                          int firstIntervened, Out out) {
        final int C = c.nEmbd(), n = s1 - s0;
        List<int[]> toks = req.tokens.subList(s0, s1);
        Layout full = layout(toks, ws.tokens, ws.positions, ws.seqStart, ws.seqLen, ws.rowSeq);

        // Distinct prompts share every layer before the first intervened one.
        int[] uniqOf = null;
        Layout uniq = null;
        if (req.startLayer == 0 && firstIntervened > 0 && n > 1) {
            Map<Key, Integer> seen = new HashMap<>();
            List<int[]> distinct = new ArrayList<>();
            uniqOf = new int[n];
            for (int s = 0; s < n; s++) {
                int[] t = toks.get(s);
                Integer u = seen.get(new Key(t));
                if (u == null) { u = distinct.size(); seen.put(new Key(t), u); distinct.add(t); }
                uniqOf[s] = u;
            }
            if (distinct.size() < n) {
                uniq = layout(distinct, ws.uTokens, ws.uPositions, ws.uSeqStart, ws.uSeqLen, null);
                int[] map = new int[full.rows];
                for (int s = 0; s < n; s++)
                    for (int i = 0; i < full.seqLen[s]; i++) map[full.seqStart[s] + i] = uniq.seqStart[uniqOf[s]] + i;
                dev.copyIn(ws.rowMap, map, full.rows);
            } else uniqOf = null;
        }

        Map<HookPoint, CudaKernels.Ops> ops = new HashMap<>();
        try {
            for (Map.Entry<HookPoint, List<Intervention>> e : byHook.entrySet()) {
                InterventionTable t = InterventionTable.build(e.getValue(), e.getKey().width(c), s0, n, Arrays.copyOfRange(len, s0, s1));
                if (t != null) ops.put(e.getKey(), new CudaKernels.Ops(dev, t));
            }
            CUdeviceptr resid = ws.residA, spare = ws.residB;
            Layout cur = uniq != null ? uniq : full;
            if (req.startLayer == 0) {
                k.embedding(resid, cur.dTokens, cur.dPositions, wte, wpe, cur.rows, C);
            } else {
                float[] x = new float[full.rows * C];
                for (int s = 0; s < n; s++) System.arraycopy(req.startResidual.get(s0 + s), 0, x, full.seqStart[s] * C, len[s0 + s] * C);
                dev.copyIn(resid, x, x.length);
            }
            for (int l = req.startLayer; l < c.nLayer(); l++) {
                if (cur == uniq && l == firstIntervened) {
                    k.gatherRows(spare, resid, ws.rowMap, full.rows, C);
                    CUdeviceptr t = resid; resid = spare; spare = t;
                    cur = full;
                }
                block(l, cur, cur == uniq ? uniqOf : null, resid, ops, req, s0, out);
            }
            if (cur == uniq) {
                k.gatherRows(spare, resid, ws.rowMap, full.rows, C);
                resid = spare;
            }
            score(req, s0, n, full, resid, out);
        } finally {
            for (CudaKernels.Ops o : ops.values()) o.close();
        }
    }

    /** Token arrays as hash keys. */
    private record Key(int[] t) {
        @Override public boolean equals(Object o) { return o instanceof Key k && Arrays.equals(t, k.t); }
        @Override public int hashCode() { return Arrays.hashCode(t); }
    }

    private void gemmW(CUdeviceptr out, CUdeviceptr a, CUdeviceptr w, CUdeviceptr bias, int M, int N, int K, boolean acc) {
        if (cublas != null) cublas.gemm(bf16, bf16, out, a, w, bias, M, N, K, acc);
        else k.gemm(bf16 ? GemmKind.BF16_TC : GemmKind.F32_NN, out, a, w, bias, M, N, K, acc);
    }

    private void block(int l, Layout L, int[] uniqOf, CUdeviceptr resid, Map<HookPoint, CudaKernels.Ops> ops,
                       ForwardRequest req, int s0, Out out) {
        final int C = c.nEmbd(), H = c.nInner(), R = L.rows;
        final float eps = (float) c.layerNormEpsilon();
        DevBlock b = blocks[l];
        Hook hook = (kind, buf, width) -> {
            HookPoint hp = new HookPoint(l, kind);
            CudaKernels.Ops o = ops.get(hp);
            if (o != null) k.intervene(buf, R, width, L.dRowSeq, L.dPositions, o);
            capture(hp, buf, width, L, uniqOf, req, s0, out);
        };
        hook.at(Kind.RESID_PRE, resid, C);
        k.layerNorm(ws.xln, bf16, resid, null, b.ln1W, b.ln1B, R, C, eps);
        gemmW(ws.qkv, ws.xln, b.attnW, b.attnB, R, 3 * C, C, false);
        k.attention(ws.z, bf16, ws.qkv, L.dSeqStart, L.dSeqLen, L.nSeq, L.maxLen, c.nHead(), C, null);
        if (needs(l, Kind.ATTN_OUT, ops, req)) {
            gemmW(ws.tmp, ws.z, b.attnProjW, b.attnProjB, R, C, C, false);
            hook.at(Kind.ATTN_OUT, ws.tmp, C);
            k.residualAdd(resid, ws.tmp, (long) R * C);
        } else gemmW(resid, ws.z, b.attnProjW, b.attnProjB, R, C, C, true);
        hook.at(Kind.RESID_MID, resid, C);
        k.layerNorm(ws.xln, bf16, resid, null, b.ln2W, b.ln2B, R, C, eps);
        gemmW(ws.h, ws.xln, b.fcW, b.fcB, R, H, C, false);
        hook.at(Kind.MLP_PRE, ws.h, H);
        HookPoint post = new HookPoint(l, Kind.MLP_POST);
        boolean cachePost = req.cache.contains(post);
        // fp32: in place in h. bf16: the c_proj operand in hact, and an fp32 copy back in h when it is cached.
        k.geluIntervene(bf16 ? ws.hact : ws.h, bf16, bf16 && cachePost ? ws.h : null, ws.h, R, H, act,
                L.dRowSeq, L.dPositions, ops.get(post));
        capture(post, ws.h, H, L, uniqOf, req, s0, out);
        CUdeviceptr mlpIn = bf16 ? ws.hact : ws.h;
        if (needs(l, Kind.MLP_OUT, ops, req)) {
            gemmW(ws.tmp, mlpIn, b.projW, b.projB, R, C, H, false);
            hook.at(Kind.MLP_OUT, ws.tmp, C);
            k.residualAdd(resid, ws.tmp, (long) R * C);
        } else gemmW(resid, mlpIn, b.projW, b.projB, R, C, H, true);
        hook.at(Kind.RESID_POST, resid, C);
    }

    private interface Hook { void at(Kind kind, CUdeviceptr buf, int width); }

    private static boolean needs(int l, Kind kind, Map<HookPoint, CudaKernels.Ops> ops, ForwardRequest req) {
        HookPoint hp = new HookPoint(l, kind);
        return ops.containsKey(hp) || req.cache.contains(hp);
    }

    /** Copies a hook buffer back per sequence (through uniqOf while the rows are the shared distinct prompts). */
    private void capture(HookPoint hp, CUdeviceptr buf, int width, Layout L, int[] uniqOf, ForwardRequest req, int s0, Out out) {
        if (!req.cache.contains(hp)) return;
        float[] all = dev.download(buf, L.rows * width);
        float[][] per = out.cache.get(hp);
        int n = uniqOf != null ? uniqOf.length : L.nSeq;
        for (int s = 0; s < n; s++) {
            int src = uniqOf != null ? uniqOf[s] : s;
            per[s0 + s] = Arrays.copyOfRange(all, L.seqStart[src] * width, (L.seqStart[src] + L.seqLen[src]) * width);
        }
    }

    /**
     * The final LayerNorm, unembedding and log-softmax summary at the scored rows only, LOGIT_SLAB rows at a time
     * (so the [rows, V] logits scratch stays bounded whatever the batch).
     */
    private void score(ForwardRequest req, int s0, int n, Layout L, CUdeviceptr resid, Out out) {
        final int C = c.nEmbd(), V = c.vocabSize();
        int total = 0;
        for (int s = 0; s < n; s++) { int[] p = RequestChecks.scorePositions(req, s0 + s); if (p != null) total += p.length; }
        if (total == 0) return;
        int[] rows = new int[total], tg = new int[total];
        int r = 0;
        for (int s = 0; s < n; s++) {
            int[] p = RequestChecks.scorePositions(req, s0 + s);
            if (p == null) continue;
            int[] t = RequestChecks.targets(req, s0 + s);
            for (int i = 0; i < p.length; i++, r++) {
                rows[r] = L.seqStart[s] + p[i];
                tg[r] = t == null ? -1 : t[i];
            }
        }
        float[][] logits = new float[n][];
        int[] firstRow = new int[n];
        int q = 0;
        for (int s = 0; s < n; s++) {
            int[] p = RequestChecks.scorePositions(req, s0 + s);
            firstRow[s] = q;
            if (p == null) continue;
            if (req.wantLogits) logits[s] = new float[p.length * V];
            q += p.length;
        }
        float[] slab = req.wantLogits ? new float[Math.min(total, LOGIT_SLAB) * V] : null;
        float[] lp = new float[total], part = new float[LOGIT_SLAB];
        int[] t1 = new int[total], partTop = new int[LOGIT_SLAB];
        for (int off = 0; off < total; off += LOGIT_SLAB) {
            int m = Math.min(LOGIT_SLAB, total - off);
            dev.copyIn(ws.scoredRows, Arrays.copyOfRange(rows, off, off + m), m);
            dev.copyIn(ws.targets, Arrays.copyOfRange(tg, off, off + m), m);
            k.layerNorm(ws.lnOut, bf16, resid, ws.scoredRows, lnfW, lnfB, m, C, (float) c.layerNormEpsilon());
            if (!req.wantLogits && cublas == null) {
                // no logits wanted: reduce them in the GEMM's epilogue instead of storing them
                k.unembedSummary(bf16, ws.lnOut, lmHead, m, V, C, ws.targets, ws.tgtLogit, ws.pMax, ws.pSum, ws.pArg,
                        ws.logProb, ws.top1, null);
            } else {
                if (cublas != null) cublas.gemm(bf16, true, ws.logits, ws.lnOut, lmHead, null, m, V, C, false);
                else k.gemm(bf16 ? GemmKind.BF16_TC : GemmKind.F32_NT, ws.logits, ws.lnOut, lmHead, null, m, V, C, false);
                k.logSoftmaxSummary(ws.logits, ws.targets, ws.logProb, ws.top1, null, m, V);
            }
            dev.copyOut(part, ws.logProb, m);
            dev.copyOut(partTop, ws.top1, m);
            System.arraycopy(part, 0, lp, off, m);
            System.arraycopy(partTop, 0, t1, off, m);
            if (req.wantLogits) {
                dev.copyOut(slab, ws.logits, m * V);
                for (int s = 0; s < n; s++) {
                    if (logits[s] == null) continue;
                    int a0 = Math.max(firstRow[s], off), a1 = Math.min(firstRow[s] + logits[s].length / V, off + m);
                    if (a0 < a1) System.arraycopy(slab, (a0 - off) * V, logits[s], (a0 - firstRow[s]) * V, (a1 - a0) * V);
                }
            }
        }
        r = 0;
        for (int s = 0; s < n; s++) {
            int[] p = RequestChecks.scorePositions(req, s0 + s);
            if (p == null) continue;
            out.top1[s0 + s] = Arrays.copyOfRange(t1, r, r + p.length);
            if (RequestChecks.targets(req, s0 + s) != null) out.targetLp[s0 + s] = Arrays.copyOfRange(lp, r, r + p.length);
            if (req.wantLogits) out.logits[s0 + s] = logits[s];
            r += p.length;
        }
    }
}
