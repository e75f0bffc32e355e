package dev.nshap.backend.cuda;

import org.junit.jupiter.api.Test;

import java.util.Random;

class AttentionKernelTest {
    /** Causal softmax attention in double over packed sequences; qkv [rows, 3C]. */
    static double[] reference(float[] qkv, int[] lens, int nHead, int C) {
        int hd = C / nHead, rows = 0;
        for (int l : lens) rows += l;
        double[] z = new double[rows * C];
        int base = 0;
        for (int T : lens) {
            for (int h = 0; h < nHead; h++)
                for (int i = 0; i < T; i++) {
                    double[] s = new double[i + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= i; j++) {
                        double d = 0;
                        for (int e = 0; e < hd; e++)
                            d += (double) qkv[(base + i) * 3 * C + h * hd + e] * qkv[(base + j) * 3 * C + C + h * hd + e];
                        s[j] = d / Math.sqrt(hd);
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= i; j++) { s[j] = Math.exp(s[j] - max); sum += s[j]; }
                    for (int e = 0; e < hd; e++) {
                        double a = 0;
                        for (int j = 0; j <= i; j++) a += s[j] * qkv[(base + j) * 3 * C + 2 * C + h * hd + e];
                        z[(base + i) * C + h * hd + e] = a / sum;
                    }
                }
            base += T;
        }
        return z;
    }

    static void check(Gpu g, int[] lens, int nHead, int hd, Boolean flash, boolean bf16, long seed) {
        Random r = new Random(seed);
        int C = nHead * hd, rows = 0, maxLen = 0;
        int[] start = new int[lens.length];
        for (int s = 0; s < lens.length; s++) { start[s] = rows; rows += lens[s]; maxLen = Math.max(maxLen, lens[s]); }
        float[] qkv = Gpu.gaussian(r, rows * 3 * C, 1.5);
        var z = g.zeros((bf16 ? 2L : 4L) * rows * C);
        g.k.attention(z, bf16, g.up(qkv), g.up(start), g.up(lens), lens.length, maxLen, nHead, C, flash);
        float[] got = bf16 ? g.downBf16(z, rows * C) : g.down(z, rows * C);
        String what = "attention " + (flash == null ? "auto" : flash ? "flash" : "short") + " hd=" + hd + (bf16 ? " bf16" : "");
        Gpu.assertClose(reference(qkv, lens, nHead, C), got, bf16 ? 2e-2 : 2e-5, bf16 ? 8e-3 : 1e-4, what);
    }

    @Test void shortKernelAllHeadDims() {
        try (Gpu g = Gpu.open()) {
            int[] lens = {1, 5, 32, 33, 64, 17};
            for (int hd : new int[]{16, 32, 64, 128}) {
                check(g, lens, 3, hd, false, false, hd);
                check(g, lens, 2, hd, false, true, hd + 1);
            }
        }
    }

    @Test void flashKernelShortAndLongSequences() {
        try (Gpu g = Gpu.open()) {
            int[] lens = {1, 63, 64, 65, 200, 7, 129};
            for (int hd : new int[]{16, 32, 64, 128}) {
                check(g, lens, 2, hd, true, false, 10 + hd);
                check(g, lens, 2, hd, true, true, 11 + hd);
            }
            check(g, new int[]{1024, 300}, 12, 64, null, false, 5); // GPT-2 small heads at the full context
        }
    }
}
