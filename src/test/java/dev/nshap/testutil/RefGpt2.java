package dev.nshap.testutil;

import dev.nshap.backend.CounterRng;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;

import java.util.List;

/**
 * An independent float64 GPT-2 forward pass for one sequence, written as plainly as possible: the reference
 * the CPU backend (and through it every other backend) is checked against. Interventions are applied with
 * their documented semantics; only interventions whose sequence set contains {@code seqIndex} apply.
 */
public final class RefGpt2 {
    private final GPT2Weights w;
    private final GPT2Config c;

    public RefGpt2(GPT2Weights w) { this.w = w; this.c = w.config; }

    /** A float64 bump added to one activation after its hook's interventions (finite differences of activations). */
    private HookPoint bumpAt;
    private int bumpT, bumpUnit;
    private double bump;

    /** {@link #logSoftmax} with {@code delta} added to unit {@code unit} at position {@code t} of {@code at}, after its interventions. */
    public double[][] logSoftmaxBumped(int[] toks, List<Intervention> ivs, int seqIndex, HookPoint at, int t, int unit, double delta) {
        bumpAt = at; bumpT = t; bumpUnit = unit; bump = delta;
        try {
            return logSoftmax(toks, ivs, seqIndex);
        } finally {
            bumpAt = null;
        }
    }

