package dev.nshap.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.util.Locale;
import java.util.stream.IntStream;

/**
 * General matrix multiply for the CPU backend, BLAS-style: C[m,n] = alpha op(A) op(B) + beta C, every matrix
 * row-major with its own leading dimension and offset. The forward pass and the backward pass both go through
 * here, so the choice of implementation is made in one place:
 *
 * <ul>
 *   <li>{@link Impl#OPENBLAS}: OpenBLAS's sgemm (org.bytedeco:openblas, natives for linux-x86_64 in the jar), the
 *   default where it loads, on {@link #configuredThreads()} threads (all cores unless -Dnshap.gemm.threads or
 *   NSHAP_GEMM_THREADS says otherwise), fixed at load so results are reproducible;</li>
 *   <li>{@link Impl#JAVA}: the Vector-API kernels, used when -Dnshap.gemm=java or NSHAP_GEMM=java asks for them,
 *   and automatically when the bytedeco classes or natives are missing or fail to load (another OS or
 *   architecture, a jar built without them).</li>
 * </ul>
 *
 * <p>Batch invariance, both paths: an output row depends only on its own input row and the weights, never on m
 * (the row count) or the other rows. The Java kernels accumulate every element in a fixed order that does not
 * depend on m or on the thread split. OpenBLAS chooses kernels by shape, so its calls are padded to fixed row
 * blocks (see {@link OpenBlas}); the padding costs at most {@code rowBlock - 1} zero rows per call (15 rows for
 * GPT-2 small and larger; docs/cpu-backend.md gives the measured cost).
 */
public final class Gemm {
    private Gemm() {}

    /** Which implementation runs a product. */
    public enum Impl {
        OPENBLAS, JAVA;

