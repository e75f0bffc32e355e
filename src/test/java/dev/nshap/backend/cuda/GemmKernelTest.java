package dev.nshap.backend.cuda;

import dev.nshap.model.SafeTensors;
import dev.nshap.backend.cuda.CudaKernels.GemmKind;
import org.junit.jupiter.api.Test;

import java.util.Random;

class GemmKernelTest {
    /** out = (acc ? out0 : 0) + A B + bias with B [K,N] (nk=false) or [N,K], in double. */
    static double[] reference(float[] a, float[] b, float[] bias, float[] out0, int M, int N, int K, boolean bNK) {
        double[] o = new double[M * N];
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double s = out0 == null ? 0 : out0[m * N + n];
                if (bias != null) s += bias[n];
                for (int k = 0; k < K; k++) s += (double) a[m * K + k] * (bNK ? b[n * K + k] : b[k * N + n]);
                o[m * N + n] = s;
            }
        return o;
    }

    static float[] roundBf16(float[] a) {
        float[] r = new float[a.length];
        for (int i = 0; i < a.length; i++) r[i] = SafeTensors.bf16ToFloat(SafeTensors.floatToBf16(a[i]));
        return r;
    }

    // Shapes off the tile sizes on purpose: partial tiles in M, N and K.
    static final int[][] SHAPES = {{1, 8, 8}, {37, 200, 96}, {130, 264, 72}, {256, 384, 768}, {70, 1001, 64}};

    @Test void fp32KernelsMatchDoubleReference() {
        try (Gpu g = Gpu.open()) {
            Random r = new Random(3);
            for (int[] s : SHAPES) {
                int M = s[0], N = s[1], K = s[2];
                float[] a = Gpu.gaussian(r, M * K, 1), b = Gpu.gaussian(r, K * N, 1), bias = Gpu.gaussian(r, N, 1);
                float[] out0 = Gpu.gaussian(r, M * N, 1);
                double tol = 1e-5 * Math.sqrt(K);
                var da = g.up(a);
                var db = g.up(b);
                if (N % 4 == 0) {
                    var out = g.up(out0.clone());
                    g.k.gemm(GemmKind.F32_NN, out, da, db, g.up(bias), M, N, K, false);
                    Gpu.assertClose(reference(a, b, bias, null, M, N, K, false), g.down(out, M * N), tol, 1e-5, "nn " + M + "x" + N + "x" + K);
                    var acc = g.up(out0.clone());
                    g.k.gemm(GemmKind.F32_NN, acc, da, db, g.up(bias), M, N, K, true);
                    Gpu.assertClose(reference(a, b, bias, out0, M, N, K, false), g.down(acc, M * N), tol, 1e-5, "nn accumulate");
                }
                var outT = g.zeros(4L * M * N);
                g.k.gemm(GemmKind.F32_NT, outT, da, db, null, M, N, K, false);  // b read as [N,K]
                Gpu.assertClose(reference(a, b, null, null, M, N, K, true), g.down(outT, M * N), tol, 1e-5, "nt " + M + "x" + N + "x" + K);
            }
        }
    }

    @Test void bf16TensorCoreKernelMatchesReferenceOnBf16Inputs() {
        try (Gpu g = Gpu.open()) {
            Random r = new Random(4);
            for (int[] s : SHAPES) {
                int M = s[0], N = s[1], K = s[2];
                float[] a = roundBf16(Gpu.gaussian(r, M * K, 1)), bt = roundBf16(Gpu.gaussian(r, N * K, 1));
                float[] bias = Gpu.gaussian(r, N, 1), out0 = Gpu.gaussian(r, M * N, 1);
                var da = g.up(CudaKernels.toBf16(a));
                var db = g.up(CudaKernels.toBf16(bt));
                // exact bf16 products, fp32 sums: only accumulation-order error remains
                double tol = 1e-5 * Math.sqrt(K) * 4;
                var out = g.zeros(4L * M * N);
                g.k.gemm(GemmKind.BF16_TC, out, da, db, g.up(bias), M, N, K, false);
                Gpu.assertClose(reference(a, bt, bias, null, M, N, K, true), g.down(out, M * N), tol, 1e-5, "bf16 " + M + "x" + N + "x" + K);
                var acc = g.up(out0.clone());
                g.k.gemm(GemmKind.BF16_TC, acc, da, db, null, M, N, K, true);
                Gpu.assertClose(reference(a, bt, null, out0, M, N, K, true), g.down(acc, M * N), tol, 1e-5, "bf16 accumulate");
            }
        }
    }

    @Test void conv1dWeightTransposeForTensorCores() {
        // Independent of the GPU: [in,out] -> bf16 [out,in].
        float[] w = {1, 2, 3, 4, 5, 6}; // [2,3]
        short[] t = CudaKernels.transposeBf16(w, 2, 3);
        float[] want = {1, 4, 2, 5, 3, 6};
        for (int i = 0; i < 6; i++) org.junit.jupiter.api.Assertions.assertEquals(want[i], SafeTensors.bf16ToFloat(t[i]));
        org.junit.jupiter.api.Assertions.assertEquals(1.0078125f, SafeTensors.bf16ToFloat(SafeTensors.floatToBf16(1.0078125f)));
        // ties to even: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7
        org.junit.jupiter.api.Assertions.assertEquals(1.0f, SafeTensors.bf16ToFloat(SafeTensors.floatToBf16(1.00390625f)));
    }
}
