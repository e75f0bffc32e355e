package dev.nshap.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.util.stream.IntStream;

/**
 * The CPU kernels of the forward pass, one job each. Each has a plain float64 reference in the tests.
 * Data are flat row-major float arrays; the GEMMs use the Vector API and both cores.
 */
public final class CpuKernels {
    private CpuKernels() {}

    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();
    /** Columns per register tile: 4 rows x 3 vectors = 12 accumulators + 3 W vectors + 1 broadcast = AVX2's 16 registers. */
    static final int NR = 3 * L;
    /** Columns per task (4 tiles): the packed [KC x NC] block of W stays in L2 while every row streams past it. */
    static final int NC = 4 * NR;
    /**
     * Depth of a K block. Measured on AVX2 (Zen, 512 KiB L2): 768 beats 256 by ~12% on GPT-2 small's shapes
     * (fewer passes of partial sums through out; a tile's W slice streams from L2 well enough), and is n_embd
     * there, so three of the four weight GEMMs run in one block. The [KC x NC] pack (288 KiB) stays in L2.
     */
    static final int KC = 768;
    /** Below this much work (multiply-adds) a GEMM runs on the calling thread only. */
    static final long PARALLEL_MIN = 1L << 18;
    /** Per-thread packing buffer for one [KC x NC] block of W. */
    private static final ThreadLocal<float[]> PACK = ThreadLocal.withInitial(() -> new float[KC * NC]);

    /** out[N,M] = x[N,K] W[K,M] + bias[M] (bias may be null). */
    public static void matmul(float[] out, float[] x, float[] w, float[] bias, int n, int k, int m) {
        int panels = (m + NC - 1) / NC;
        if ((long) n * k * m < PARALLEL_MIN || panels == 1) {
            for (int p = 0; p < panels; p++) packedPanel(out, x, w, bias, n, k, m, p * NC, Math.min(m, p * NC + NC));
        } else {
            IntStream.range(0, panels).parallel().forEach(p ->
                    packedPanel(out, x, w, bias, n, k, m, p * NC, Math.min(m, p * NC + NC)));
        }
    }

    /**
     * Columns [j0, j1): W is copied K block by K block into a contiguous [tile][k][NR] buffer, so the inner loop
     * reads it sequentially (the row stride of W is M floats: 12 KiB for GPT-2 small's MLP, one TLB page per k
     * unpacked); partial sums go through out between K blocks. Columns past the last whole tile use the
     * unpacked 4x2 path.
     */
    private static void packedPanel(float[] out, float[] x, float[] w, float[] bias, int n, int k, int m, int j0, int j1) {
        int tiles = (j1 - j0) / NR;
        int jTiles = j0 + tiles * NR;
        if (tiles > 0) {
            float[] pack = PACK.get();
            for (int k0 = 0; k0 < k; k0 += KC) {
                int kc = Math.min(KC, k - k0);
                for (int g = 0; g < tiles; g++) {
                    int po = g * kc * NR, wo = k0 * m + j0 + g * NR;
                    for (int kk = 0; kk < kc; kk++, po += NR, wo += m) System.arraycopy(w, wo, pack, po, NR);
                }
                boolean first = k0 == 0;
                int i = 0;
                for (; i + 4 <= n; i += 4)
                    for (int g = 0; g < tiles; g++) tile4x3(out, x, pack, g * kc * NR, bias, first, k, m, i, k0, kc, j0 + g * NR);
                for (; i < n; i++)
                    for (int g = 0; g < tiles; g++) tile1x3(out, x, pack, g * kc * NR, bias, first, k, m, i, k0, kc, j0 + g * NR);
            }
        }
        if (jTiles < j1) matmulPanel(out, x, w, bias, n, k, m, jTiles, j1);
    }

    private static FloatVector start(float[] out, float[] bias, boolean first, int o, int j) {
        if (!first) return FloatVector.fromArray(S, out, o);
        return bias == null ? FloatVector.zero(S) : FloatVector.fromArray(S, bias, j);
    }

