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
}
