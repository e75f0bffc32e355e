package dev.nshap.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.util.stream.IntStream;

/**
 * General matrix multiply for the CPU backend, BLAS-style: C[m,n] = alpha op(A) op(B) + beta C, every matrix
 * row-major with its own leading dimension and offset. The forward pass and the backward pass both go through
 * here, so the choice of implementation (pure Java, or a native BLAS where one loads) is made in one place.
 *
 * <p>This is the plain Vector-API path. Every element of C is accumulated in a fixed order that does not
 * depend on m (the row count) or on how the rows are split across threads, so a sequence's results do not
 * depend on which other sequences share its batch.
 */
public final class Gemm {
    private Gemm() {}

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final long PARALLEL_MIN = 1L << 18;

    /** C = alpha op(A) op(B) + beta C; op(X) = X^T when its flag is set. op(A) is [m,k], op(B) is [k,n]. */
    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                             float beta, float[] c, int cOff, int ldc) {
        if (m < 0 || n < 0 || k < 0) throw new IllegalArgumentException("negative GEMM size " + m + "x" + n + "x" + k);
        if (m == 0 || n == 0) return;
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

    /** out[N,M] = x[N,K] W[K,M] + bias[M] (bias may be null): the forward pass's shape. */
    public static void linear(float[] out, float[] x, float[] w, float[] bias, int n, int k, int m) {
        CpuKernels.matmul(out, x, w, bias, n, k, m);
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
