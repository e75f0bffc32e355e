package dev.nshap.backend.cpu;

import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each op's backward in CpuGradients against central finite differences of a float64 implementation of the op
 * written here. Every op is differentiated through a random linear read-out sum_i r_i out_i, so d/d out = r.
 */
class GradientOpsTest {
    private final Random rnd = new Random(11);

    private float[] rand(int n, double sd) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (sd * rnd.nextGaussian());
        return a;
    }

    private static double[] d(float[] a) {
        double[] o = new double[a.length];
        for (int i = 0; i < a.length; i++) o[i] = a[i];
        return o;
    }

    private static double dot(double[] a, float[] r) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * r[i];
        return s;
    }

    /** Central difference of f at every index of x (float64, step h). */
    private static double[] fd(double[] x, Function<double[], Double> f, double h) {
        double[] g = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            double keep = x[i];
            x[i] = keep + h;
            double up = f.apply(x);
            x[i] = keep - h;
            double dn = f.apply(x);
            x[i] = keep;
            g[i] = (up - dn) / (2 * h);
        }
        return g;
    }

    private static void close(double[] want, float[] got, int off, double tol, String what) {
        double scale = 0;
        for (double v : want) scale = Math.max(scale, Math.abs(v));
        assertTrue(scale > 1e-3, what + ": the reference gradient is ~0, the test would not see an error");
        for (int i = 0; i < want.length; i++)
            assertEquals(want[i], got[off + i], tol * (scale + Math.abs(want[i])), what + " at " + i);
    }

    @Test void linearBackwardMatchesFiniteDifferences() {
        int n = 5, k = 13, m = 21;
        float[] x = rand(n * k, 1), w = rand(k * m, 1), b = rand(m, 1), r = rand(n * m, 1);
        Function<double[][], Double> f = p -> {
            double s = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < m; j++) {
                    double y = p[2][j];
                    for (int q = 0; q < k; q++) y += p[0][i * k + q] * p[1][q * m + j];
                    s += r[i * m + j] * y;
                }
            return s;
        };
        double[][] p = {d(x), d(w), d(b)};
        float[] dx = new float[n * k], dW = rand(k * m, 1), db = rand(m, 1);
        float[] dW0 = dW.clone(), db0 = db.clone();
        CpuGradients.linearBackward(dx, dW, db, r, x, w, n, k, m, new float[3][]);
        for (int t = 0; t < 3; t++) {
            final int which = t;
            double[] g = fd(p[t], v -> f.apply(p), 1e-3);
            float[] got = which == 0 ? dx : which == 1 ? sub(dW, dW0) : sub(db, db0);
            close(g, got, 0, 1e-5, new String[]{"dx", "dW (accumulated)", "db (accumulated)"}[which]);
        }
    }

    /** Many rows and odd shapes: the transposed copies and the packed GEMM tails. */
    @Test void linearWeightGradientOverManyRowBlocks() {
        int n = 300, k = 7, m = 9;
        float[] x = rand(n * k, 1), w = rand(k * m, 1), r = rand(n * m, 1), dx = new float[n * k], dW = new float[k * m];
        CpuGradients.linearBackward(dx, dW, null, r, x, w, n, k, m, new float[3][]);
        for (int q = 0; q < k; q++)
            for (int j = 0; j < m; j++) {
                double s = 0;
                for (int i = 0; i < n; i++) s += (double) x[i * k + q] * r[i * m + j];
                assertEquals(s, dW[q * m + j], 1e-4 * Math.sqrt(n));
            }
    }

    private static float[] sub(float[] a, float[] b) {
        float[] o = new float[a.length];
        for (int i = 0; i < a.length; i++) o[i] = a[i] - b[i];
        return o;
    }

    private static double[] ln64(double[] x, double[] g, double[] b, int n, int c, double eps) {
        double[] o = new double[n * c];
        for (int i = 0; i < n; i++) {
            double mu = 0, var = 0;
            for (int k = 0; k < c; k++) mu += x[i * c + k];
            mu /= c;
            for (int k = 0; k < c; k++) var += (x[i * c + k] - mu) * (x[i * c + k] - mu);
            var /= c;
            for (int k = 0; k < c; k++) o[i * c + k] = (x[i * c + k] - mu) / Math.sqrt(var + eps) * g[k] + b[k];
        }
        return o;
    }

    @Test void layerNormBackwardMatchesFiniteDifferences() {
        int n = 4, c = 19;
        double eps = 1e-5;
        float[] x = rand(n * c, 2), g = rand(c, 1), b = rand(c, 1), r = rand(n * c, 1);
        for (int i = 0; i < c; i++) x[c + i] += 3f; // a row with a large mean
        double[][] p = {d(x), d(g), d(b)};
        float[] out = new float[n * c], mean = new float[n], rstd = new float[n];
        float[] lanes = new float[CpuKernels.L];
        for (int i = 0; i < n; i++) CpuKernels.layerNormRow(out, i * c, x, i * c, g, b, c, eps, lanes, mean, rstd, i);
        double[] y64 = ln64(p[0], p[1], p[2], n, c, eps);
        for (int i = 0; i < n * c; i++) assertEquals(y64[i], out[i], 1e-5 * (1 + Math.abs(y64[i])), "forward");
        float[] dx = rand(n * c, 1), dx0 = dx.clone(), dg = new float[c], db = new float[c];
        for (int i = 0; i < n; i++) {
            CpuGradients.layerNormBackwardRow(dx, i * c, r, i * c, x, i * c, mean[i], rstd[i], g, c);
            CpuGradients.layerNormParamGrads(dg, db, r, i * c, x, i * c, mean[i], rstd[i], c);
        }
        Function<double[], Double> f = v -> dot(ln64(p[0], p[1], p[2], n, c, eps), r);
        close(fd(p[0], f, 1e-4), sub(dx, dx0), 0, 1e-4, "dx (accumulated)");
        close(fd(p[1], f, 1e-4), dg, 0, 1e-4, "dg");
        close(fd(p[2], f, 1e-4), db, 0, 1e-4, "db");
    }

    private static double gelu64(double v, boolean exact) {
        if (exact) return 0.5 * v * (1 + erf64(v / Math.sqrt(2)));
        return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
    }

    /** erf as Simpson's rule on 2/sqrt(pi) e^{-t^2} over [0, x] (2000 panels): independent of the code under test. */
    private static double erf64(double x) {
        int n = 2000;
        double h = x / n, s = 1 + Math.exp(-x * x);
        for (int i = 1; i < n; i++) s += (i % 2 == 1 ? 4 : 2) * Math.exp(-(i * h) * (i * h));
        return 2 / Math.sqrt(Math.PI) * s * h / 3;
    }

    @Test void geluBackwardMatchesFiniteDifferencesBothForms() {
        for (boolean exact : new boolean[]{false, true}) {
            int n = 9000; // more than one parallel chunk
            float[] pre = rand(n, 2.5), r = rand(n, 1), dh = r.clone();
            pre[0] = 0f; pre[1] = 8f; pre[2] = -8f;
            CpuGradients.geluBackward(dh, pre, n, exact);
            for (int i = 0; i < n; i += 7) {
                double v = pre[i], h = 1e-4;
                double want = r[i] * (gelu64(v + h, exact) - gelu64(v - h, exact)) / (2 * h);
                assertEquals(want, dh[i], 1e-5 * (1 + Math.abs(want)), (exact ? "gelu" : "gelu_new") + " at x=" + v);
            }
        }
    }

    /** One head of causal attention in float64: y[i] = sum_{j<=i} softmax_j(q_i.k_j / sqrt(D)) v_j. */
    private static double[] attention64(double[] qkv, int row0, int t, int c, int nh, int h) {
        int d = c / nh;
        double[] y = new double[t * d];
        for (int i = 0; i < t; i++) {
            double[] s = new double[i + 1];
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int j = 0; j <= i; j++) {
                double dot = 0;
                for (int k = 0; k < d; k++) dot += qkv[(row0 + i) * 3 * c + h * d + k] * qkv[(row0 + j) * 3 * c + c + h * d + k];
                s[j] = dot / Math.sqrt(d);
                max = Math.max(max, s[j]);
            }
            for (int j = 0; j <= i; j++) { s[j] = Math.exp(s[j] - max); sum += s[j]; }
            for (int j = 0; j <= i; j++)
                for (int k = 0; k < d; k++) y[i * d + k] += s[j] / sum * qkv[(row0 + j) * 3 * c + 2 * c + h * d + k];
        }
        return y;
    }

    @Test void attentionBackwardMatchesFiniteDifferences() {
        int c = 12, nh = 3, d = c / nh, t = 7, row0 = 2, rows = row0 + t + 1, h = 1;
        float[] qkv = rand(rows * 3 * c, 1), datt = new float[rows * c];
        float[] r = rand(t * d, 1);
        for (int i = 0; i < t; i++) for (int k = 0; k < d; k++) datt[(row0 + i) * c + h * d + k] = r[i * d + k];
        float[] dqkv = rand(rows * 3 * c, 1), before = dqkv.clone();
        CpuGradients.attentionHeadBackward(dqkv, datt, qkv, row0, t, c, nh, h, new float[16], new float[16]);
        double[] p = d(qkv);
        double[] g = fd(p, v -> dot(attention64(p, row0, t, c, nh, h), r), 1e-4);
        double scale = 0;
        for (double v : g) scale = Math.max(scale, Math.abs(v));
        assertTrue(scale > 1e-2);
        for (int row = 0; row < rows; row++)
            for (int col = 0; col < 3 * c; col++) {
                int i = row * 3 * c + col;
                boolean mine = row >= row0 && row < row0 + t && (col % c) / d == h;
                if (mine) assertEquals(g[i], dqkv[i], 1e-4 * (scale + Math.abs(g[i])), "dqkv row " + row + " col " + col);
                else assertEquals(before[i], dqkv[i], 0f, "another head's or sequence's gradient was written at " + row + "," + col);
            }
    }

    private static double logSoftmax64(double[] lg, int t) {
        double max = Double.NEGATIVE_INFINITY, sum = 0;
        for (double v : lg) max = Math.max(max, v);
        for (double v : lg) sum += Math.exp(v - max);
        return lg[t] - max - Math.log(sum);
    }

    @Test void objectiveRowMatchesFiniteDifferences() {
        int v = 37, target = 5, foil = 30; // 37: a vector tail on every lane width
        float scale = 0.25f;
        for (Objective.Kind kind : Objective.Kind.values()) {
            float[] lg = rand(v + 3, 3);
            double[] p = d(java.util.Arrays.copyOfRange(lg, 3, 3 + v));
            Function<double[], Double> f = x -> switch (kind) {
                case ANSWER_NLL, LM_LOSS -> -logSoftmax64(x, target);
                case ANSWER_LOGPROB -> logSoftmax64(x, target);
                case LOGIT_DIFF -> x[target] - x[foil];
            };
            double want = f.apply(p);
            double got = CpuGradients.objectiveRow(kind, lg, 3, v, target, foil, scale);
            assertEquals(want, got, 1e-5 * (1 + Math.abs(want)), kind + " value");
            double[] g = fd(p, f, 1e-5);
            for (int i = 0; i < v; i++) g[i] *= scale;
            close(g, lg, 3, 1e-5, kind + " gradient");
        }
    }

    @Test void embeddingBackwardAddsToTokenAndPositionRows() {
        int c = 5, vocab = 6;
        int[] toks = {3, 1, 3, 0};
        float[] dx = rand((2 + toks.length) * c, 1), dwte = rand(vocab * c, 1), dwpe = rand(8 * c, 1);
        float[] te0 = dwte.clone(), pe0 = dwpe.clone();
        CpuGradients.embeddingBackward(dwte, dwpe, dx, toks, 2, c);
        // sum_r r . (wte[tok_t] + wpe[t]) differentiated by hand: each row's gradient lands on its token and position.
        double[] wantTe = new double[vocab * c], wantPe = new double[8 * c];
        for (int t = 0; t < toks.length; t++)
            for (int k = 0; k < c; k++) { wantTe[toks[t] * c + k] += dx[(2 + t) * c + k]; wantPe[t * c + k] += dx[(2 + t) * c + k]; }
        for (int i = 0; i < vocab * c; i++) assertEquals(wantTe[i], dwte[i] - te0[i], 1e-6);
        for (int i = 0; i < 8 * c; i++) assertEquals(wantPe[i], dwpe[i] - pe0[i], 1e-6);
    }
}
