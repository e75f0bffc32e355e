package dev.nshap.backend.cuda;

import dev.nshap.model.SafeTensors;
import dev.nshap.backend.CounterRng;
import jcuda.driver.CUdeviceptr;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * A stand-in GPU for tests on machines without one: device memory is host byte buffers and every kernel of
 * cuda/nshap.cu is a plain Java loop with the kernel's contract (same arguments, grid conventions, bf16 rounding of
 * the GEMM operands). It lets the CUDA backend's host side (layouts, prefix broadcast, intervention tables, hook
 * copies, chunking, scoring slabs) be checked against the CPU backend everywhere. The kernels themselves are
 * checked on a GPU (the *KernelTest classes) and in cuda/sim.
 */
final class HostDevice extends CudaDevice {
    private final Map<CUdeviceptr, ByteBuffer> mem = new IdentityHashMap<>();
    /** Views from {@link #slice}: not allocations, dropped with their base. */
    private final Map<CUdeviceptr, ByteBuffer> views = new IdentityHashMap<>();
    private final Map<CUdeviceptr, CUdeviceptr> viewBase = new IdentityHashMap<>();
    private final long capacity;
    private long used;
    /** What the tests count: launches (per kernel), device allocations, rows embedded, async copies. */
    int launches, allocations, pinnedAllocations, asyncCopies;
    long embeddedRows, weightGemmRows;
    final Map<String, Integer> launchesOf = new HashMap<>();

    HostDevice(long capacityBytes) {
        super("host emulation", 227 * 1024);
        this.capacity = capacityBytes;
    }

    @Override public void makeCurrent() {}
    @Override public void synchronize() {}
    @Override public void zero(CUdeviceptr p, long bytes) { ByteBuffer b = buf(p); for (int i = 0; i < bytes; i++) b.put(i, (byte) 0); }
    @Override public long[] memInfo() { return new long[]{capacity - used, capacity}; }

    @Override public CUdeviceptr alloc(long bytes) {
        bytes = Math.max(bytes, 16);
        if (used + bytes > capacity) throw new jcuda.CudaException("CUDA_ERROR_OUT_OF_MEMORY");
        CUdeviceptr p = new CUdeviceptr();
        mem.put(p, ByteBuffer.allocate(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN));
        used += bytes;
        allocations++;
        addr.put(p, nextAddress);
        nextAddress += (bytes + 255) & ~255L;
        return p;
    }

    @Override public void free(CUdeviceptr p) {
        if (p != null && views.containsKey(p)) throw new IllegalStateException("a slice freed on its own");
        ByteBuffer b = p == null ? null : mem.remove(p);
        if (b != null) used -= b.capacity();
        addr.remove(p);
        viewBase.entrySet().removeIf(e -> {
            if (e.getValue() != p) return false;
            views.remove(e.getKey());
            addr.remove(e.getKey());
            return true;
        });
    }

    /** Made-up device addresses (every stand-in pointer's native pointer is 0), so graph keys compare as on a GPU. */
    private final Map<CUdeviceptr, Long> addr = new IdentityHashMap<>();
    private long nextAddress = 1L << 32;

    @Override protected long address(CUdeviceptr p) {
        Long a = addr.get(p);
        if (a == null) throw new IllegalStateException("not a live device pointer");
        return a;
    }

    /** The stand-in's graph is the launch list itself, issued again on every replay. */
    @Override protected Object captureGraph(java.util.List<Launch> seq) { return new java.util.ArrayList<>(seq); }

    @SuppressWarnings("unchecked")
    @Override protected void launchGraph(Object g) {
        for (Launch l : (java.util.List<Launch>) g) issue(l.kernel(), l.gx(), l.gy(), l.gz(), l.block(), l.smem(), l.args());
    }

    @Override protected void destroyGraph(Object g) {}

    /** Events: the wall clock when recorded (the stand-in runs every launch at once). */
    @Override public Object createEvent() { return new long[1]; }
    @Override public void recordEvent(Object e) { ((long[]) e)[0] = System.nanoTime(); }
    @Override public double elapsedMs(Object a, Object b) { return (((long[]) b)[0] - ((long[]) a)[0]) / 1e6; }
    @Override public void destroyEvent(Object e) {}

