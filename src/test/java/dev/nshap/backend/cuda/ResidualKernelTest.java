package dev.nshap.backend.cuda;

import org.junit.jupiter.api.Test;

import java.util.Random;

class ResidualKernelTest {
    @Test void addBiasAndGather() {
        try (Gpu g = Gpu.open()) {
            Random r = new Random(7);
            int rows = 33, C = 48;
            float[] x = Gpu.gaussian(r, rows * C, 1), y = Gpu.gaussian(r, rows * C, 1), bias = Gpu.gaussian(r, C, 1);
            var dx = g.up(x);
            g.k.residualAdd(dx, g.up(y), (long) rows * C);
            double[] want = new double[rows * C];
            for (int i = 0; i < want.length; i++) want[i] = (double) x[i] + y[i];
            Gpu.assertClose(want, g.down(dx, rows * C), 1e-6, 1e-6, "residual add");

            var db = g.up(x);
            g.k.biasAdd(db, g.up(bias), rows, C);
            for (int i = 0; i < want.length; i++) want[i] = (double) x[i] + bias[i % C];
            Gpu.assertClose(want, g.down(db, rows * C), 1e-6, 1e-6, "bias add");

            int[] idx = {5, 5, 0, 32, 17};
            var out = g.zeros(4L * idx.length * C);
            g.k.gatherRows(out, g.up(x), g.up(idx), idx.length, C);
            double[] wg = new double[idx.length * C];
            for (int i = 0; i < idx.length; i++) for (int c = 0; c < C; c++) wg[i * C + c] = x[idx[i] * C + c];
            Gpu.assertClose(wg, g.down(out, idx.length * C), 0, 0, "gather");
        }
    }
}