    /** Log-softmax of the next-token distribution at every position: [T][V]. */
    public double[][] logSoftmax(int[] toks, List<Intervention> ivs, int seqIndex) {
        int T = toks.length, C = c.nEmbd(), H = c.nInner(), V = c.vocabSize(), nh = c.nHead(), d = C / nh;
        double[][] x = new double[T][C];
        for (int t = 0; t < T; t++) for (int k = 0; k < C; k++) x[t][k] = (double) w.wte[toks[t] * C + k] + w.wpe[t * C + k];
        for (int l = 0; l < c.nLayer(); l++) {
            GPT2Weights.Block b = w.blocks[l];
            hook(x, l, HookPoint.Kind.RESID_PRE, ivs, seqIndex);
            double[][] a = ln(x, b.ln1W, b.ln1B);
            double[][] qkv = lin(a, b.attnW, b.attnB, C, 3 * C);
            double[][] att = new double[T][C];
            for (int h = 0; h < nh; h++) {
                for (int i = 0; i < T; i++) {
                    double[] s = new double[i + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= i; j++) {
                        double dot = 0;
                        for (int k = 0; k < d; k++) dot += qkv[i][h * d + k] * qkv[j][C + h * d + k];
                        s[j] = dot / Math.sqrt(d);
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= i; j++) { s[j] = Math.exp(s[j] - max); sum += s[j]; }
                    for (int j = 0; j <= i; j++)
                        for (int k = 0; k < d; k++) att[i][h * d + k] += s[j] / sum * qkv[j][2 * C + h * d + k];
                }
            }
            double[][] ao = lin(att, b.attnProjW, b.attnProjB, C, C);
            hook(ao, l, HookPoint.Kind.ATTN_OUT, ivs, seqIndex);
            for (int t = 0; t < T; t++) for (int k = 0; k < C; k++) x[t][k] += ao[t][k];
            hook(x, l, HookPoint.Kind.RESID_MID, ivs, seqIndex);
            double[][] m = lin(ln(x, b.ln2W, b.ln2B), b.fcW, b.fcB, C, H);
            hook(m, l, HookPoint.Kind.MLP_PRE, ivs, seqIndex);
            for (int t = 0; t < T; t++)
                for (int k = 0; k < H; k++) {
                    double v = m[t][k];
                    m[t][k] = c.activationFunction().equals("gelu") ? 0.5 * v * (1 + erfSeries(v / Math.sqrt(2)))
                            : 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
                }
            hook(m, l, HookPoint.Kind.MLP_POST, ivs, seqIndex);
            double[][] mo = lin(m, b.projW, b.projB, H, C);
            hook(mo, l, HookPoint.Kind.MLP_OUT, ivs, seqIndex);
            for (int t = 0; t < T; t++) for (int k = 0; k < C; k++) x[t][k] += mo[t][k];
            hook(x, l, HookPoint.Kind.RESID_POST, ivs, seqIndex);
        }
        double[][] f = ln(x, w.lnfW, w.lnfB);
        double[][] out = new double[T][V];
        for (int t = 0; t < T; t++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < V; v++) {
                double s = 0;
                for (int k = 0; k < C; k++) s += f[t][k] * w.lmHead[v * C + k];
                out[t][v] = s;
                max = Math.max(max, s);
            }
            double sum = 0;
            for (int v = 0; v < V; v++) sum += Math.exp(out[t][v] - max);
            double lse = max + Math.log(sum);
            for (int v = 0; v < V; v++) out[t][v] -= lse;
        }
        return out;
    }

    private void hook(double[][] a, int layer, HookPoint.Kind kind, List<Intervention> ivs, int seq) {
        intervene(a, layer, kind, ivs, seq);
        if (bumpAt != null && bumpAt.layer() == layer && bumpAt.kind() == kind) a[bumpT][bumpUnit] += bump;
    }

    private void intervene(double[][] a, int layer, HookPoint.Kind kind, List<Intervention> ivs, int seq) {
        if (ivs == null) return;
        for (Intervention iv : ivs) {
            if (iv.hook().layer() != layer || iv.hook().kind() != kind) continue;
            if (iv.sequences() != null && java.util.Arrays.stream(iv.sequences()).noneMatch(s -> s == seq)) continue;
            int width = a[0].length;
            int[] units = iv.units() != null ? iv.units() : java.util.stream.IntStream.range(0, width).toArray();
            for (int t = 0; t < a.length; t++) {
                double max = Double.NEGATIVE_INFINITY;
                if (iv.op() == Intervention.Op.NEGATIVE_NOISE)
                    for (int u : units) max = Math.max(max, CounterRng.gaussian(iv.seed(), t, u));
                for (int u : units) {
                    switch (iv.op()) {
                        case ZERO -> a[t][u] = 0;
                        case REPLACE -> a[t][u] = iv.vector()[u];
                        case SCALE -> a[t][u] *= iv.amount();
                        case NOISE -> a[t][u] += iv.amount() * (double) CounterRng.gaussian(iv.seed(), t, u);
                        case NEGATIVE_NOISE -> a[t][u] += iv.amount() * ((double) CounterRng.gaussian(iv.seed(), t, u) - max);
                    }
                }
            }
        }
    }

    /** erf by its Maclaurin series (exact to ~1e-8 for |x| < 4.5; beyond, erf = +-1 within 2e-10). */
    static double erfSeries(double x) {
        if (Math.abs(x) >= 4.5) return Math.signum(x);
        double sum = 0, term = x; // term = (-1)^n x^(2n+1) / n!
        for (int n = 0; n < 200; n++) {
            sum += term / (2 * n + 1);
            term *= -x * x / (n + 1);
        }
        return 2 / Math.sqrt(Math.PI) * sum;
    }

    private double[][] ln(double[][] x, float[] g, float[] b) {
        int C = x[0].length;
        double[][] o = new double[x.length][C];
        for (int t = 0; t < x.length; t++) {
            double mean = 0, var = 0;
            for (double v : x[t]) mean += v;
            mean /= C;
            for (double v : x[t]) var += (v - mean) * (v - mean);
            var /= C;
            for (int k = 0; k < C; k++) o[t][k] = (x[t][k] - mean) / Math.sqrt(var + c.layerNormEpsilon()) * g[k] + b[k];
        }
        return o;
    }

    private static double[][] lin(double[][] x, float[] wt, float[] bias, int in, int out) {
        double[][] o = new double[x.length][out];
        for (int t = 0; t < x.length; t++)
            for (int j = 0; j < out; j++) {
                double s = bias[j];
                for (int k = 0; k < in; k++) s += x[t][k] * wt[k * out + j];
                o[t][j] = s;
            }
        return o;
    }
}