    @Override public CUdeviceptr slice(CUdeviceptr base, long byteOffset) {
        ByteBuffer b = buf(base).duplicate();
        b.position(Math.toIntExact(byteOffset));
        CUdeviceptr p = new CUdeviceptr();
        views.put(p, b.slice().order(ByteOrder.LITTLE_ENDIAN));
        addr.put(p, address(base) + byteOffset);
        viewBase.put(p, viewBase.getOrDefault(base, base));
        return p;
    }

    @Override public Pinned allocPinned(long bytes) {
        pinnedAllocations++;
        bytes = Math.max(bytes, 16);
        return new Pinned(null, ByteBuffer.allocate(Math.toIntExact(bytes)), bytes);
    }

    @Override public void freePinned(Pinned p) {}

    @Override public void copyInAsync(CUdeviceptr dst, Pinned src, long srcOff, long bytes) {
        asyncCopies++;
        ByteBuffer d = buf(dst);
        for (int i = 0; i < bytes; i++) d.put(i, src.buf.get((int) srcOff + i));
    }

    @Override public void copyOutAsync(Pinned dst, long dstOff, CUdeviceptr src, long bytes) {
        asyncCopies++;
        ByteBuffer s = buf(src);
        for (int i = 0; i < bytes; i++) dst.buf.put((int) dstOff + i, s.get(i));
    }

    long allocated() { return used; }

    private ByteBuffer buf(Object p) {
        if (p == null || p == NULL) return null;
        ByteBuffer b = mem.get(p);
        if (b == null) b = views.get(p);
        if (b == null) throw new IllegalStateException("not a live device pointer");
        return b;
    }

    @Override public void copyIn(CUdeviceptr dst, float[] a, int n) { ByteBuffer b = buf(dst); for (int i = 0; i < n; i++) b.putFloat(4 * i, a[i]); }
    @Override public void copyIn(CUdeviceptr dst, short[] a, int n) { ByteBuffer b = buf(dst); for (int i = 0; i < n; i++) b.putShort(2 * i, a[i]); }
    @Override public void copyIn(CUdeviceptr dst, int[] a, int n) { ByteBuffer b = buf(dst); for (int i = 0; i < n; i++) b.putInt(4 * i, a[i]); }
    @Override public void copyOut(float[] a, CUdeviceptr src, int n) { ByteBuffer b = buf(src); for (int i = 0; i < n; i++) a[i] = b.getFloat(4 * i); }
    @Override public void copyOut(int[] a, CUdeviceptr src, int n) { ByteBuffer b = buf(src); for (int i = 0; i < n; i++) a[i] = b.getInt(4 * i); }
    @Override public void copyOut(short[] a, CUdeviceptr src, int n) { ByteBuffer b = buf(src); for (int i = 0; i < n; i++) a[i] = b.getShort(2 * i); }

    // ------------------------------------------------------------------ kernels

    private static float f(ByteBuffer b, long i) { return b.getFloat((int) (4 * i)); }
    private static void f(ByteBuffer b, long i, float v) { b.putFloat((int) (4 * i), v); }
    private static int n(ByteBuffer b, long i) { return b.getInt((int) (4 * i)); }
    private static float h(ByteBuffer b, long i) { return SafeTensors.bf16ToFloat(b.getShort((int) (2 * i))); }
    private static void out(ByteBuffer b, boolean bf16, long i, float v) {
        if (bf16) b.putShort((int) (2 * i), SafeTensors.floatToBf16(v)); else f(b, i, v);
    }