    private static void tile4x3(float[] out, float[] x, float[] pack, int p0, float[] bias, boolean first,
                                int k, int m, int i, int k0, int kc, int j) {
        int o0 = i * m + j, o1 = o0 + m, o2 = o1 + m, o3 = o2 + m;
        FloatVector c00 = start(out, bias, first, o0, j), c01 = start(out, bias, first, o0 + L, j + L), c02 = start(out, bias, first, o0 + 2 * L, j + 2 * L);
        FloatVector c10 = start(out, bias, first, o1, j), c11 = start(out, bias, first, o1 + L, j + L), c12 = start(out, bias, first, o1 + 2 * L, j + 2 * L);
        FloatVector c20 = start(out, bias, first, o2, j), c21 = start(out, bias, first, o2 + L, j + L), c22 = start(out, bias, first, o2 + 2 * L, j + 2 * L);
        FloatVector c30 = start(out, bias, first, o3, j), c31 = start(out, bias, first, o3 + L, j + L), c32 = start(out, bias, first, o3 + 2 * L, j + 2 * L);
        int x0 = i * k + k0, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
        for (int kk = 0, po = p0; kk < kc; kk++, po += NR) {
            FloatVector w0 = FloatVector.fromArray(S, pack, po);
            FloatVector w1 = FloatVector.fromArray(S, pack, po + L);
            FloatVector w2 = FloatVector.fromArray(S, pack, po + 2 * L);
            FloatVector b = FloatVector.broadcast(S, x[x0 + kk]);
            c00 = w0.fma(b, c00); c01 = w1.fma(b, c01); c02 = w2.fma(b, c02);
            b = FloatVector.broadcast(S, x[x1 + kk]);
            c10 = w0.fma(b, c10); c11 = w1.fma(b, c11); c12 = w2.fma(b, c12);
            b = FloatVector.broadcast(S, x[x2 + kk]);
            c20 = w0.fma(b, c20); c21 = w1.fma(b, c21); c22 = w2.fma(b, c22);
            b = FloatVector.broadcast(S, x[x3 + kk]);
            c30 = w0.fma(b, c30); c31 = w1.fma(b, c31); c32 = w2.fma(b, c32);
        }
        c00.intoArray(out, o0); c01.intoArray(out, o0 + L); c02.intoArray(out, o0 + 2 * L);
        c10.intoArray(out, o1); c11.intoArray(out, o1 + L); c12.intoArray(out, o1 + 2 * L);
        c20.intoArray(out, o2); c21.intoArray(out, o2 + L); c22.intoArray(out, o2 + 2 * L);
        c30.intoArray(out, o3); c31.intoArray(out, o3 + L); c32.intoArray(out, o3 + 2 * L);
    }

    private static void tile1x3(float[] out, float[] x, float[] pack, int p0, float[] bias, boolean first,
                                int k, int m, int i, int k0, int kc, int j) {
        int o = i * m + j;
        FloatVector c0 = start(out, bias, first, o, j), c1 = start(out, bias, first, o + L, j + L), c2 = start(out, bias, first, o + 2 * L, j + 2 * L);
        int x0 = i * k + k0;
        for (int kk = 0, po = p0; kk < kc; kk++, po += NR) {
            FloatVector b = FloatVector.broadcast(S, x[x0 + kk]);
            c0 = FloatVector.fromArray(S, pack, po).fma(b, c0);
            c1 = FloatVector.fromArray(S, pack, po + L).fma(b, c1);
            c2 = FloatVector.fromArray(S, pack, po + 2 * L).fma(b, c2);
        }
        c0.intoArray(out, o); c1.intoArray(out, o + L); c2.intoArray(out, o + 2 * L);
    }

