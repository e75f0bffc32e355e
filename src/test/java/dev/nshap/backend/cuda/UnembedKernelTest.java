package dev.nshap.backend.cuda;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class UnembedKernelTest {
    @Test void logSoftmaxTargetAndTop1() {
        try (Gpu g = Gpu.open()) {
            Random r = new Random(8);
            int rows = 20, V = 50257;
            float[] x = Gpu.gaussian(r, rows * V, 3);
            int[] tg = new int[rows];
            for (int i = 0; i < rows; i++) tg[i] = i == 3 ? -1 : r.nextInt(V);
            // a tie: the lower token id wins, as in the CPU backend's arg-max
            x[5 * V + 100] = 50f; x[5 * V + 40000] = 50f;
            x[6 * V + V - 1] = 60f; // the max in the last element
            var lp = g.zeros(4L * rows);
            var top = g.zeros(4L * rows);
            var lse = g.zeros(4L * rows);
            g.k.logSoftmaxSummary(g.up(x), g.up(tg), lp, top, lse, rows, V);
            float[] gotLp = g.down(lp, rows), gotLse = g.down(lse, rows);
            int[] gotTop = g.downInts(top, rows);
            for (int i = 0; i < rows; i++) {
                double max = Double.NEGATIVE_INFINITY;
                int best = 0;
                for (int v = 0; v < V; v++) if (x[i * V + v] > max) { max = x[i * V + v]; best = v; }
                double sum = 0;
                for (int v = 0; v < V; v++) sum += Math.exp(x[i * V + v] - max);
                double l = max + Math.log(sum);
                assertEquals(best, gotTop[i], "top-1 of row " + i);
                assertEquals(l, gotLse[i], 1e-4, "lse of row " + i);
                if (tg[i] < 0) assertTrue(Float.isNaN(gotLp[i]));
                else assertEquals(x[i * V + tg[i]] - l, gotLp[i], 1e-4, "log p of row " + i);
            }
            assertEquals(100, gotTop[5]);
            assertEquals(V - 1, gotTop[6]);
        }
    }

    @Test void summaryInTheGemmEpilogueMatchesDoubleReference() {
        try (Gpu g = Gpu.open()) {
            Random r = new Random(9);
            int M = 300, V = 50257, K = 96;
            float[] a = GemmKernelTest.roundBf16(Gpu.gaussian(r, M * K, 1)), b = GemmKernelTest.roundBf16(Gpu.gaussian(r, V * K, 0.5));
            for (int k = 0; k < K; k++) b[40000 * K + k] = b[7 * K + k] = 2 * b[7 * K + k]; // a tie across tiles: 7 wins
            int[] tg = new int[M];
            for (int i = 0; i < M; i++) tg[i] = i % 7 == 0 ? -1 : r.nextInt(V);
            tg[1] = V - 1;
            for (boolean bf16 : new boolean[]{false, true}) {
                int tiles = CudaKernels.summaryTiles(bf16, V);
                var da = bf16 ? g.up(CudaKernels.toBf16(a)) : g.up(a);
                var db = bf16 ? g.up(CudaKernels.toBf16(b)) : g.up(b);
                var lp = g.zeros(4L * M);
                var top = g.zeros(4L * M);
                var lse = g.zeros(4L * M);
                g.k.unembedSummary(bf16, da, db, M, V, K, g.up(tg), g.zeros(4L * M), g.zeros(4L * M * tiles),
                        g.zeros(4L * M * tiles), g.zeros(4L * M * tiles), lp, top, lse);
                float[] gotLp = g.down(lp, M), gotLse = g.down(lse, M);
                int[] gotTop = g.downInts(top, M);
                int ties = 0;
                for (int i = 0; i < M; i++) {
                    double[] lg = new double[V];
                    double max = Double.NEGATIVE_INFINITY;
                    int best = 0;
                    for (int v = 0; v < V; v++) {
                        double s = 0;
                        for (int k = 0; k < K; k++) s += (double) a[i * K + k] * b[v * K + k];
                        lg[v] = s;
                        if (s > max) { max = s; best = v; }
                    }
                    double sum = 0;
                    for (int v = 0; v < V; v++) sum += Math.exp(lg[v] - max);
                    double l = max + Math.log(sum);
                    if (best == 7) ties++;
                    String what = (bf16 ? "bf16" : "fp32") + " row " + i;
                    assertEquals(best, gotTop[i], "top-1 " + what);
                    assertEquals(l, gotLse[i], 2e-4, "lse " + what);
                    if (tg[i] < 0) assertTrue(Float.isNaN(gotLp[i]));
                    else assertEquals(lg[tg[i]] - l, gotLp[i], 2e-4, "log p " + what);
                }
                assertTrue(ties > 0, "some rows have the tie as their max");
            }
        }
    }
}
