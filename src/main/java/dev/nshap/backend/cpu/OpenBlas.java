package dev.nshap.backend.cpu;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.openblas.global.openblas_nolapack;

import java.util.stream.IntStream;

/**
 * OpenBLAS's cblas_sgemm through the org.bytedeco binding. The only class that names bytedeco types: {@link Gemm}
 * touches it inside a try, so a jar without the bytedeco classes or natives still runs (on the Vector-API kernels).
 *
 * <p>Operands are copied into native buffers owned by the calling thread: the binding's float[] overloads copy
 * every array in and out again through JNI (twice the traffic, measured), and the heap cannot be pinned on Java 17.
 *
 * <p>Batch invariance: OpenBLAS picks its kernel by shape. On AVX-512 (SkylakeX kernels) a product with
 * m*n*k below about 10^6 goes to a "small matrix" kernel whose bits differ from the blocked kernel's (seen: a
 * 1-row 768x768 product differs in 704 of 768 outputs from the same row inside a 300-row product); a 1-row product
 * may also be forwarded to gemv. So every call's row count m is padded with zero rows up to a multiple of
 * {@link #rowBlock(int, int)}, at least 16 rows and at least 2^21 / (n k) rows, which keeps every call on the
 * blocked kernel, where each output row is the same sequence of FMAs whatever its position and the row count
 * (checked for every m in 2..300 and at shifted offsets, 1 and 2 threads; the tests check it on whatever CPU runs
 * them). The threads split rows and columns, never the k sum, so the thread count does not change bits either.
 */
final class OpenBlas {
    private OpenBlas() {}

    static final int THREADS;
    static final String VERSION;

    static {
        Loader.load(openblas_nolapack.class);
        THREADS = Gemm.configuredThreads();
        org.bytedeco.openblas.presets.openblas_nolapack.blas_set_num_threads(THREADS);
        Package p = openblas_nolapack.class.getPackage();
        String v = p == null ? null : p.getImplementationVersion();
        VERSION = v != null ? v : "0.3.31-1.5.13";
    }

    /** Called once by {@link Gemm} so that loading (and its failure) happens at a known point. */
    static String describe() {
        int got = org.bytedeco.openblas.presets.openblas_nolapack.blas_get_num_threads();
        String core = System.getenv("OPENBLAS_CORETYPE");
        return "OpenBLAS " + VERSION + " (org.bytedeco), " + got + " thread" + (got == 1 ? "" : "s")
                + (core != null && !core.isEmpty() ? ", OPENBLAS_CORETYPE=" + core : "");
    }

    /** Rows per padded block for a product with this n and k. */
    static int rowBlock(int n, int k) {
        long nk = Math.max(1L, (long) n * k);
        long r = Math.max(16, (1L << 21) / nk + 1);
        return (int) ((r + 15) / 16 * 16);
    }

    private static final class Buffers {
        FloatPointer a, b, c;
        long ca, cb, cc;

        FloatPointer a(long n) { if (n > ca) { if (a != null) a.close(); a = new FloatPointer(n); ca = n; } return a.position(0); }
        FloatPointer b(long n) { if (n > cb) { if (b != null) b.close(); b = new FloatPointer(n); cb = n; } return b.position(0); }
        FloatPointer c(long n) { if (n > cc) { if (c != null) c.close(); c = new FloatPointer(n); cc = n; } return c.position(0); }
    }

    private static final ThreadLocal<Buffers> BUF = ThreadLocal.withInitial(Buffers::new);
    private static final float[] ZEROS = new float[4096];

    /**
     * A whole weight matrix copied once into native memory, for a caller that multiplies by the same unchanging
     * weights many times (a forward pass copies GPT-2 small's 124M weights per batch otherwise).
     *
     * <p>A [k, n] matrix multiplied from the right untransposed (x W, the forward's linear layers) is kept as W^T,
     * [n, k], and the product runs as x (W^T)^T: OpenBLAS then packs the weights from contiguous rows instead of
     * gathering columns, 10-20% more GEMM throughput at 512 rows (docs/cpu-backend.md). The bits are those of
     * another kernel path, so batch invariance is checked on this path too (GemmTest).
     */
    static final class Resident implements AutoCloseable {
        final float[] src;
        /** Held as src^T: src is [rows, cols] row-major. */
        final boolean transposed;
        final int rows, cols;
        private FloatPointer p;

        Resident(float[] w, int rows, int cols, boolean transpose) {
            if ((long) rows * cols != w.length) throw new IllegalArgumentException("resident " + rows + "x" + cols + " for " + w.length + " floats");
            src = w;
            transposed = transpose;
            this.rows = rows;
            this.cols = cols;
            p = new FloatPointer(w.length);
            if (!transpose) copyRows(p, w, 0, w.length, 1, w.length, w.length);
            else {
                float[] t = new float[w.length];
                for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) t[j * rows + i] = w[i * cols + j];
                copyRows(p, t, 0, w.length, 1, w.length, w.length);
            }
        }