    @Override protected void issue(String k, int gx, int gy, int gz, int block, int smem, Object... a) {
        launches++;
        launchesOf.merge(k, 1, Integer::sum);
        if (smem > 48 * 1024 && smem > 227 * 1024) throw new IllegalStateException(k + ": shared memory " + smem);
        if (block > 1024 || block % 32 != 0) throw new IllegalStateException(k + ": block " + block);
        if (gy > 65535 || gz > 65535) throw new IllegalStateException(k + ": grid " + gx + "x" + gy + "x" + gz);
        switch (k) {
            case "embedding" -> {
                ByteBuffer o = buf(a[0]), tok = buf(a[1]), pos = buf(a[2]), wte = buf(a[3]), wpe = buf(a[4]);
                int rows = (Integer) a[5], C = (Integer) a[6];
                embeddedRows += rows;
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < C; c++)
                        f(o, (long) r * C + c, f(wte, (long) n(tok, r) * C + c) + f(wpe, (long) n(pos, r) * C + c));
            }
            case "layernorm_f32", "layernorm_bf16" -> {
                boolean bf = k.endsWith("bf16");
                ByteBuffer o = buf(a[0]), in = buf(a[1]), idx = buf(a[2]), w = buf(a[3]), b = buf(a[4]);
                int rows = (Integer) a[5], C = (Integer) a[6];
                float eps = (Float) a[7];
                for (int r = 0; r < rows; r++) {
                    long src = idx == null ? r : n(idx, r);
                    double m = 0, v = 0;
                    for (int c = 0; c < C; c++) m += f(in, src * C + c);
                    m /= C;
                    for (int c = 0; c < C; c++) { double d = f(in, src * C + c) - m; v += d * d; }
                    double inv = 1 / Math.sqrt(v / C + eps);
                    for (int c = 0; c < C; c++)
                        out(o, bf, (long) r * C + c, (float) ((f(in, src * C + c) - m) * inv * f(w, c) + f(b, c)));
                }
            }
            case "gemm_bf16_tc", "gemm_f32_nn", "gemm_f32_nt" -> {
                ByteBuffer o = buf(a[0]), A = buf(a[1]), B = buf(a[2]), bias = buf(a[3]);
                int M = (Integer) a[4], N = (Integer) a[5], K = (Integer) a[6];
                boolean acc = (Integer) a[7] != 0, bf = k.equals("gemm_bf16_tc"), nk = !k.equals("gemm_f32_nn");
                if (!k.equals("gemm_f32_nt")) weightGemmRows += M; // fp32 unembedding aside: the weight GEMMs
                for (int m = 0; m < M; m++)
                    for (int j = 0; j < N; j++) {
                        double s = 0;
                        for (int q = 0; q < K; q++) {
                            double x = bf ? h(A, (long) m * K + q) : f(A, (long) m * K + q);
                            long bi = nk ? (long) j * K + q : (long) q * N + j;
                            s += x * (bf ? h(B, bi) : f(B, bi));
                        }
                        if (bias != null) s += f(bias, j);
                        long i = (long) m * N + j;
                        f(o, i, (float) (acc ? f(o, i) + s : s));
                    }
            }
            case "residual_add" -> {
                ByteBuffer x = buf(a[0]), y = buf(a[1]);
                long n = 4 * (Long) a[2];
                for (long i = 0; i < n; i++) f(x, i, f(x, i) + f(y, i));
            }
            case "bias_add" -> {
                ByteBuffer x = buf(a[0]), b = buf(a[1]);
                int rows = (Integer) a[2], N = (Integer) a[3];
                for (long i = 0; i < (long) rows * N; i++) f(x, i, f(x, i) + f(b, i % N));
            }
            case "gather_rows" -> {
                ByteBuffer o = buf(a[0]), in = buf(a[1]), idx = buf(a[2]);
                int rows = (Integer) a[3], C = (Integer) a[4];
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < C; c++) f(o, (long) r * C + c, f(in, (long) n(idx, r) * C + c));
            }
            case "logsoftmax_summary" -> {
                ByteBuffer x = buf(a[0]), tg = buf(a[1]), lp = buf(a[2]), top = buf(a[3]), lse = buf(a[4]);
                int rows = (Integer) a[5], V = (Integer) a[6];
                for (int r = 0; r < rows; r++) {
                    float max = Float.NEGATIVE_INFINITY;
                    int best = 0;
                    for (int v = 0; v < V; v++) if (f(x, (long) r * V + v) > max) { max = f(x, (long) r * V + v); best = v; }
                    double s = 0;
                    for (int v = 0; v < V; v++) s += Math.exp(f(x, (long) r * V + v) - max);
                    double l = max + Math.log(s);
                    top.putInt(4 * r, best);
                    if (lse != null) f(lse, r, (float) l);
                    int t = tg == null ? -1 : n(tg, r);
                    f(lp, r, t >= 0 ? (float) (f(x, (long) r * V + t) - l) : Float.NaN);
                }
            }
            case "gemm_bf16_tc_summary", "gemm_f32_nt_summary" -> {
                // the contract: per row and column tile (128 or 64 wide, gx tiles) max, sum exp(v - max), arg-max
                boolean bf = k.startsWith("gemm_bf16");
                ByteBuffer A = buf(a[0]), B = buf(a[1]), tg = buf(a[5]), tl = buf(a[6]), pm = buf(a[7]), ps = buf(a[8]), pa = buf(a[9]);
                int M = (Integer) a[2], N = (Integer) a[3], K = (Integer) a[4], tile = bf ? 128 : 64;
                if ((long) gx * tile < N) throw new IllegalStateException(k + ": " + gx + " tiles for N = " + N);
                for (int m = 0; m < M; m++) {
                    int t = tg == null ? -1 : n(tg, m);
                    for (int ti = 0; ti < gx; ti++) {
                        float max = Float.NEGATIVE_INFINITY;
                        float[] v = new float[tile];
                        int arg = Integer.MAX_VALUE;
                        for (int j = 0; j < tile && ti * tile + j < N; j++) {
                            int col = ti * tile + j;
                            double s = 0;
                            for (int q = 0; q < K; q++)
                                s += (bf ? h(A, (long) m * K + q) : f(A, (long) m * K + q)) * (bf ? h(B, (long) col * K + q) : f(B, (long) col * K + q));
                            v[j] = (float) s;
                            if (col == t) f(tl, m, v[j]);
                            if (v[j] > max) { max = v[j]; arg = col; }
                        }
                        double sum = 0;
                        for (int j = 0; j < tile && ti * tile + j < N; j++) sum += Math.exp(v[j] - max);
                        long i = (long) m * gx + ti;
                        f(pm, i, max); f(ps, i, (float) sum); pa.putInt((int) (4 * i), arg);
                    }
                }
            }
            case "lse_combine" -> {
                ByteBuffer pm = buf(a[0]), ps = buf(a[1]), pa = buf(a[2]), tl = buf(a[4]), tg = buf(a[5]);
                ByteBuffer lp = buf(a[6]), top = buf(a[7]), lse = buf(a[8]);
                int tiles = (Integer) a[3], rows = (Integer) a[9];
                for (int r = 0; r < rows; r++) {
                    float max = Float.NEGATIVE_INFINITY;
                    int arg = Integer.MAX_VALUE;
                    for (int ti = 0; ti < tiles; ti++) {
                        float m = f(pm, (long) r * tiles + ti);
                        int ai = n(pa, (long) r * tiles + ti);
                        if (m > max || (m == max && ai < arg)) { max = m; arg = ai; }
                    }
                    double sum = 0;
                    for (int ti = 0; ti < tiles; ti++) sum += f(ps, (long) r * tiles + ti) * Math.exp(f(pm, (long) r * tiles + ti) - max);
                    double l = max + Math.log(sum);
                    top.putInt(4 * r, arg);
                    if (lse != null) f(lse, r, (float) l);
                    int t = tg == null ? -1 : n(tg, r);
                    f(lp, r, t >= 0 ? (float) (f(tl, r) - l) : Float.NaN);
                }
            }
            case "rng_gaussian" -> {
                ByteBuffer o = buf(a[0]), pos = buf(a[1]), u = buf(a[2]);
                int cnt = (Integer) a[3];
                for (int i = 0; i < cnt; i++) f(o, i, CounterRng.gaussian((Long) a[4], n(pos, i), n(u, i)));
            }
            case "gelu_intervene_f32", "gelu_intervene_bf16" ->
                    rows(gx, buf(a[0]), k.endsWith("bf16"), buf(a[1]), buf(a[2]), (Integer) a[3], true, (Integer) a[4],
                            buf(a[5]), buf(a[6]), buf(a[7]), buf(a[8]), buf(a[9]), buf(a[10]), buf(a[11]));
            case "intervene_f32" -> rows(gx, buf(a[0]), false, null, buf(a[0]), (Integer) a[1], false, 0,
                    buf(a[2]), buf(a[3]), buf(a[4]), buf(a[5]), buf(a[6]), buf(a[7]), buf(a[8]));
            default -> {
                if (k.startsWith("attn_")) attention(k, gx, gy, gz, a);
                else throw new IllegalStateException("no kernel " + k);
            }
        }
    }

    private static void rows(int rows, ByteBuffer o, boolean bf, ByteBuffer cache, ByteBuffer in, int width, boolean gelu,
                             int act, ByteBuffer rowSeq, ByteBuffer rowPos, ByteBuffer start, ByteBuffer list,
                             ByteBuffer ops, ByteBuffer masks, ByteBuffer vecs) {
        double[] x = new double[width];
        for (int r = 0; r < rows; r++) {
            for (int u = 0; u < width; u++) {
                double v = f(in, (long) r * width + u);
                if (gelu) v = act == CudaKernels.ACT_GELU_ERF ? 0.5 * v * (1 + erf(v / Math.sqrt(2)))
                        : 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
                x[u] = v;
            }
            if (start != null) {
                int s = n(rowSeq, r), t = n(rowPos, r);
                for (int q = n(start, s); q < n(start, s + 1); q++) {
                    int op = n(list, q) * InterventionTable.OP_INTS;
                    int type = n(ops, op), moff = n(ops, op + 1), voff = n(ops, op + 2);
                    float amount = Float.intBitsToFloat(n(ops, op + 3));
                    long seed = (n(ops, op + 4) & 0xFFFFFFFFL) | ((long) n(ops, op + 5) << 32);
                    if (t < n(ops, op + 6) || (n(ops, op + 7) != 0 && t != n(ops, op + 6))) continue;  // the op's positions
                    double max = Double.NEGATIVE_INFINITY;
                    if (type == CudaKernels.OP_NEGATIVE_NOISE)
                        for (int u = 0; u < width; u++) if (in(masks, moff, u)) max = Math.max(max, CounterRng.gaussian(seed, t, u));
                    for (int u = 0; u < width; u++) {
                        if (!in(masks, moff, u)) continue;
                        switch (type) {
                            case CudaKernels.OP_ZERO -> x[u] = 0;
                            case CudaKernels.OP_REPLACE -> x[u] = f(vecs, voff + u);
                            case CudaKernels.OP_SCALE -> x[u] = (float) x[u] * amount;
                            case CudaKernels.OP_NOISE -> x[u] += CounterRng.gaussian(seed, t, u) * amount;
                            case CudaKernels.OP_NEGATIVE_NOISE -> x[u] += (CounterRng.gaussian(seed, t, u) - max) * amount;
                            case CudaKernels.OP_ADD -> x[u] += (double) amount * f(vecs, voff + u);
                            default -> throw new IllegalStateException("op " + type);
                        }
                    }
                }
            }
            for (int u = 0; u < width; u++) {
                out(o, bf, (long) r * width + u, (float) x[u]);
                if (cache != null) f(cache, (long) r * width + u, (float) x[u]);
            }
        }
    }

    private static boolean in(ByteBuffer masks, int off, int u) {
        return off < 0 || ((n(masks, off + (u >>> 5)) >>> (u & 31)) & 1) != 0;
    }

    private static double erf(double x) { // Abramowitz-Stegun 7.1.26 is too coarse; integrate the series instead
        double s = 0, term = x;
        for (int n = 0; n < 200; n++) { s += term / (2 * n + 1); term *= -x * x / (n + 1); }
        return 2 / Math.sqrt(Math.PI) * s;
    }

    private void attention(String k, int gx, int gy, int gz, Object[] a) {
        String[] p = k.split("_");  // attn, short|flash, f32|bf16, HD
        boolean flash = p[1].equals("flash"), bf = p[2].equals("bf16");
        int hd = Integer.parseInt(p[3]);
        int nHead = flash ? gy : gx, nSeq = flash ? gz : gy;
        ByteBuffer z = buf(a[0]), qkv = buf(a[1]), ss = buf(a[2]), sl = buf(a[3]);
        int C = (Integer) a[4];
        if (C / nHead != hd) throw new IllegalStateException(k + " launched for head dim " + C / nHead);
        for (int s = 0; s < nSeq; s++) {
            int base = n(ss, s), T = n(sl, s);
            if (!flash && T > CudaKernels.ATTN_SHORT_T) throw new IllegalStateException(k + " with T = " + T);
            if (flash && (long) gx * 64 < T) throw new IllegalStateException(k + ": " + gx + " query tiles for T = " + T);
            for (int hh = 0; hh < nHead; hh++)
                for (int i = 0; i < T; i++) {
                    double[] sc = new double[i + 1];
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int j = 0; j <= i; j++) {
                        double d = 0;
                        for (int e = 0; e < hd; e++)
                            d += f(qkv, (long) (base + i) * 3 * C + hh * hd + e) * f(qkv, (long) (base + j) * 3 * C + C + hh * hd + e);
                        sc[j] = d / Math.sqrt(hd);
                        max = Math.max(max, sc[j]);
                    }
                    for (int j = 0; j <= i; j++) { sc[j] = Math.exp(sc[j] - max); sum += sc[j]; }
                    for (int e = 0; e < hd; e++) {
                        double acc = 0;
                        for (int j = 0; j <= i; j++) acc += sc[j] * f(qkv, (long) (base + j) * 3 * C + 2 * C + hh * hd + e);
                        out(z, bf, (long) (base + i) * C + hh * hd + e, (float) (acc / sum));
                    }
                }
        }
    }
}
