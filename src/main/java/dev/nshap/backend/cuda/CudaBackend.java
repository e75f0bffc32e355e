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
    public static final int LOGIT_SLAB = 256;
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
    private final InterventionArena arena;
    private long maxRowsOverride = 0;
    /**
     * Layer stacks as CUDA graphs (-Dnshap.cuda.graphs=false launches kernel by kernel, for comparison). Off under
     * CUDA_LAUNCH_BLOCKING=1, which synchronises after every launch and so cannot capture a stream.
     */
    private boolean graphs = !"false".equals(System.getProperty("nshap.cuda.graphs"))
            && !"1".equals(System.getenv("CUDA_LAUNCH_BLOCKING"));
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
        this.arena = new InterventionArena(dev);
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

    /** Within a forward, identical prompts run the layers before the first intervention once (see the class comment). */
    @Override public boolean sharesPrefixes() { return true; }

    /** The token rows one forward can hold in the device memory free now (the caller's figure is ignored). */
    @Override public synchronized int tokenBudget(int requested) {
        dev.makeCurrent();
        return (int) Math.min(Integer.MAX_VALUE, fitRows());
    }

    /** Launch the layer stack as a CUDA graph where it can (default), or kernel by kernel. */
    public void setGraphs(boolean on) { this.graphs = on; }

    @Override public synchronized void close() {
        dev.makeCurrent();
        dev.forgetGraph();
        if (ws != null) { ws.close(); ws = null; }
        arena.close();
        dev.freePinned(staging);
        staging = null;
        stagingBytes = 0;
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
                // the pinned staging and the arena are rewritten per chunk: the previous chunk's copies must be done
                if (s0 > 0) dev.synchronize();
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

    /**
     * Every device buffer of the workspace. {@link #bytes} is the one statement of their sizes: the planner, the
     * allocation and the memory figures all derive from it.
     */
    enum Buf {
        RESID_A, RESID_B, XLN, QKV, Z, TMP, H, HACT,
        TOKENS, POSITIONS, ROW_SEQ, SEQ_START, SEQ_LEN, ROW_MAP, U_TOKENS, U_POSITIONS, U_SEQ_START, U_SEQ_LEN,
        SCORED_ROWS, TARGETS, LOG_PROB, TOP1,
        LOGITS, LN_OUT, TGT_LOGIT, P_MAX, P_SUM, P_ARG
    }

    /** Bytes of one workspace buffer for {@code rows} token rows. */
    long bytes(Buf b, long rows) {
        long C = c.nEmbd(), H = c.nInner(), V = c.vocabSize(), e = bf16 ? 2 : 4, S = LOGIT_SLAB;
        long tiles = CudaKernels.summaryTiles(false, c.vocabSize()); // the fp32 tiles are the narrower: the most partials
        return switch (b) {
            case RESID_A, RESID_B -> rows * C * 4;  // residual stream, twice (broadcast of the shared prefix)
            case XLN, Z -> rows * C * e;            // LayerNorm output, attention output: GEMM operands
            case QKV -> rows * 3 * C * 4;
            case TMP -> rows * C * 4;               // hook_attn_out / hook_mlp_out when needed on their own
            case H -> rows * H * 4;                 // mlp.hook_pre (and post in fp32 mode)
            case HACT -> bf16 ? rows * H * 2 : 0;   // mlp.hook_post as the bf16 c_proj operand
            // per-row ints: layouts (full and distinct prompts), and the scored rows (at most one per row)
            case TOKENS, POSITIONS, ROW_SEQ, SEQ_START, SEQ_LEN, ROW_MAP, U_TOKENS, U_POSITIONS, U_SEQ_START, U_SEQ_LEN,
                 SCORED_ROWS, TARGETS, LOG_PROB, TOP1 -> rows * 4;
            case LOGITS -> S * V * 4;               // one slab of logits when they are wanted
            case LN_OUT -> S * C * e;
            case TGT_LOGIT -> S * 4;
            case P_MAX, P_SUM, P_ARG -> S * tiles * 4;
        };
    }

    /** Headroom for the intervention arena and the driver, beyond the workspace. */
    static final long HEADROOM = 128L << 20;

    /** Bytes of device workspace per token row. */
    long bytesPerRow() {
        long s = 0;
        for (Buf b : Buf.values()) s += bytes(b, 1) - bytes(b, 0);
        return s;
    }

    /** The part of the workspace that does not grow with the rows, plus the headroom. */
    long fixedBytes() {
        long s = HEADROOM;
        for (Buf b : Buf.values()) s += bytes(b, 0);
        return s;
    }

    /** The most token rows one chunk can hold in the memory free now (the current workspace counts as free). */
    private long fitRows() {
        long free = dev.memInfo()[0] + (ws == null ? 0 : ws.bytes);
        long budget = (long) ((free - fixedBytes()) * 0.9);
        return Math.min(Math.max(0, budget / bytesPerRow()), MAX_ROWS);
    }

    /** The most token rows one chunk may hold: all of them when they fit, else what free memory allows. */
    private long planRows(ForwardRequest req, int[] len, int scored) {
        long total = 0;
        int longest = 0;
        for (int l : len) { total += l; longest = Math.max(longest, l); }
        long fit = fitRows();
        if (maxRowsOverride > 0) fit = Math.min(fit, Math.max(maxRowsOverride, longest));
        if (fit < longest) {
            long free = dev.memInfo()[0] + (ws == null ? 0 : ws.bytes);
            throw new NshapException("GPU " + dev.name + " is too small: one sequence of " + longest + " tokens needs "
                    + mib(longest * bytesPerRow() + fixedBytes()) + " MiB of activations, " + mib(free) + " MiB are free");
        }
        long rows = Math.min(total, fit);
        if (ws == null || ws.rows < rows) {
            long have = ws == null ? 0 : ws.rows;
            if (ws != null) ws.close();
            ws = null;
            ws = new Workspace((int) Math.max(rows, have));
        }
        ensureStaging(rows, req.startLayer > 0);
        return rows;
    }

    /** Device buffers for up to {@code rows} token rows, kept across calls and only grown. */
    private final class Workspace implements AutoCloseable {
        final int rows;
        final long bytes;
        private final java.util.EnumMap<Buf, CUdeviceptr> buf = new java.util.EnumMap<>(Buf.class);

        Workspace(int rows) {
            this.rows = rows;
            long total = 0;
            try {
                for (Buf b : Buf.values()) {
                    long n = bytes(b, rows);
                    if (n == 0) continue;
                    buf.put(b, dev.alloc(n));
                    total += n;
                }
            } catch (CudaException ex) {
                close();
                throw new NshapException("GPU " + dev.name + ": cannot allocate the workspace for " + rows
                        + " token rows (" + CudaDevice.oneLine(ex.getMessage()) + ")");
            }
            bytes = total;
        }

        CUdeviceptr get(Buf b) { return buf.get(b); }

        @Override public void close() {
            for (CUdeviceptr p : buf.values()) dev.free(p);
            buf.clear();
        }
    }

    // ------------------------------------------------------------------ host staging

    /**
     * Page-locked host memory for every per-forward input (layouts, scored rows, a start residual) and the
     * per-row outputs, so that all transfers are async copies on the stream. Grown, never shrunk.
     */
    private CudaDevice.Pinned staging;
    private long stagingBytes, stagingAt;

    /** Input ints per row: 3 row arrays, 2 per-sequence arrays, the row map, 4 for the distinct prompts, 2 scored. */
    private static final int STAGED_INTS_PER_ROW = 12;
    /** Output ints per row: log p and top-1 of the scored rows. */
    private static final int OUT_INTS_PER_ROW = 2;

    private void ensureStaging(long rows, boolean residual) {
        long need = 4 * rows * (STAGED_INTS_PER_ROW + OUT_INTS_PER_ROW + (residual ? c.nEmbd() : 0));
        if (need > stagingBytes) {
            dev.freePinned(staging);
            staging = dev.allocPinned(need);
            stagingBytes = need;
        }
    }

    /** Copies written into the staging buffer, queued together by {@link #flushCopies()}: dst, offset, bytes. */
    private final List<Object[]> pending = new ArrayList<>();

    /** Writes a[0..n) into the staging buffer, for dst. */
    private void stage(CUdeviceptr dst, int[] a, int n) {
        java.nio.ByteBuffer b = staging.buf;
        int o = (int) stagingAt;
        for (int i = 0; i < n; i++) b.putInt(o + 4 * i, a[i]);
        pending.add(new Object[]{dst, stagingAt, 4L * n});
        stagingAt += 4L * n;
    }

    private void stage(CUdeviceptr dst, float[] a, int n) {
        java.nio.ByteBuffer b = staging.buf;
        int o = (int) stagingAt;
        for (int i = 0; i < n; i++) b.putFloat(o + 4 * i, a[i]);
        pending.add(new Object[]{dst, stagingAt, 4L * n});
        stagingAt += 4L * n;
    }

    /** Every host-to-device copy of the chunk, queued on the stream in one go (the intervention arena's included). */
    private void flushCopies() {
        for (Object[] c : pending) dev.copyInAsync((CUdeviceptr) c[0], staging, (Long) c[1], (Long) c[2]);
        pending.clear();
        arena.queueCopy();
    }

    // ------------------------------------------------------------------ profile

    /**
     * Where a forward's time goes (off unless {@link #setProfiling}): host preparation (wall clock, up to the
     * first copy), then on the stream, by CUDA events: host-to-device copies, the kernels, device-to-host copies.
     */
    public static final class Profile {
        public long forwards;
        public double hostPrepMs, h2dMs, gpuMs, d2hMs, hostPostMs;

        public String describe() {
            double n = Math.max(1, forwards);
            return String.format("host prep %.3f ms, H2D %.3f ms, GPU %.3f ms, D2H %.3f ms, host post %.3f ms (per forward, %d forwards)",
                    hostPrepMs / n, h2dMs / n, gpuMs / n, d2hMs / n, hostPostMs / n, forwards);
        }
    }

    private Profile profile;
    private Object[] events;

    /** Starts (on) or stops (off) timing every forward's phases; returns the profile being filled. */
    public synchronized Profile setProfiling(boolean on) {
        if (!on) {
            Profile p = profile;
            profile = null;
            if (events != null) for (Object e : events) dev.destroyEvent(e);
            events = null;
            return p;
        }
        if (events == null) events = new Object[]{dev.createEvent(), dev.createEvent(), dev.createEvent(), dev.createEvent()};
        return profile = new Profile();
    }

    private void mark(int i) { if (profile != null) dev.recordEvent(events[i]); }

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
        stage(dTok, tk, rows);
        stage(dPos, pos, rows);
        stage(dStart, L.seqStart, L.nSeq);
        stage(dLen, L.seqLen, L.nSeq);
        if (dRowSeq != null) stage(dRowSeq, rs, rows);
        L.dTokens = dTok; L.dPositions = dPos; L.dSeqStart = dStart; L.dSeqLen = dLen; L.dRowSeq = dRowSeq;
        return L;
    }

    private void runChunk(ForwardRequest req, int[] len, int s0, int s1, Map<HookPoint, List<Intervention>> byHook,
                          int firstIntervened, Out out) {
        final int C = c.nEmbd(), n = s1 - s0;
        long t0 = System.nanoTime();
        stagingAt = 0;
        List<int[]> toks = req.tokens.subList(s0, s1);
        Layout full = layout(toks, ws.get(Buf.TOKENS), ws.get(Buf.POSITIONS), ws.get(Buf.SEQ_START), ws.get(Buf.SEQ_LEN),
                ws.get(Buf.ROW_SEQ));

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
                uniq = layout(distinct, ws.get(Buf.U_TOKENS), ws.get(Buf.U_POSITIONS), ws.get(Buf.U_SEQ_START),
                        ws.get(Buf.U_SEQ_LEN), null);
                int[] map = new int[full.rows];
                for (int s = 0; s < n; s++)
                    for (int i = 0; i < full.seqLen[s]; i++) map[full.seqStart[s] + i] = uniq.seqStart[uniqOf[s]] + i;
                stage(ws.get(Buf.ROW_MAP), map, full.rows);
            } else uniqOf = null;
        }

        Map<HookPoint, InterventionTable> tables = new LinkedHashMap<>();
        for (Map.Entry<HookPoint, List<Intervention>> e : byHook.entrySet()) {
            InterventionTable t = InterventionTable.build(e.getValue(), e.getKey().width(c), s0, n, Arrays.copyOfRange(len, s0, s0 + n));
            if (t != null) tables.put(e.getKey(), t);
        }
        Map<HookPoint, CudaKernels.Ops> ops = arena.load(tables);

        CUdeviceptr resid = ws.get(Buf.RESID_A), spare = ws.get(Buf.RESID_B);
        Layout cur = uniq != null ? uniq : full;
        if (req.startLayer > 0) {
            float[] x = new float[full.rows * C];
            for (int s = 0; s < n; s++) System.arraycopy(req.startResidual.get(s0 + s), 0, x, full.seqStart[s] * C, len[s0 + s] * C);
            stage(resid, x, x.length);
        }
        Scoring sc = prepareScore(req, s0, n, full);
        if (profile != null) profile.hostPrepMs += (System.nanoTime() - t0) / 1e6;
        mark(0);
        flushCopies();
        mark(1);
        // The layer stack is launches only (no cached hooks to copy back, no cuBLAS on its own stream): one CUDA
        // graph, replayed while a game's calls keep their shapes.
        boolean graph = graphs && req.cache.isEmpty() && cublas == null;
        if (graph) dev.beginRecording();
        if (req.startLayer == 0) k.embedding(resid, cur.dTokens, cur.dPositions, wte, wpe, cur.rows, C);
        for (int l = req.startLayer; l < c.nLayer(); l++) {
            if (cur == uniq && l == firstIntervened) {
                k.gatherRows(spare, resid, ws.get(Buf.ROW_MAP), full.rows, C);
                CUdeviceptr t = resid; resid = spare; spare = t;
                cur = full;
            }
            block(l, cur, cur == uniq ? uniqOf : null, resid, ops, req, s0, out);
        }
        if (cur == uniq) {
            k.gatherRows(spare, resid, ws.get(Buf.ROW_MAP), full.rows, C);
            resid = spare;
        }
        if (graph) dev.endRecording();
        score(sc, resid);
        mark(2);
        downloadScores(sc);
        mark(3);
        dev.synchronize();
        long t1 = System.nanoTime();
        finishScore(sc, req, s0, out);
        if (profile != null) {
            profile.forwards++;
            profile.h2dMs += dev.elapsedMs(events[0], events[1]);
            profile.gpuMs += dev.elapsedMs(events[1], events[2]);
            profile.d2hMs += dev.elapsedMs(events[2], events[3]);
            profile.hostPostMs += (System.nanoTime() - t1) / 1e6;
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
        k.layerNorm(ws.get(Buf.XLN), bf16, resid, null, b.ln1W, b.ln1B, R, C, eps);
        gemmW(ws.get(Buf.QKV), ws.get(Buf.XLN), b.attnW, b.attnB, R, 3 * C, C, false);
        k.attention(ws.get(Buf.Z), bf16, ws.get(Buf.QKV), L.dSeqStart, L.dSeqLen, L.nSeq, L.maxLen, c.nHead(), C, null);
        if (needs(l, Kind.ATTN_OUT, ops, req)) {
            gemmW(ws.get(Buf.TMP), ws.get(Buf.Z), b.attnProjW, b.attnProjB, R, C, C, false);
            hook.at(Kind.ATTN_OUT, ws.get(Buf.TMP), C);
            k.residualAdd(resid, ws.get(Buf.TMP), (long) R * C);
        } else gemmW(resid, ws.get(Buf.Z), b.attnProjW, b.attnProjB, R, C, C, true);
        hook.at(Kind.RESID_MID, resid, C);
        k.layerNorm(ws.get(Buf.XLN), bf16, resid, null, b.ln2W, b.ln2B, R, C, eps);
        gemmW(ws.get(Buf.H), ws.get(Buf.XLN), b.fcW, b.fcB, R, H, C, false);
        hook.at(Kind.MLP_PRE, ws.get(Buf.H), H);
        HookPoint post = new HookPoint(l, Kind.MLP_POST);
        boolean cachePost = req.cache.contains(post);
        // fp32: in place in h. bf16: the c_proj operand in hact, and an fp32 copy back in h when it is cached.
        k.geluIntervene(bf16 ? ws.get(Buf.HACT) : ws.get(Buf.H), bf16, bf16 && cachePost ? ws.get(Buf.H) : null, ws.get(Buf.H), R, H, act,
                L.dRowSeq, L.dPositions, ops.get(post));
        capture(post, ws.get(Buf.H), H, L, uniqOf, req, s0, out);
        CUdeviceptr mlpIn = bf16 ? ws.get(Buf.HACT) : ws.get(Buf.H);
        if (needs(l, Kind.MLP_OUT, ops, req)) {
            gemmW(ws.get(Buf.TMP), mlpIn, b.projW, b.projB, R, C, H, false);
            hook.at(Kind.MLP_OUT, ws.get(Buf.TMP), C);
            k.residualAdd(resid, ws.get(Buf.TMP), (long) R * C);
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

    /** The scored rows of a chunk, packed: their row indices and targets, and where each sequence's begin. */
    private static final class Scoring {
        int n, total;
        int[] firstRow;
        float[][] logits;
        boolean wantLogits;
    }

    /** Packs and stages the scored rows and targets (one upload per forward). */
    private Scoring prepareScore(ForwardRequest req, int s0, int n, Layout L) {
        final int V = c.vocabSize();
        Scoring sc = new Scoring();
        sc.n = n;
        sc.wantLogits = req.wantLogits;
        for (int s = 0; s < n; s++) { int[] p = RequestChecks.scorePositions(req, s0 + s); if (p != null) sc.total += p.length; }
        int total = sc.total;
        int[] rows = new int[total], tg = new int[total];
        sc.firstRow = new int[n];
        sc.logits = new float[n][];
        int r = 0;
        for (int s = 0; s < n; s++) {
            int[] p = RequestChecks.scorePositions(req, s0 + s);
            sc.firstRow[s] = r;
            if (p == null) continue;
            if (req.wantLogits) sc.logits[s] = new float[p.length * V];
            int[] t = RequestChecks.targets(req, s0 + s);
            for (int i = 0; i < p.length; i++, r++) {
                rows[r] = L.seqStart[s] + p[i];
                tg[r] = t == null ? -1 : t[i];
            }
        }
        if (total > 0) {
            stage(ws.get(Buf.SCORED_ROWS), rows, total);
            stage(ws.get(Buf.TARGETS), tg, total);
        }
        return sc;
    }

    /**
     * The final LayerNorm, unembedding and log-softmax summary at the scored rows only, LOGIT_SLAB rows at a time
     * (so the [rows, V] logits scratch stays bounded whatever the batch); per slab the kernels read views at the
     * slab's offset.
     */
    private void score(Scoring sc, CUdeviceptr resid) {
        final int C = c.nEmbd(), V = c.vocabSize(), total = sc.total;
        if (total == 0) return;
        CUdeviceptr dRows = ws.get(Buf.SCORED_ROWS), dTg = ws.get(Buf.TARGETS), dLp = ws.get(Buf.LOG_PROB), dTop = ws.get(Buf.TOP1);
        CUdeviceptr logitsBuf = ws.get(Buf.LOGITS), lnOut = ws.get(Buf.LN_OUT);
        float[] slab = sc.wantLogits ? new float[Math.min(total, LOGIT_SLAB) * V] : null;
        for (int off = 0; off < total; off += LOGIT_SLAB) {
            int m = Math.min(LOGIT_SLAB, total - off);
            long at = 4L * off;
            CUdeviceptr sRows = dev.slice(dRows, at), sTg = dev.slice(dTg, at), sLp = dev.slice(dLp, at), sTop = dev.slice(dTop, at);
            k.layerNorm(lnOut, bf16, resid, sRows, lnfW, lnfB, m, C, (float) c.layerNormEpsilon());
            if (!sc.wantLogits && cublas == null) {
                // no logits wanted: reduce them in the GEMM's epilogue instead of storing them
                k.unembedSummary(bf16, lnOut, lmHead, m, V, C, sTg, ws.get(Buf.TGT_LOGIT), ws.get(Buf.P_MAX),
                        ws.get(Buf.P_SUM), ws.get(Buf.P_ARG), sLp, sTop, null);
            } else {
                if (cublas != null) cublas.gemm(bf16, true, logitsBuf, lnOut, lmHead, null, m, V, C, false);
                else k.gemm(bf16 ? GemmKind.BF16_TC : GemmKind.F32_NT, logitsBuf, lnOut, lmHead, null, m, V, C, false);
                k.logSoftmaxSummary(logitsBuf, sTg, sLp, sTop, null, m, V);
            }
            if (sc.wantLogits) {
                dev.copyOut(slab, logitsBuf, m * V); // the slab's scratch is reused: this copy waits for it
                for (int s = 0; s < sc.n; s++) {
                    float[] lg = sc.logits[s];
                    if (lg == null) continue;
                    int a0 = Math.max(sc.firstRow[s], off), a1 = Math.min(sc.firstRow[s] + lg.length / V, off + m);
                    if (a0 < a1) System.arraycopy(slab, (a0 - off) * V, lg, (a0 - sc.firstRow[s]) * V, (a1 - a0) * V);
                }
            }
        }
    }

    /** Queues the scored rows' log p and top-1 into the staging buffer (read after the sync). */
    private long lpAt, topAt;

    private void downloadScores(Scoring sc) {
        lpAt = stagingAt;
        topAt = lpAt + 4L * sc.total;
        dev.copyOutAsync(staging, lpAt, ws.get(Buf.LOG_PROB), 4L * sc.total);
        dev.copyOutAsync(staging, topAt, ws.get(Buf.TOP1), 4L * sc.total);
    }

    private void finishScore(Scoring sc, ForwardRequest req, int s0, Out out) {
        java.nio.ByteBuffer b = staging.buf;
        for (int s = 0; s < sc.n; s++) {
            int[] p = RequestChecks.scorePositions(req, s0 + s);
            if (p == null) continue;
            int r = sc.firstRow[s];
            int[] t1 = new int[p.length];
            for (int i = 0; i < p.length; i++) t1[i] = b.getInt((int) (topAt + 4L * (r + i)));
            out.top1[s0 + s] = t1;
            if (RequestChecks.targets(req, s0 + s) != null) {
                float[] lp = new float[p.length];
                for (int i = 0; i < p.length; i++) lp[i] = b.getFloat((int) (lpAt + 4L * (r + i)));
                out.targetLp[s0 + s] = lp;
            }
            if (req.wantLogits) out.logits[s0 + s] = sc.logits[s];
        }
    }

}