        @Override public synchronized void close() { if (p != null) { p.close(); p = null; } }
    }

    /** Same contract as {@link Gemm#sgemm}; bias (may be null) is added to every row of C instead of beta C. */
    static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                      float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                      float beta, float[] c, int cOff, int ldc, float[] bias) {
        sgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc, bias, null);
    }

    /**
     * As above; when {@code resident} is not null it holds b (all of it, offset 0, packed: ldb = n, or k when
     * transposed) and its native copy is used instead of copying b in.
     */
    static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                      float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                      float beta, float[] c, int cOff, int ldc, float[] bias, Resident resident) {
        int mp = (m + rowBlock(n, k) - 1) / rowBlock(n, k) * rowBlock(n, k);
        Buffers buf = BUF.get();
        // op(A) [mp, k]: stored [m, k] row-major, or [k, m] when transposed; pad rows (columns) are zero.
        FloatPointer pa;
        int ldaN;
        if (!transA) {
            pa = buf.a((long) mp * k);
            ldaN = Math.max(1, k);
            copyRows(pa, a, aOff, lda, m, k, k);
            zero(pa, (long) m * k, (long) (mp - m) * k);
        } else {
            pa = buf.a((long) k * mp);
            ldaN = mp;
            copyRows(pa, a, aOff, lda, k, m, mp);
            if (mp > m) for (int p = 0; p < k; p++) zero(pa, (long) p * mp + m, mp - m);
        }
        FloatPointer pb;
        int ldbN;
        boolean transBN = transB;
        if (resident != null) {
            if (resident.src != b || bOff != 0 || ldb != (transB ? k : n) || (long) k * n != b.length
                    || (resident.transposed && (transB || resident.rows != k || resident.cols != n)))
                throw new IllegalArgumentException("resident weights do not match the operand");
            pb = resident.p;
            if (resident.transposed) { transBN = true; ldbN = Math.max(1, k); }
            else ldbN = Math.max(1, ldb);
        } else if (!transB) { pb = buf.b((long) k * n); ldbN = Math.max(1, n); copyRows(pb, b, bOff, ldb, k, n, n); }
        else { pb = buf.b((long) n * k); ldbN = Math.max(1, k); copyRows(pb, b, bOff, ldb, n, k, k); }
        FloatPointer pc = buf.c((long) mp * n);
        // A bias is added on the way out (copyOut), where each row of C is in cache anyway, not preloaded into C
        // for beta = 1: that preload wrote all of C once more and made the kernel read it back.
        float betaN = bias != null ? 0f : beta;
        if (bias == null && beta != 0f) {
            copyRows(pc, c, cOff, ldc, m, n, n);
        }
        pa.position(0); pb.position(0); pc.position(0);
        if (k > 0) {
            openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor,
                    transA ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans,
                    transBN ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans,
                    mp, n, k, alpha, pa, ldaN, pb, ldbN, betaN, pc, Math.max(1, n));
        } else {
            // k = 0: C = beta C, or the bias; OpenBLAS returns early on k = 0 in some versions, so do it here.
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    c[cOff + i * ldc + j] = bias != null ? bias[j] : beta == 0f ? 0f : beta * c[cOff + i * ldc + j];
            return;
        }
        copyOut(c, cOff, ldc, pc, m, n, bias);
    }

    /**
     * rows x width floats of the packed native C back into dst (row stride ld), plus bias on every row when it is
     * not null; large copies on all cores.
     */
    private static void copyOut(float[] dst, int off, int ld, FloatPointer src, int rows, int width, float[] bias) {
        if (ld == width && parallelCopy(rows, width)) inRowParts(rows, (r0, r1) -> copyOut(dst, off, ld, new FloatPointer(src), r0, r1, width, bias));
        else copyOut(dst, off, ld, src, 0, rows, width, bias);
        src.position(0);
    }

    /** Rows [r0, r1) of copyOut: one bulk copy when nothing is added, else row by row while each row is in cache. */
    private static void copyOut(float[] dst, int off, int ld, FloatPointer src, int r0, int r1, int width, float[] bias) {
        if (bias == null && ld == width) {
            src.position((long) r0 * width).get(dst, off + r0 * width, (r1 - r0) * width);
            return;
        }
        for (int i = r0; i < r1; i++) {
            src.position((long) i * width).get(dst, off + i * ld, width);
            if (bias != null) CpuKernels.addInPlace(dst, off + i * ld, bias, width);
        }
    }

    /** rows x width floats from src (row stride ld) into dst packed with row stride dstLd; large copies on all cores. */
    private static void copyRows(FloatPointer dst, float[] src, int off, int ld, int rows, int width, int dstLd) {
        if (rows == 0 || width == 0) return;
        if (ld == width && dstLd == width) {
            if (!parallelCopy(rows, width)) { dst.position(0).put(src, off, rows * width); dst.position(0); return; }
            inRowParts(rows, (r0, r1) -> new FloatPointer(dst).position((long) r0 * width).put(src, off + r0 * width, (r1 - r0) * width));
            return;
        }
        for (int i = 0; i < rows; i++) dst.position((long) i * dstLd).put(src, off + i * ld, width);
        dst.position(0);
    }

    /** Whether a packed copy between the heap and native memory is large enough (1 MB) to split over the threads. */
    private static boolean parallelCopy(int rows, int width) {
        return (long) rows * width >= (1 << 18) && THREADS > 1;
    }

    /** Runs part(r0, r1) over THREADS contiguous row ranges of [0, rows), in parallel. */
    private static void inRowParts(int rows, java.util.function.BiConsumer<Integer, Integer> part) {
        int parts = THREADS;
        IntStream.range(0, parts).parallel().forEach(q ->
                part.accept((int) ((long) rows * q / parts), (int) ((long) rows * (q + 1) / parts)));
    }

    private static void zero(FloatPointer p, long from, long count) {
        for (long done = 0; done < count; ) {
            int len = (int) Math.min(ZEROS.length, count - done);
            p.position(from + done).put(ZEROS, 0, len);
            done += len;
        }
        p.position(0);
    }
}
