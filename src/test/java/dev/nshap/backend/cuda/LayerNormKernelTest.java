package dev.nshap.backend.cuda;

import org.junit.jupiter.api.Test;

import java.util.Random;

class LayerNormKernelTest {
    static double[] reference(float[] x, int[] rowIndex, float[] w, float[] b, int rows, int C, double eps) {
        double[] out = new double[rows * C];
        for (int r = 0; r < rows; r++) {
            int src = rowIndex == null ? r : rowIndex[r];
            double mean = 0, var = 0;
            for (int c = 0; c < C; c++) mean += x[src * C + c];
            mean /= C;
            for (int c = 0; c < C; c++) { double d = x[src * C + c] - mean; var += d * d; }
            var /= C;
            double inv = 1 / Math.sqrt(var + eps);
            for (int c = 0; c < C; c++) out[r * C + c] = (x[src * C + c] - mean) * inv * w[c] + b[c];
        }
        return out;
    }

    @Test void fp32AndBf16WithAndWithoutRowGather() {
        try (Gpu g = Gpu.open()) {
            Random r = new Random(2);
            for (int C : new int[]{32, 768, 1600}) {
                int rows = 45;
                float[] x = Gpu.gaussian(r, rows * C, 3);
                for (int i = 0; i < x.length; i++) x[i] += 5f; // a large mean: two-pass statistics matter
                float[] w = Gpu.gaussian(r, C, 1), b = Gpu.gaussian(r, C, 1);
                var dx = g.up(x);
                var dw = g.up(w);
                var db = g.up(b);
                var out = g.zeros(4L * rows * C);
                g.k.layerNorm(out, false, dx, null, dw, db, rows, C, 1e-5f);
                Gpu.assertClose(reference(x, null, w, b, rows, C, 1e-5), g.down(out, rows * C), 2e-5, 2e-5, "layernorm C=" + C);

                int[] idx = {44, 0, 7, 7, 30};
                var outB = g.zeros(2L * idx.length * C);
                g.k.layerNorm(outB, true, dx, g.up(idx), dw, db, idx.length, C, 1e-5f);
                Gpu.assertClose(reference(x, idx, w, b, idx.length, C, 1e-5), g.downBf16(outB, idx.length * C), 1e-3, 8e-3,
                        "layernorm bf16 gathered C=" + C);
            }
        }
    }
}
