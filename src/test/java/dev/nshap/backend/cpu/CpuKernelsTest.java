package dev.nshap.backend.cpu;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Each Vector-API kernel against a plain float64 loop, on shapes that exercise every tail path. */
class CpuKernelsTest {
    private final Random r = new Random(7);

    private float[] rand(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    @Test void matmulMatchesFloat64OnOddAndPanelShapes() {
        int[][] shapes = {{1, 1, 1}, {7, 13, 37}, {5, 64, 128}, {33, 96, 400}, {9, 768, 200},
                // K past one packed K block with a remainder; whole register tiles plus leftover columns; 4-row tiles plus leftover rows
                {13, 600, 305}, {8, 257, 192}, {5, 1700, 130}};
        for (int[] sh : shapes) {
            int n = sh[0], k = sh[1], m = sh[2];
            float[] x = rand(n * k), w = rand(k * m), b = rand(m), out = new float[n * m];
            CpuKernels.matmul(out, x, w, b, n, k, m);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < m; j++) {
                    double s = b[j];
                    for (int kk = 0; kk < k; kk++) s += (double) x[i * k + kk] * w[kk * m + j];
                    assertEquals(s, out[i * m + j], 1e-4 * Math.sqrt(k) + 1e-5, "shape " + n + "x" + k + "x" + m + " at " + i + "," + j);
                }
        }
    }

    @Test void matmulWithoutBias() {
        float[] x = rand(6 * 10), w = rand(10 * 20), out = new float[6 * 20];
        CpuKernels.matmul(out, x, w, null, 6, 10, 20);
        double s = 0;
        for (int kk = 0; kk < 10; kk++) s += (double) x[5 * 10 + kk] * w[kk * 20 + 19];
        assertEquals(s, out[5 * 20 + 19], 1e-5);
    }

    @Test void unembedIsDotWithEachEmbeddingRow() {
        int n = 6, c = 40, v = 517;
        float[] h = rand(n * c), e = rand(v * c), out = new float[n * v];
        CpuKernels.unembed(out, h, e, n, c, v);
        for (int i = 0; i < n; i++)
            for (int t = 0; t < v; t++) {
                double s = 0;
                for (int k = 0; k < c; k++) s += (double) h[i * c + k] * e[t * c + k];
                assertEquals(s, out[i * v + t], 1e-4);
            }
    }

    @Test void layerNormMatchesDefinition() {
        int n = 3, c = 19;
        float[] x = rand(n * c), g = rand(c), b = rand(c), out = new float[n * c];
        for (int k = 0; k < c; k++) x[k] += 100f; // a large mean must not cost precision
        CpuKernels.layerNorm(out, x, g, b, n, c, 1e-5);
        for (int i = 0; i < n; i++) {
            double mean = 0, var = 0;
            for (int k = 0; k < c; k++) mean += x[i * c + k];
            mean /= c;
            for (int k = 0; k < c; k++) var += Math.pow(x[i * c + k] - mean, 2);
            var /= c;
            for (int k = 0; k < c; k++)
                assertEquals((x[i * c + k] - mean) / Math.sqrt(var + 1e-5) * g[k] + b[k], out[i * c + k], 2e-4);
        }
    }

    /** The vectorised LayerNorm against its plain float64 reference, whole vectors and tails, large means. */
    @Test void layerNormVectorMatchesPlainReference() {
        for (int c : new int[]{19, 64, 768, 771}) {
            int n = 4;
            float[] x = rand(n * c), g = rand(c), b = rand(c), fast = new float[n * c], plain = new float[n * c];
            for (int k = 0; k < c; k++) x[2 * c + k] += 100f; // a large mean must not cost precision
            CpuKernels.layerNormRows(fast, x, g, b, 0, n, c, 1e-5);
            CpuKernels.layerNormRowsPlain(plain, x, g, b, 0, n, c, 1e-5);
            for (int i = 0; i < n * c; i++) assertEquals(plain[i], fast[i], 2e-4 * (1 + Math.abs(plain[i])), "c=" + c + " at " + i);
        }
    }

    /** max, first argmax and log-sum-exp of a row against float64, on a GPT-2-sized vocabulary and a tail. */
    @Test void logSoftmaxRowMatchesFloat64() {
        for (int n : new int[]{97, 50257}) {
            float[] x = rand(n + 3);
            for (int i = 0; i < x.length; i++) x[i] *= 8f;
            x[3 + n / 3] = 40f;
            x[3 + n / 2] = 40f; // a tie: the first index wins
            float[] st = new float[4];
            int best = CpuKernels.logSoftmaxRow(x, 3, n, st, 1);
            double sum = 0;
            for (int k = 0; k < n; k++) sum += Math.exp(x[3 + k] - 40.0);
            assertEquals(n / 3, best);
            assertEquals(40f, st[2]);
            assertEquals(Math.log(sum), st[3], 1e-5 * (1 + Math.log(sum)));
            float[] pl = new float[4];
            assertEquals(best, CpuKernels.logSoftmaxRowPlain(x, 3, n, pl, 1));
            assertEquals(pl[3], st[3], 1e-5);
        }
    }

    @Test void geluNewVectorPathAndOffsetMatchTanhFormula() {
        int n = 1003; // whole vectors plus a scalar tail, at an offset
        float[] y = new float[n + 5];
        for (int i = 0; i < y.length; i++) y[i] = -12f + 24f * i / y.length;
        float[] x = y.clone();
        CpuKernels.geluNew(y, 5, n);
        for (int i = 0; i < y.length; i++) {
            double v = x[i];
            double ref = i < 5 ? v : 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
            assertEquals(ref, y[i], 1e-6 + 1e-6 * Math.abs(ref), "x=" + v);
        }
    }