        /** C = alpha op(A) op(B) + beta C on this implementation. */
        public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                          float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                          float beta, float[] c, int cOff, int ldc) {
            check(m, n, k);
            if (m == 0 || n == 0) return;
            if (this == OPENBLAS) loaded();
            if (this == OPENBLAS) OpenBlas.sgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc, null);
            else javaSgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
        }

        /** out[N,M] = x[N,K] W[K,M] + bias[M] (bias may be null) on this implementation. */
        public void linear(float[] out, float[] x, float[] w, float[] bias, int n, int k, int m) {
            linear(out, x, w, bias, n, k, m, null);
        }

        /** As {@link #linear(float[], float[], float[], float[], int, int, int)}, W kept in {@code keep} if not null. */
        void linear(float[] out, float[] x, float[] w, float[] bias, int n, int k, int m, Resident keep) {
            check(n, m, k);
            if (n == 0 || m == 0) return;
            if (this == OPENBLAS) loaded();
            if (this == OPENBLAS) OpenBlas.sgemm(false, false, n, m, k, 1f, x, 0, k, w, 0, m, 0f, out, 0, m, bias,
                    keep == null ? null : keep.get(w, k, m, true));
            else CpuKernels.matmul(out, x, w, bias, n, k, m);
        }

        /** out[N,V] = x[N,C] E[V,C]^T: the unembedding (E is wte, row-major [V, C]). */
        void unembed(float[] out, float[] x, float[] e, int n, int c, int v, Resident keep) {
            check(n, v, c);
            if (n == 0 || v == 0) return;
            if (this == OPENBLAS) loaded();
            if (this == OPENBLAS) OpenBlas.sgemm(false, true, n, v, c, 1f, x, 0, c, e, 0, c, 0f, out, 0, v, null,
                    keep == null ? null : keep.get(e, v, c, false));
            else CpuKernels.unembed(out, x, e, n, c, v);
        }

        /** The implementations that can run here: JAVA always, OPENBLAS where it loaded. */
        public static java.util.List<Impl> available() {
            return Selection.OPENBLAS_ERROR == null ? java.util.List.of(OPENBLAS, JAVA) : java.util.List.of(JAVA);
        }
    }

    /**
     * Native copies of weight matrices that do not change while this object lives (one per backend), so that
     * OpenBLAS calls stop copying them in every time: for GPT-2 small that copy was ~0.5 GB per forward. Copies
     * are made at first use and up to {@link #residentLimitBytes()} in all (-Dnshap.gemm.resident-mib, default
     * 4096); beyond it a matrix is copied per call as before. The Java kernels read the arrays directly and
     * ignore this.
     */
    public static final class Resident implements AutoCloseable {
        private final java.util.IdentityHashMap<float[], OpenBlas.Resident> copies = new java.util.IdentityHashMap<>();
        private long bytes;
        private boolean closed;

        /**
         * The native copy of w ([rows, cols] row-major), made at first use: held transposed when asked (the linear
         * layers' weights), as is otherwise. A matrix is always used the same way; null past the limit.
         */
        synchronized OpenBlas.Resident get(float[] w, int rows, int cols, boolean transposed) {
            if (closed) return null;
            OpenBlas.Resident r = copies.get(w);
            if (r == null && bytes + 4L * w.length <= residentLimitBytes()) {
                r = new OpenBlas.Resident(w, rows, cols, transposed);
                copies.put(w, r);
                bytes += 4L * w.length;
            }
            // the same array asked for in the other layout (a tied matrix used both ways): copy it per call
            return r == null || r.transposed != transposed ? null : r;
        }

        /** Bytes of native memory held. */
        public synchronized long bytes() { return bytes; }

        @Override public synchronized void close() {
            closed = true;
            copies.values().forEach(OpenBlas.Resident::close);
            copies.clear();
            bytes = 0;
        }
    }

    static long residentLimitBytes() {
        String s = setting("nshap.gemm.resident-mib", "NSHAP_GEMM_RESIDENT_MIB");
        try {
            return s == null ? 4096L << 20 : Math.max(0, Long.parseLong(s)) << 20;
        } catch (NumberFormatException e) {
            return 4096L << 20;
        }
    }

    /** The implementation {@link #sgemm} and {@link #linear} use: chosen once, at first use. */
    public static Impl active() { return Selection.ACTIVE; }

    /** One line: which GEMM runs and why (for {@code nshap backends}, run headers and benchmark JSON). */
    public static String describe() { return Selection.DESCRIPTION; }

    /**
     * Why OpenBLAS is not running although nobody asked for the Java kernels (classes or natives missing, load
     * failure), or null: the line a run header prints once.
     */
    public static String fallbackNote() {
        return Selection.ACTIVE == Impl.JAVA && !Selection.FORCED_JAVA
                ? "OpenBLAS unavailable (" + Selection.OPENBLAS_ERROR + "); the CPU GEMM runs on the pure-Java Vector-API kernels"
                : null;
    }

    /** Why OpenBLAS cannot run here, or null when it loaded. */
    public static String openBlasError() { return Selection.OPENBLAS_ERROR; }

    /** OpenBLAS threads: -Dnshap.gemm.threads, else NSHAP_GEMM_THREADS, else every core. */
    static int configuredThreads() {
        String s = setting("nshap.gemm.threads", "NSHAP_GEMM_THREADS");
        int cores = Runtime.getRuntime().availableProcessors();
        if (s == null) return cores;
        try {
            int t = Integer.parseInt(s.trim());
            return t >= 1 ? t : cores;
        } catch (NumberFormatException e) {
            return cores;
        }
    }

    private static String setting(String property, String env) {
        String v = System.getProperty(property);
        if (v == null || v.isBlank()) v = System.getenv(env);
        return v == null || v.isBlank() ? null : v.trim();
    }

    /** Lazily, once: loading OpenBLAS (and failing to) happens at the first product, not at class load of callers. */
    private static final class Selection {
        static final Impl ACTIVE;
        static final String DESCRIPTION, OPENBLAS_ERROR;
        static final boolean FORCED_JAVA;

        static {
            String want = setting("nshap.gemm", "NSHAP_GEMM");
            want = want == null ? "auto" : want.toLowerCase(Locale.ROOT);
            String err = null, blas = null;
            try {
                // Asked for the Java kernels: do not even load the natives (a broken native library can crash the JVM).
                if (want.equals("java")) err = "not loaded: nshap.gemm=java";
                else blas = OpenBlas.describe();
            } catch (Throwable t) {
                // NoClassDefFoundError (bytedeco classes left out of the jar), UnsatisfiedLinkError (natives missing
                // or not for this platform), ExceptionInInitializerError wrapping either: the Java kernels take over.
                Throwable c = t;
                while ((c instanceof ExceptionInInitializerError || c.getCause() instanceof UnsatisfiedLinkError) && c.getCause() != null) c = c.getCause();
                String msg = c.getMessage() == null ? "" : c.getMessage().replace('\n', ' ');
                err = c.getClass().getSimpleName() + (msg.isEmpty() ? "" : ": " + (msg.length() > 160 ? msg.substring(0, 160) + "..." : msg));
            }
            OPENBLAS_ERROR = err;
            String java = "Vector API (pure Java, " + FloatVector.SPECIES_PREFERRED.vectorBitSize() + "-bit vectors)";
            switch (want) {
                case "java" -> { ACTIVE = Impl.JAVA; FORCED_JAVA = true; DESCRIPTION = java + ", asked for by nshap.gemm=java"; }
                case "openblas", "auto" -> {
                    FORCED_JAVA = false;
                    if (err == null) { ACTIVE = Impl.OPENBLAS; DESCRIPTION = blas; }
                    else { ACTIVE = Impl.JAVA; DESCRIPTION = java + " (OpenBLAS unavailable: " + err + ")"; }
                }
                default -> { ACTIVE = Impl.JAVA; FORCED_JAVA = false; DESCRIPTION = java + " (unknown nshap.gemm value '" + want + "': expected auto, openblas or java)"; }
            }
        }
    }

    private static void loaded() {
        if (Selection.OPENBLAS_ERROR != null) throw new IllegalStateException("OpenBLAS is not available here: " + Selection.OPENBLAS_ERROR);
    }

    private static void check(int m, int n, int k) {
        if (m < 0 || n < 0 || k < 0) throw new IllegalArgumentException("negative GEMM size " + m + "x" + n + "x" + k);
    }

    /** C = alpha op(A) op(B) + beta C; op(X) = X^T when its flag is set. op(A) is [m,k], op(B) is [k,n]. */
    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                             float beta, float[] c, int cOff, int ldc) {
        active().sgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
    }

    /** out[N,M] = x[N,K] W[K,M] + bias[M] (bias may be null): the forward pass's shape. */
    public static void linear(float[] out, float[] x, float[] w, float[] bias, int n, int k, int m) {
        active().linear(out, x, w, bias, n, k, m);
    }

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final long PARALLEL_MIN = 1L << 18;

    /** The plain Vector-API sgemm: row i of C accumulated in a fixed order, rows split over the cores. */
    static void javaSgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                          float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                          float beta, float[] c, int cOff, int ldc) {
        boolean parallel = (long) m * n * Math.max(k, 1) >= PARALLEL_MIN && m > 1;
        IntStream rows = IntStream.range(0, m);
        (parallel ? rows.parallel() : rows).forEach(i -> {
            int co = cOff + i * ldc;
            scaleRow(c, co, n, beta);
            if (k == 0 || alpha == 0f) return;
            if (!transB) {
                // Row i of C accumulates alpha * op(A)[i,p] * B[p,:] over p, vectorised along the row.
                for (int p = 0; p < k; p++) {
                    float s = alpha * (transA ? a[aOff + p * lda + i] : a[aOff + i * lda + p]);
                    if (s != 0f) axpy(c, co, s, b, bOff + p * ldb, n);
                }
            } else {
                // B^T: C[i,j] is a dot product of op(A)'s row i with B's row j.
                float[] arow = transA ? gatherColumn(a, aOff, lda, i, k) : null;
                int ao = transA ? 0 : aOff + i * lda;
                float[] src = transA ? arow : a;
                for (int j = 0; j < n; j++) c[co + j] += alpha * dot(src, ao, b, bOff + j * ldb, k);
            }
        });
    }

    private static void scaleRow(float[] c, int co, int n, float beta) {
        if (beta == 1f) return;
        if (beta == 0f) { java.util.Arrays.fill(c, co, co + n, 0f); return; }
        for (int j = 0; j < n; j++) c[co + j] *= beta;
    }

    private static void axpy(float[] c, int co, float s, float[] b, int bo, int n) {
        int j = 0;
        FloatVector sv = FloatVector.broadcast(S, s);
        for (; j + L <= n; j += L) {
            FloatVector.fromArray(S, b, bo + j).fma(sv, FloatVector.fromArray(S, c, co + j)).intoArray(c, co + j);
        }
        for (; j < n; j++) c[co + j] = Math.fma(s, b[bo + j], c[co + j]);
    }

    private static float dot(float[] a, int ao, float[] b, int bo, int k) {
        FloatVector acc = FloatVector.zero(S);
        int p = 0;
        for (; p + L <= k; p += L) acc = FloatVector.fromArray(S, a, ao + p).fma(FloatVector.fromArray(S, b, bo + p), acc);
        float s = acc.reduceLanes(VectorOperators.ADD);
        for (; p < k; p++) s = Math.fma(a[ao + p], b[bo + p], s);
        return s;
    }

    private static float[] gatherColumn(float[] a, int aOff, int lda, int i, int k) {
        float[] col = new float[k];
        for (int p = 0; p < k; p++) col[p] = a[aOff + p * lda + i];
        return col;
    }
}