    private static void matmulPanel(float[] out, float[] x, float[] w, float[] bias, int n, int k, int m, int j0, int j1) {
        int jVec = j0 + (j1 - j0) / (2 * L) * (2 * L);
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            for (int j = j0; j < jVec; j += 2 * L) block4x2(out, x, w, bias, k, m, i, j);
            for (int j = jVec; j < j1; j++) for (int r = 0; r < 4; r++) out[(i + r) * m + j] = dotColumn(x, w, bias, k, m, i + r, j);
        }
        for (; i < n; i++) {
            for (int j = j0; j < jVec; j += 2 * L) block1x2(out, x, w, bias, k, m, i, j);
            for (int j = jVec; j < j1; j++) out[i * m + j] = dotColumn(x, w, bias, k, m, i, j);
        }
    }

    private static float dotColumn(float[] x, float[] w, float[] bias, int k, int m, int i, int j) {
        float s = bias == null ? 0f : bias[j];
        int xo = i * k;
        for (int kk = 0; kk < k; kk++) s += x[xo + kk] * w[kk * m + j];
        return s;
    }

    private static void block4x2(float[] out, float[] x, float[] w, float[] bias, int k, int m, int i, int j) {
        FloatVector a00 = FloatVector.zero(S), a01 = FloatVector.zero(S), a10 = FloatVector.zero(S), a11 = FloatVector.zero(S);
        FloatVector a20 = FloatVector.zero(S), a21 = FloatVector.zero(S), a30 = FloatVector.zero(S), a31 = FloatVector.zero(S);
        int x0 = i * k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
        for (int kk = 0, wo = j; kk < k; kk++, wo += m) {
            FloatVector w0 = FloatVector.fromArray(S, w, wo);
            FloatVector w1 = FloatVector.fromArray(S, w, wo + L);
            FloatVector b = FloatVector.broadcast(S, x[x0 + kk]);
            a00 = w0.fma(b, a00); a01 = w1.fma(b, a01);
            b = FloatVector.broadcast(S, x[x1 + kk]);
            a10 = w0.fma(b, a10); a11 = w1.fma(b, a11);
            b = FloatVector.broadcast(S, x[x2 + kk]);
            a20 = w0.fma(b, a20); a21 = w1.fma(b, a21);
            b = FloatVector.broadcast(S, x[x3 + kk]);
            a30 = w0.fma(b, a30); a31 = w1.fma(b, a31);
        }
        if (bias != null) {
            FloatVector b0 = FloatVector.fromArray(S, bias, j), b1 = FloatVector.fromArray(S, bias, j + L);
            a00 = a00.add(b0); a01 = a01.add(b1); a10 = a10.add(b0); a11 = a11.add(b1);
            a20 = a20.add(b0); a21 = a21.add(b1); a30 = a30.add(b0); a31 = a31.add(b1);
        }
        int o = i * m + j;
        a00.intoArray(out, o); a01.intoArray(out, o + L); o += m;
        a10.intoArray(out, o); a11.intoArray(out, o + L); o += m;
        a20.intoArray(out, o); a21.intoArray(out, o + L); o += m;
        a30.intoArray(out, o); a31.intoArray(out, o + L);
    }

    private static void block1x2(float[] out, float[] x, float[] w, float[] bias, int k, int m, int i, int j) {
        FloatVector a0 = FloatVector.zero(S), a1 = FloatVector.zero(S);
        int x0 = i * k;
        for (int kk = 0, wo = j; kk < k; kk++, wo += m) {
            FloatVector b = FloatVector.broadcast(S, x[x0 + kk]);
            a0 = FloatVector.fromArray(S, w, wo).fma(b, a0);
            a1 = FloatVector.fromArray(S, w, wo + L).fma(b, a1);
        }
        if (bias != null) {
            a0 = a0.add(FloatVector.fromArray(S, bias, j));
            a1 = a1.add(FloatVector.fromArray(S, bias, j + L));
        }
        a0.intoArray(out, i * m + j);
        a1.intoArray(out, i * m + j + L);
    }

    /**
     * out[N,V] = h[N,C] E[V,C]^T: logits against the (tied) embedding rows. E is used row-wise, so each
     * logit is a dot product; four rows of h share every load of E.
     */
    public static void unembed(float[] out, float[] h, float[] e, int n, int c, int v) {
        int chunk = 256;
        int chunks = (v + chunk - 1) / chunk;
        IntStream.range(0, chunks).parallel().forEach(q -> {
            int v0 = q * chunk, v1 = Math.min(v, v0 + chunk);
            int i = 0;
            for (; i + 4 <= n; i += 4) for (int t = v0; t < v1; t++) dot4(out, h, e, c, v, i, t);
            for (; i < n; i++) for (int t = v0; t < v1; t++) out[i * v + t] = dot(h, i * c, e, t * c, c);
        });
    }

    private static void dot4(float[] out, float[] h, float[] e, int c, int v, int i, int t) {
        FloatVector a0 = FloatVector.zero(S), a1 = FloatVector.zero(S), a2 = FloatVector.zero(S), a3 = FloatVector.zero(S);
        int eo = t * c, h0 = i * c, h1 = h0 + c, h2 = h1 + c, h3 = h2 + c;
        int kv = c / L * L;
        for (int k = 0; k < kv; k += L) {
            FloatVector ev = FloatVector.fromArray(S, e, eo + k);
            a0 = FloatVector.fromArray(S, h, h0 + k).fma(ev, a0);
            a1 = FloatVector.fromArray(S, h, h1 + k).fma(ev, a1);
            a2 = FloatVector.fromArray(S, h, h2 + k).fma(ev, a2);
            a3 = FloatVector.fromArray(S, h, h3 + k).fma(ev, a3);
        }
        float s0 = a0.reduceLanes(VectorOperators.ADD), s1 = a1.reduceLanes(VectorOperators.ADD);
        float s2 = a2.reduceLanes(VectorOperators.ADD), s3 = a3.reduceLanes(VectorOperators.ADD);
        for (int k = kv; k < c; k++) {
            float ek = e[eo + k];
            s0 += h[h0 + k] * ek; s1 += h[h1 + k] * ek; s2 += h[h2 + k] * ek; s3 += h[h3 + k] * ek;
        }
        out[i * v + t] = s0; out[(i + 1) * v + t] = s1; out[(i + 2) * v + t] = s2; out[(i + 3) * v + t] = s3;
    }

    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        FloatVector acc = FloatVector.zero(S);
        int nv = n / L * L;
        for (int k = 0; k < nv; k += L)
            acc = FloatVector.fromArray(S, a, ao + k).fma(FloatVector.fromArray(S, b, bo + k), acc);
        float s = acc.reduceLanes(VectorOperators.ADD);
        for (int k = nv; k < n; k++) s += a[ao + k] * b[bo + k];
        return s;
    }

    /** out[N,C] = LayerNorm(x[N,C]) * g + b (the vectorised kernel; {@link #layerNormRowsPlain} is its reference). */
    public static void layerNorm(float[] out, float[] x, float[] g, float[] b, int n, int c, double eps) {
        layerNormRows(out, x, g, b, 0, n, c, eps);
    }

    /**
     * LayerNorm of rows [r0, r1) of x into the same rows of out (so row blocks can run on different threads).
     * Two passes in float32 (mean, then the mean square of x - mean), lanes summed in a fixed order: the second
     * pass makes a large mean cost no precision, which is what float64 bought the plain version.
     */
    public static void layerNormRows(float[] out, float[] x, float[] g, float[] b, int r0, int r1, int c, double eps) {
        float[] lanes = new float[L];
        for (int i = r0; i < r1; i++) layerNormRow(out, i * c, x, i * c, g, b, c, eps, lanes, null, null, i);
    }

    /**
     * One row of {@link #layerNormRows}: x[xo, xo + c) into out[oo, oo + c); when mean is not null, also leaves the
     * row's mean and 1/std in mean[r], rstd[r] (the backward pass's, so its loss is the forward's bit for bit).
     */
    public static void layerNormRow(float[] out, int oo, float[] x, int xo, float[] g, float[] b, int c, double eps,
                                    float[] lanes, float[] mean, float[] rstd, int r) {
        int cv = c / L * L;
        FloatVector acc = FloatVector.zero(S);
        for (int k = 0; k < cv; k += L) acc = acc.add(FloatVector.fromArray(S, x, xo + k));
        float sum = sumLanes(acc, lanes);
        for (int k = cv; k < c; k++) sum += x[xo + k];
        float mu = sum / c;
        FloatVector mv = FloatVector.broadcast(S, mu);
        acc = FloatVector.zero(S);
        for (int k = 0; k < cv; k += L) {
            FloatVector d = FloatVector.fromArray(S, x, xo + k).sub(mv);
            acc = d.fma(d, acc);
        }
        float ss = sumLanes(acc, lanes);
        for (int k = cv; k < c; k++) { float d = x[xo + k] - mu; ss = Math.fma(d, d, ss); }
        float inv = (float) (1.0 / Math.sqrt((double) ss / c + eps));
        for (int k = 0; k < cv; k += L)
            FloatVector.fromArray(S, x, xo + k).sub(mv).mul(inv)
                    .fma(FloatVector.fromArray(S, g, k), FloatVector.fromArray(S, b, k)).intoArray(out, oo + k);
        for (int k = cv; k < c; k++) out[oo + k] = Math.fma((x[xo + k] - mu) * inv, g[k], b[k]);
        if (mean != null) {
            mean[r] = mu;
            rstd[r] = inv;
        }
    }

    /** The plain reference of {@link #layerNormRows}: scalar, statistics in float64. */
    static void layerNormRowsPlain(float[] out, float[] x, float[] g, float[] b, int r0, int r1, int c, double eps) {
        for (int i = r0; i < r1; i++) {
            int o = i * c;
            double mean = 0;
            for (int k = 0; k < c; k++) mean += x[o + k];
            mean /= c;
            double var = 0;
            for (int k = 0; k < c; k++) { double d = x[o + k] - mean; var += d * d; }
            var /= c;
            float inv = (float) (1.0 / Math.sqrt(var + eps));
            float mu = (float) mean;
            for (int k = 0; k < c; k++) out[o + k] = (x[o + k] - mu) * inv * g[k] + b[k];
        }
    }

    /**
     * Lanes added in index order. reduceLanes(ADD) leaves the order to the implementation, which may differ
     * between the interpreter and compiled code; a forward pass must give the same bits every time.
     */
    static float sumLanes(FloatVector v, float[] lanes) {
        v.intoArray(lanes, 0);
        float s = 0f;
        for (int j = 0; j < L; j++) s += lanes[j];
        return s;
    }

    /**
     * Over one row x[o, o + n) of logits: writes {max, log sum exp(x - max)} to stats[2 r], [2 r + 1] and returns the
     * first index of the max. Vectorised ({@link #exp(FloatVector)}, float32 lanes summed in order);
     * {@link #logSoftmaxRowPlain} is its float64 reference.
     */
    public static int logSoftmaxRow(float[] x, int o, int n, float[] stats, int r) {
        int nv = n / L * L;
        FloatVector mv = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        for (int k = 0; k < nv; k += L) mv = mv.max(FloatVector.fromArray(S, x, o + k));
        float max = mv.reduceLanes(VectorOperators.MAX); // max is exact whatever the order
        for (int k = nv; k < n; k++) max = Math.max(max, x[o + k]);
        int best = 0;
        while (best < n - 1 && !(x[o + best] == max)) best++;
        FloatVector m = FloatVector.broadcast(S, max), acc = FloatVector.zero(S);
        for (int k = 0; k < nv; k += L) acc = acc.add(exp(FloatVector.fromArray(S, x, o + k).sub(m)));
        float sum = sumLanes(acc, new float[L]);
        for (int k = nv; k < n; k++) sum += exp(x[o + k] - max);
        stats[2 * r] = max;
        stats[2 * r + 1] = (float) Math.log(sum);
        return best;
    }

    /** The plain reference of {@link #logSoftmaxRow}: scalar, float64 sum of Math.exp. */
    static int logSoftmaxRowPlain(float[] x, int o, int n, float[] stats, int r) {
        int best = 0;
        float max = x[o];
        for (int k = 1; k < n; k++) if (x[o + k] > max) { max = x[o + k]; best = k; }
        double sum = 0;
        for (int k = 0; k < n; k++) sum += Math.exp(x[o + k] - max);
        stats[2 * r] = max;
        stats[2 * r + 1] = (float) Math.log(sum);
        return best;
    }

    private static final float GELU_C = (float) Math.sqrt(2.0 / Math.PI);

    /** gelu_new (tanh approximation), in place; tanh(y) = 1 - 2/(e^{2y}+1). */
    public static void geluNew(float[] x, int n) { geluNew(x, 0, n); }

    /**
     * gelu_new in place on x[off, off + n): whole vectors, then the tail with the scalar twin of the same
     * operations, so an element's value does not depend on where it falls.
     */
    public static void geluNew(float[] x, int off, int n) {
        int nv = n / L * L;
        FloatVector one = FloatVector.broadcast(S, 1f), two = FloatVector.broadcast(S, 2f);
        for (int i = off; i < off + nv; i += L) {
            FloatVector v = FloatVector.fromArray(S, x, i);
            // |y| > 15 saturates tanh to +-1 in float; clamping keeps e^{2y} finite.
            FloatVector y = v.mul(v).mul(0.044715f).mul(v).add(v).mul(GELU_C).max(-15f).min(15f);
            FloatVector th = one.sub(two.div(exp(y.mul(2f)).add(1f)));
            v.mul(0.5f).mul(th.add(1f)).intoArray(x, i);
        }
        for (int i = off + nv; i < off + n; i++) {
            float v = x[i];
            float y = Math.min(Math.max((v * v * 0.044715f * v + v) * GELU_C, -15f), 15f);
            float th = 1f - 2f / (exp(y * 2f) + 1f);
            x[i] = v * 0.5f * (th + 1f);
        }
    }

    private static final float LOG2E = 1.44269504088896341f, EXP_C1 = 0.693359375f, EXP_C2 = -2.12194440e-4f;
    private static final float EXP_LO = -87f, EXP_HI = 88f;
    private static final float ROUND_SHIFT = 12582912f; // 1.5 * 2^23
    private static final int ROUND_SHIFT_BITS = Float.floatToRawIntBits(ROUND_SHIFT);
    private static final float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f,
            P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    /**
     * e^x (Cephes expf: range reduction by ln 2, degree-5 polynomial, exponent bits), built only from operations
     * IEEE defines exactly (mul, add, fma, casts, shifts). The Vector API's own EXP gives other last bits once
     * C2 compiles it than before, which would make the same forward pass differ between runs.
     */
    static FloatVector exp(FloatVector x) {
        x = x.max(EXP_LO).min(EXP_HI);
        // n = round(x log2 e) by the 1.5 * 2^23 shift: the sum's low mantissa bits are n, and float add rounds to
        // nearest. Vector casts (F2I, I2F) would do the same, but C2 on JDK 17 does not intrinsify them at every
        // width, and their Java fallback cost a fifth of a training step.
        FloatVector t = x.mul(LOG2E).add(ROUND_SHIFT);
        FloatVector nf = t.sub(ROUND_SHIFT);
        IntVector n = (IntVector) t.reinterpretAsInts().sub(ROUND_SHIFT_BITS);
        FloatVector r = nf.fma(FloatVector.broadcast(S, -EXP_C1), x);
        r = nf.fma(FloatVector.broadcast(S, -EXP_C2), r);
        FloatVector p = FloatVector.broadcast(S, P0);
        p = p.fma(r, FloatVector.broadcast(S, P1));
        p = p.fma(r, FloatVector.broadcast(S, P2));
        p = p.fma(r, FloatVector.broadcast(S, P3));
        p = p.fma(r, FloatVector.broadcast(S, P4));
        p = p.fma(r, FloatVector.broadcast(S, P5));
        FloatVector y = p.mul(r).mul(r).add(r).add(1f);
        return y.mul(n.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
    }

    /** The scalar twin of {@link #exp(FloatVector)}: the same operations in the same order, so the same bits. */
    static float exp(float x) {
        x = Math.min(Math.max(x, EXP_LO), EXP_HI);
        float t = x * LOG2E + ROUND_SHIFT;
        float nf = t - ROUND_SHIFT;
        int n = Float.floatToRawIntBits(t) - ROUND_SHIFT_BITS;
        float r = Math.fma(nf, -EXP_C1, x);
        r = Math.fma(nf, -EXP_C2, r);
        float p = P0;
        p = Math.fma(p, r, P1);
        p = Math.fma(p, r, P2);
        p = Math.fma(p, r, P3);
        p = Math.fma(p, r, P4);
        p = Math.fma(p, r, P5);
        float y = p * r * r + r + 1f;
        return y * Float.intBitsToFloat((n + 127) << 23);
    }

    /** Exact GELU, x * Phi(x), for activation_function "gelu" (HF's erf form), in place. */
    public static void geluErf(float[] x, int n) { geluErf(x, 0, n); }

    public static void geluErf(float[] x, int off, int n) {
        for (int i = off; i < off + n; i++) {
            float v = x[i];
            x[i] = (float) (0.5 * v * (1.0 + erf(v * 0.7071067811865476)));
        }
    }

    /** erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit): below float resolution for GELU. */
    static double erf(double x) {
        double z = Math.abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1.0 - r : r - 1.0;
    }

    /**
     * Causal attention of one head of one sequence. qkv holds [T, 3C] rows starting at row {@code row0}
     * (q | k | v, heads contiguous inside each); out gets the head's [T, D] slice of [T, C] at the same rows.
     * {@code scratch} is reused when it holds a vector-rounded T floats, else one is allocated.
     * <p>
     * The head's K is transposed to [D][T] first, so the scores of L keys at a time are D broadcast FMAs with no
     * horizontal reductions; the weighted sum of V keeps one output vector in a register across all keys.
     */
    public static void attentionHead(float[] out, float[] qkv, int row0, int t, int c, int nHead, int h, float[] scratch) {
        attentionHead(out, qkv, row0, t, c, nHead, h, scratch, null, row0);
    }

    /**
     * As above for the query positions {@code queries} only (null: all t of them), the i-th one's output written to
     * row {@code outRow0 + i} of out. Each query's output is the same sequence of operations as in the full call,
     * so its bits do not change: the forward uses this for the last layer, where only scored rows matter.
     */
    public static void attentionHead(float[] out, float[] qkv, int row0, int t, int c, int nHead, int h, float[] scratch,
                                     int[] queries, int outRow0) {
        int d = c / nHead;
        float scale = (float) (1.0 / Math.sqrt(d));
        int c3 = 3 * c;
        int tp = (t + L - 1) / L * L;
        float[] s = scratch.length >= tp ? scratch : new float[tp];
        float[] kt = new float[d * tp];
        for (int j = 0; j < t; j++) {
            int ko = (row0 + j) * c3 + c + h * d;
            for (int k = 0; k < d; k++) kt[k * tp + j] = qkv[ko + k];
        }
        int kv = d / L * L;
        int qi = 0, nq = queries == null ? t : queries.length;
        // Four consecutive queries at a time share every load of K and V (four FMAs per load instead of one); each
        // query's own chains and their order are those of the one-query loop below, so the bits do not change.
        if (queries == null && kv == d && d % 4 == 0) {
            float[] s4 = new float[4 * tp], acc = new float[16 * L], inv = new float[4];
            for (; qi + 4 <= nq; qi += 4) attentionFour(out, qkv, row0, qi, c, h, d, tp, kt, s4, acc, inv, scale, outRow0);
        }
        for (; qi < nq; qi++) {
            int i = queries == null ? qi : queries[qi];
            int nj = i + 1, njv = (nj + L - 1) / L * L;
            int qo = (row0 + i) * c3 + h * d;
            for (int j0 = 0; j0 < njv; j0 += L) scoreBlock(s, kt, qkv, qo, d, tp, j0, scale);
            float inv = softmaxInPlace(s, 0, nj, njv);
            int oo = (outRow0 + qi) * c + h * d;
            int vo0 = row0 * c3 + 2 * c + h * d;
            for (int k = 0; k < kv; k += L) weightedV(out, oo + k, qkv, vo0 + k, c3, s, nj, inv);
            for (int k = kv; k < d; k++) {
                float o = 0f;
                for (int j = 0, vo = vo0 + k; j < nj; j++, vo += c3) o += s[j] * qkv[vo];
                out[oo + k] = o * inv;
            }
        }
    }

    /**
     * Queries i0 .. i0 + 3 of one head (keys 0 .. i0 + 3, causal): the one-query loop of attentionHead for four
     * queries at once. Scores: every key block's K^T vectors are loaded once for the four. Weighted V: the key
     * blocks of four that every one of the four queries has are summed jointly; each query then finishes its own
     * remaining keys exactly as the one-query loop would.
     */
    private static void attentionFour(float[] out, float[] qkv, int row0, int i0, int c, int h, int d, int tp, float[] kt,
                                      float[] s4, float[] acc, float[] inv, float scale, int outRow0) {
        int c3 = 3 * c;
        int njv = (i0 + 4 + L - 1) / L * L;
        int q0 = (row0 + i0) * c3 + h * d;
        for (int j0 = 0; j0 < njv; j0 += L) scoreBlockFour(s4, kt, qkv, q0, c3, d, tp, j0, scale, acc);
        for (int q = 0; q < 4; q++) {
            int nj = i0 + q + 1;
            inv[q] = softmaxInPlace(s4, q * tp, nj, (nj + L - 1) / L * L);
        }
        int vo0 = row0 * c3 + 2 * c + h * d;
        int shared = (i0 + 1) / 4 * 4;          // full blocks of four keys that the first (shortest) query has
        for (int k = 0; k < d; k += L) {
            fourByFour(acc, qkv, vo0 + k, c3, s4, 0, tp, 2 * tp, 3 * tp, shared);
            // Each query's remaining keys: weightedV's loop, continued from the joint chains. Written out here: a
            // weightedV that could also start from acc made 8 x 64 attention 25-70% slower on one thread (C2 then
            // keeps the conditionally loaded chains in memory).
            for (int q = 0; q < 4; q++) {
                int nj = i0 + q + 1;
                FloatVector a0 = FloatVector.fromArray(S, acc, (4 * q) * L), a1 = FloatVector.fromArray(S, acc, (4 * q + 1) * L),
                        a2 = FloatVector.fromArray(S, acc, (4 * q + 2) * L), a3 = FloatVector.fromArray(S, acc, (4 * q + 3) * L);
                int j = shared, vo = vo0 + k + shared * c3, so = q * tp;
                for (; j + 4 <= nj; j += 4, vo += 4 * c3) {
                    a0 = FloatVector.fromArray(S, qkv, vo).fma(FloatVector.broadcast(S, s4[so + j]), a0);
                    a1 = FloatVector.fromArray(S, qkv, vo + c3).fma(FloatVector.broadcast(S, s4[so + j + 1]), a1);
                    a2 = FloatVector.fromArray(S, qkv, vo + 2 * c3).fma(FloatVector.broadcast(S, s4[so + j + 2]), a2);
                    a3 = FloatVector.fromArray(S, qkv, vo + 3 * c3).fma(FloatVector.broadcast(S, s4[so + j + 3]), a3);
                }
                for (; j < nj; j++, vo += c3) a0 = FloatVector.fromArray(S, qkv, vo).fma(FloatVector.broadcast(S, s4[so + j]), a0);
                a0.add(a1).add(a2.add(a3)).mul(inv[q]).intoArray(out, (outRow0 + i0 + q) * c + h * d + k);
            }
        }
    }

    /** scoreBlock for four consecutive query rows (c3 apart), into s4's rows q * tp. */
    private static void scoreBlockFour(float[] s4, float[] kt, float[] qkv, int q0, int c3, int d, int tp, int j0, float scale,
                                       float[] acc) {
        fourByFour(acc, kt, j0, tp, qkv, q0, q0 + c3, q0 + 2 * c3, q0 + 3 * c3, d);
        for (int q = 0; q < 4; q++) {
            int o = 4 * q * L;
            FloatVector.fromArray(S, acc, o).add(FloatVector.fromArray(S, acc, o + L))
                    .add(FloatVector.fromArray(S, acc, o + 2 * L).add(FloatVector.fromArray(S, acc, o + 3 * L)))
                    .mul(scale).intoArray(s4, q * tp + j0);
        }
    }

    /**
     * The four-query kernel of both halves of attention: for r = 0, 4, .., n - 4 and chain c = 0..3, query q's chain
     * c accumulates x[xo + (r + c) xs, + L) * w[wq + r + c], the one-query loops' FMAs in their order. Scores: x is
     * K^T (rows of keys' dimension k), w the four query rows. Weighted V: x is V (rows of keys j), w the four queries'
     * softmax weights. The sixteen chains go to acc[(4q + c) L] (a store and a load do not change a value).
     */
    private static void fourByFour(float[] acc, float[] x, int xo, int xs, float[] w, int w0, int w1, int w2, int w3, int n) {
        FloatVector z = FloatVector.zero(S);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
        FloatVector e0 = z, e1 = z, e2 = z, e3 = z, f0 = z, f1 = z, f2 = z, f3 = z;
        for (int r = 0; r + 4 <= n; r += 4, xo += 4 * xs) {
            FloatVector x0 = FloatVector.fromArray(S, x, xo), x1 = FloatVector.fromArray(S, x, xo + xs),
                    x2 = FloatVector.fromArray(S, x, xo + 2 * xs), x3 = FloatVector.fromArray(S, x, xo + 3 * xs);
            a0 = x0.fma(FloatVector.broadcast(S, w[w0 + r]), a0);
            a1 = x1.fma(FloatVector.broadcast(S, w[w0 + r + 1]), a1);
            a2 = x2.fma(FloatVector.broadcast(S, w[w0 + r + 2]), a2);
            a3 = x3.fma(FloatVector.broadcast(S, w[w0 + r + 3]), a3);
            b0 = x0.fma(FloatVector.broadcast(S, w[w1 + r]), b0);
            b1 = x1.fma(FloatVector.broadcast(S, w[w1 + r + 1]), b1);
            b2 = x2.fma(FloatVector.broadcast(S, w[w1 + r + 2]), b2);
            b3 = x3.fma(FloatVector.broadcast(S, w[w1 + r + 3]), b3);
            e0 = x0.fma(FloatVector.broadcast(S, w[w2 + r]), e0);
            e1 = x1.fma(FloatVector.broadcast(S, w[w2 + r + 1]), e1);
            e2 = x2.fma(FloatVector.broadcast(S, w[w2 + r + 2]), e2);
            e3 = x3.fma(FloatVector.broadcast(S, w[w2 + r + 3]), e3);
            f0 = x0.fma(FloatVector.broadcast(S, w[w3 + r]), f0);
            f1 = x1.fma(FloatVector.broadcast(S, w[w3 + r + 1]), f1);
            f2 = x2.fma(FloatVector.broadcast(S, w[w3 + r + 2]), f2);
            f3 = x3.fma(FloatVector.broadcast(S, w[w3 + r + 3]), f3);
        }
        a0.intoArray(acc, 0); a1.intoArray(acc, L); a2.intoArray(acc, 2 * L); a3.intoArray(acc, 3 * L);
        b0.intoArray(acc, 4 * L); b1.intoArray(acc, 5 * L); b2.intoArray(acc, 6 * L); b3.intoArray(acc, 7 * L);
        e0.intoArray(acc, 8 * L); e1.intoArray(acc, 9 * L); e2.intoArray(acc, 10 * L); e3.intoArray(acc, 11 * L);
        f0.intoArray(acc, 12 * L); f1.intoArray(acc, 13 * L); f2.intoArray(acc, 14 * L); f3.intoArray(acc, 15 * L);
    }

    /** s[j0, j0 + L) = scale * q . k_j for L keys: four independent FMA chains over the head dimension. */
    private static void scoreBlock(float[] s, float[] kt, float[] qkv, int qo, int d, int tp, int j0, float scale) {
        FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
        int k = 0;
        for (; k + 4 <= d; k += 4) {
            int ko = k * tp + j0;
            a0 = FloatVector.fromArray(S, kt, ko).fma(FloatVector.broadcast(S, qkv[qo + k]), a0);
            a1 = FloatVector.fromArray(S, kt, ko + tp).fma(FloatVector.broadcast(S, qkv[qo + k + 1]), a1);
            a2 = FloatVector.fromArray(S, kt, ko + 2 * tp).fma(FloatVector.broadcast(S, qkv[qo + k + 2]), a2);
            a3 = FloatVector.fromArray(S, kt, ko + 3 * tp).fma(FloatVector.broadcast(S, qkv[qo + k + 3]), a3);
        }
        for (; k < d; k++) a0 = FloatVector.fromArray(S, kt, k * tp + j0).fma(FloatVector.broadcast(S, qkv[qo + k]), a0);
        a0.add(a1).add(a2.add(a3)).mul(scale).intoArray(s, j0);
    }

    /** s[off, off + n) = exp(s - max) with lanes [n, nv) zeroed; returns 1 / sum. */
    private static float softmaxInPlace(float[] s, int off, int n, int nv) {
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < n; j++) if (s[off + j] > max) max = s[off + j];
        FloatVector mv = FloatVector.broadcast(S, max), sumv = FloatVector.zero(S);
        for (int j0 = 0; j0 < nv; j0 += L) {
            FloatVector p = exp(FloatVector.fromArray(S, s, off + j0).sub(mv));
            if (j0 + L > n) p = FloatVector.zero(S).blend(p, S.indexInRange(j0, n));
            p.intoArray(s, off + j0);
            sumv = sumv.add(p);
        }
        return 1f / sumv.reduceLanes(VectorOperators.ADD);
    }

    /** out[o, o + L) = inv * sum_j s[j] v_j over n keys whose rows are c3 apart: four chains. */
    private static void weightedV(float[] out, int o, float[] qkv, int vo, int c3, float[] s, int n, float inv) {
        FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
        int j = 0;
        for (; j + 4 <= n; j += 4, vo += 4 * c3) {
            a0 = FloatVector.fromArray(S, qkv, vo).fma(FloatVector.broadcast(S, s[j]), a0);
            a1 = FloatVector.fromArray(S, qkv, vo + c3).fma(FloatVector.broadcast(S, s[j + 1]), a1);
            a2 = FloatVector.fromArray(S, qkv, vo + 2 * c3).fma(FloatVector.broadcast(S, s[j + 2]), a2);
            a3 = FloatVector.fromArray(S, qkv, vo + 3 * c3).fma(FloatVector.broadcast(S, s[j + 3]), a3);
        }
        for (; j < n; j++, vo += c3) a0 = FloatVector.fromArray(S, qkv, vo).fma(FloatVector.broadcast(S, s[j]), a0);
        a0.add(a1).add(a2.add(a3)).mul(inv).intoArray(out, o);
    }

    /** a[off, off + n) += b[0, n). */
    static void addInPlace(float[] a, int off, float[] b, int n) {
        int nv = n / L * L;
        for (int i = 0; i < nv; i += L)
            FloatVector.fromArray(S, a, off + i).add(FloatVector.fromArray(S, b, i)).intoArray(a, off + i);
        for (int i = nv; i < n; i++) a[off + i] += b[i];
    }

    /** a += b, element-wise over n. */
    public static void addInPlace(float[] a, float[] b, int n) { addInPlace(a, 0, b, n); }
}