    @Test void geluNewMatchesTanhFormula() {
        float[] x = {-20f, -5f, -1f, -0.1f, 0f, 0.3f, 1f, 2.5f, 8f, 30f};
        float[] y = x.clone();
        CpuKernels.geluNew(y, y.length);
        for (int i = 0; i < x.length; i++) {
            double v = x[i];
            double ref = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
            assertEquals(ref, y[i], 1e-6 + 1e-6 * Math.abs(ref), "x=" + v);
        }
    }

    @Test void attentionHeadIsCausalSoftmaxAverage() {
        // d = 8 (one vector), 64 (several, T past a vector of keys), 20 (a scalar tail in both loops)
        attentionCase(9, 24, 3);
        attentionCase(37, 128, 2);
        attentionCase(13, 60, 3);
        attentionCase(70, 128, 2);     // four queries at a time over more than one vector of keys
    }

    void attentionCase(int t, int c, int nh) {
        int d = c / nh, row0 = 2;
        float[] qkv = rand((row0 + t) * 3 * c), out = new float[(row0 + t) * c];
        for (int h = 0; h < nh; h++) CpuKernels.attentionHead(out, qkv, row0, t, c, nh, h, new float[t]);
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < t; i++) {
                double[] s = new double[i + 1];
                double sum = 0;
                for (int j = 0; j <= i; j++) {
                    double dot = 0;
                    for (int k = 0; k < d; k++) dot += (double) qkv[(row0 + i) * 3 * c + h * d + k] * qkv[(row0 + j) * 3 * c + c + h * d + k];
                    s[j] = Math.exp(dot / Math.sqrt(d));
                    sum += s[j];
                }
                for (int k = 0; k < d; k++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++) o += s[j] / sum * qkv[(row0 + j) * 3 * c + 2 * c + h * d + k];
                    assertEquals(o, out[(row0 + i) * c + h * d + k], 2e-5, "t=" + t + " d=" + d + " h=" + h + " i=" + i + " k=" + k);
                }
            }
        for (int k = 0; k < row0 * c; k++) assertTrue(out[k] == 0f, "rows before row0 untouched");
        // One query at a time (the scored-rows path, queries in reverse) gives every query the bits of the whole
        // call, which takes full heads four queries at a time.
        int[] queries = new int[t];
        for (int i = 0; i < t; i++) queries[i] = t - 1 - i;
        float[] one = new float[t * c];
        for (int h = 0; h < nh; h++) CpuKernels.attentionHead(one, qkv, row0, t, c, nh, h, new float[t], queries, 0);
        for (int q = 0; q < t; q++)
            for (int k = 0; k < c; k++)
                assertEquals(Float.floatToIntBits(out[(row0 + queries[q]) * c + k]), Float.floatToIntBits(one[q * c + k]),
                        "query " + queries[q] + " alone, lane " + k + ", t=" + t + " d=" + d);
    }

    @Test void expIsAccurateAndItsVectorAndScalarFormsAgreeBitForBit() {
        float[] xs = new float[4096];
        for (int i = 0; i < xs.length; i++) xs[i] = -80f + 160f * i / xs.length + (float) r.nextGaussian() * 0.01f;
        for (int i = 0; i < xs.length; i += CpuKernels.L) {
            float[] v = new float[CpuKernels.L];
            CpuKernels.exp(jdk.incubator.vector.FloatVector.fromArray(CpuKernels.S, xs, i)).intoArray(v, 0);
            for (int l = 0; l < CpuKernels.L; l++) {
                float x = xs[i + l];
                assertEquals(Float.floatToIntBits(CpuKernels.exp(x)), Float.floatToIntBits(v[l]), "x=" + x);
                double ref = Math.exp(x);
                assertEquals(ref, v[l], 3e-7 * ref, "x=" + x);
            }
        }
    }

    @Test void geluTailAndVectorPathsGiveTheSameBits() {
        float[] x = rand(8 * CpuKernels.L + 5);
        for (int i = 0; i < x.length; i++) x[i] *= 4;
        float[] whole = x.clone(), shifted = new float[x.length + 3];
        CpuKernels.geluNew(whole, whole.length);
        System.arraycopy(x, 0, shifted, 3, x.length);
        CpuKernels.geluNew(shifted, 3, x.length); // every element lands in the other path's lanes
        for (int i = 0; i < x.length; i++) assertEquals(Float.floatToIntBits(whole[i]), Float.floatToIntBits(shifted[i + 3]), "i=" + i);
    }

    @Test void theForwardPassGivesTheSameBitsAfterTheJitHasCompiledIt() {
        dev.nshap.model.GPT2Config c = dev.nshap.testutil.TestModels.tinyConfig(61);
        CpuBackend b = new CpuBackend(dev.nshap.testutil.TestModels.random(c, 2, 0.3f));
        int[] toks = dev.nshap.testutil.TestModels.randomTokens(r, 24, 61);
        float[] first = b.forward(new dev.nshap.backend.ForwardRequest().addLast(toks)).logits()[0];
        for (int rep = 0; rep < 400; rep++) {
            float[] again = b.forward(new dev.nshap.backend.ForwardRequest().addLast(toks)).logits()[0];
            for (int i = 0; i < first.length; i++)
                if (Float.floatToIntBits(first[i]) != Float.floatToIntBits(again[i]))
                    fail("repetition " + rep + " changed logit " + i + ": " + first[i] + " -> " + again[i]);
        }
    }
}
