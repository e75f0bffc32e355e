package dev.nshap.backend.cuda;

import org.junit.jupiter.api.Test;

import java.util.Random;

class EmbeddingKernelTest {
    @Test void tokenPlusPositionAtEveryPackedRow() {
        try (Gpu g = Gpu.open()) {
            Random r = new Random(1);
            int V = 300, P = 40, C = 72, rows = 57;
            float[] wte = Gpu.gaussian(r, V * C, 1), wpe = Gpu.gaussian(r, P * C, 1);
            int[] tok = new int[rows], pos = new int[rows];
            for (int i = 0; i < rows; i++) { tok[i] = r.nextInt(V); pos[i] = r.nextInt(P); }
            var out = g.zeros(4L * rows * C);
            g.k.embedding(out, g.up(tok), g.up(pos), g.up(wte), g.up(wpe), rows, C);
            double[] want = new double[rows * C];
            for (int i = 0; i < rows; i++)
                for (int c = 0; c < C; c++) want[i * C + c] = (double) wte[tok[i] * C + c] + wpe[pos[i] * C + c];
            Gpu.assertClose(want, g.down(out, rows * C), 1e-6, 1e-6, "embedding");
        }
    }
}
