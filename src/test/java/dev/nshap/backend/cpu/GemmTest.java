package dev.nshap.backend.cpu;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GemmTest {
    /** Every implementation that runs here: the Java kernels always, OpenBLAS where it loaded. */
    static List<Gemm.Impl> impls() { return Gemm.Impl.available(); }

    /** The jar ships OpenBLAS for linux-x86_64: there it must load (elsewhere the Java kernels are the answer). */
    @Test
    void openBlasLoadsOnLinuxX86_64() {
        boolean linuxX64 = System.getProperty("os.name").toLowerCase().contains("linux")
                && System.getProperty("os.arch").matches("amd64|x86_64");
        if (!linuxX64) return;
        assertNull(Gemm.openBlasError(), "OpenBLAS did not load");
        assertTrue(Gemm.Impl.available().contains(Gemm.Impl.OPENBLAS));
        if (System.getProperty("nshap.gemm") == null && System.getenv("NSHAP_GEMM") == null)
            assertEquals(Gemm.Impl.OPENBLAS, Gemm.active(), Gemm.describe());
    }
    /** Every transpose combination, with offsets, padded leading dimensions and beta, against float64 loops. */
    @ParameterizedTest @MethodSource("impls")
    void allLayoutsMatchFloat64(Gemm.Impl g) {
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
                g.sgemm(ta, tb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc);
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
    @ParameterizedTest @MethodSource("impls")
    void rowsAreIndependentOfRowCount(Gemm.Impl g) {
        Random r = new Random(9);
        int k = 96, n = 300;
        float[] a = rand(r, 64 * k), b = rand(r, k * n);
        for (int t = 0; t < 2; t++) {
            boolean tb = t == 1;
            float[] bb = tb ? rand(r, n * k) : b;
            float[] full = new float[64 * n];
            g.sgemm(false, tb, 64, n, k, 1f, a, 0, k, bb, 0, tb ? k : n, 0f, full, 0, n);
            for (int m : new int[]{1, 3, 17}) {
                float[] part = new float[m * n];
                g.sgemm(false, tb, m, n, k, 1f, a, 0, k, bb, 0, tb ? k : n, 0f, part, 0, n);
                for (int x = 0; x < m * n; x++) assertEquals(full[x], part[x], 0f);
            }
        }
    }

    /** linear (with and without bias) against float64, on each implementation. */
    @ParameterizedTest @MethodSource("impls")
    void linearMatchesFloat64(Gemm.Impl g) {
        Random r = new Random(5);
        // the last shape's output (288 x 1000 floats) is copied back on every core, with the bias added there
        // k = 0: the product is the bias alone
        for (int[] s : new int[][]{{1, 64, 64}, {7, 96, 200}, {40, 33, 129}, {288, 40, 1000}, {3, 0, 5}}) {
            int n = s[0], k = s[1], m = s[2];
            float[] x = rand(r, n * k), w = rand(r, k * m), bias = rand(r, m);
            // with its weights copied per call, and held native (transposed, for OpenBLAS) as the forward holds them
            for (float[] bb : new float[][]{null, bias}) for (Gemm.Resident keep : new Gemm.Resident[]{null, new Gemm.Resident()}) {
                float[] out = new float[n * m];
                g.linear(out, x, w, bb, n, k, m, keep);
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < m; j++) {
                        double acc = bb == null ? 0 : bb[j];
                        for (int p = 0; p < k; p++) acc += (double) x[i * k + p] * w[p * m + j];
                        assertEquals(acc, out[i * m + j], 1e-4 * (1 + Math.abs(acc)), g + " " + n + "x" + k + "x" + m + (keep == null ? "" : " resident"));
                    }
                if (keep != null) keep.close();
            }
        }
    }

    /**
     * Batch invariance of the forward's shape: a row's output is bit-identical whatever the row count and its
     * position among the rows, on GPT-2-like widths (where OpenBLAS has a small-matrix kernel for one row) and
     * on a tiny model's (where every product is small).
     */
    @ParameterizedTest @MethodSource("impls")
    void linearRowsAreBitIdenticalWhateverTheBatch(Gemm.Impl g) {
        Random r = new Random(13);
        // GPT-2 small's four linear shapes (the forward's weights are held natively and transposed: its own kernel
        // path), and a tiny model's
        int[][] shapes = {{768, 768}, {768, 2304}, {768, 3072}, {3072, 768}, {64, 256}, {256, 64}};
        for (int[] s : shapes) for (boolean resident : new boolean[]{false, true}) {
            int k = s[0], m = s[1], rows = 70;
            float[] x = rand(r, rows * k), w = rand(r, k * m), bias = rand(r, m);
            float[] full = new float[rows * m];
            try (Gemm.Resident keep = resident ? new Gemm.Resident() : null) {
                g.linear(full, x, w, bias, rows, k, m, keep);
                for (int n : new int[]{1, 2, 5, 16, 17, 33, 64}) {
                    for (int off : new int[]{0, 3, rows - n}) {
                        float[] xs = java.util.Arrays.copyOfRange(x, off * k, (off + n) * k), out = new float[n * m];
                        g.linear(out, xs, w, bias, n, k, m, keep);
                        for (int i = 0; i < n * m; i++)
                            assertEquals(Float.floatToRawIntBits(full[off * m + i]), Float.floatToRawIntBits(out[i]),
                                    g + " k=" + k + " m=" + m + (resident ? " resident" : "") + ": row " + (off + i / m)
                                            + " computed among " + n + " rows from " + off);
                    }
                }
            }
        }
    }

    private static float[] rand(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) r.nextGaussian();
        return x;
    }
}
