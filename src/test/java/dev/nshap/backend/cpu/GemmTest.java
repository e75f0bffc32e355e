package dev.nshap.backend.cpu;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

class GemmTest {
    /** Every transpose combination, with offsets, padded leading dimensions and beta, against float64 loops. */
    @Test
    void allLayoutsMatchFloat64() {
        Random r = new Random(3);
        int[][] shapes = {{1, 1, 1}, {5, 7, 3}, {33, 17, 70}, {64, 129, 40}, {3, 200, 1}};
        for (int[] s : shapes) {
            int m = s[0], n = s[1], k = s[2];
            for (int t = 0; t < 4; t++) {
                boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
                int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
                int lda = ac + 3, ldb = bc + 1, ldc = n + 2, ao = 5, bo = 2, co = 7;
                float[] a = rand(r, ao + ar * lda), b = rand(r, bo + br * ldb), c = rand(r, co + m * ldc);
                float alpha = 0.75f, beta = t == 3 ? 0f : 0.5f;
                double[] want = new double[m * n];
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double acc = 0;
                        for (int p = 0; p < k; p++) {
                            double av = ta ? a[ao + p * lda + i] : a[ao + i * lda + p];
                            double bv = tb ? b[bo + j * ldb + p] : b[bo + p * ldb + j];
                            acc += av * bv;
                        }
                        want[i * n + j] = alpha * acc + beta * c[co + i * ldc + j];
                    }
                float[] before = c.clone();
                Gemm.sgemm(ta, tb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                        assertEquals(want[i * n + j], c[co + i * ldc + j], 1e-4 * (1 + Math.abs(want[i * n + j])),
                                "ta=" + ta + " tb=" + tb + " " + m + "x" + n + "x" + k + " at " + i + "," + j);
                // Padding between rows is never touched.
                for (int i = 0; i < m; i++)
                    for (int j = n; j < ldc && co + i * ldc + j < c.length; j++)
                        assertEquals(before[co + i * ldc + j], c[co + i * ldc + j]);
            }
        }
    }

    /** A row of C does not depend on how many other rows are computed with it. */
    @Test
    void rowsAreIndependentOfRowCount() {
        Random r = new Random(9);
        int k = 96, n = 300;
        float[] a = rand(r, 64 * k), b = rand(r, k * n);
        for (int t = 0; t < 2; t++) {
            boolean tb = t == 1;
            float[] bb = tb ? rand(r, n * k) : b;
            float[] full = new float[64 * n];
            Gemm.sgemm(false, tb, 64, n, k, 1f, a, 0, k, bb, 0, tb ? k : n, 0f, full, 0, n);
            for (int m : new int[]{1, 3, 17}) {
                float[] part = new float[m * n];
                Gemm.sgemm(false, tb, m, n, k, 1f, a, 0, k, bb, 0, tb ? k : n, 0f, part, 0, n);
                for (int x = 0; x < m * n; x++) assertEquals(full[x], part[x], 0f);
            }
        }
    }

    private static float[] rand(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) r.nextGaussian();
        return x;
    }
}
