package dev.nshap.train;

import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.SafeTensors;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * AdamW (Loshchilov and Hutter) with decoupled weight decay, in PyTorch's form:
 * p <- p (1 - lr wd); m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
 * p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
 * Weight decay applies to the four Conv1D matrices of each block only; biases, LayerNorm gains and both
 * embeddings (wte is also the tied unembedding) are not decayed. Gradients are first scaled so that their global
 * L2 norm is at most {@code clip} (no clipping when clip <= 0).
 */
public final class AdamW {
    public final double beta1, beta2, eps, weightDecay, clip;

    /** One parameter tensor with its gradient and both moments; names are Hugging Face's (transformer.h.0...). */
    public record Param(String name, float[] p, float[] g, float[] m, float[] v, boolean decay) {}

    private final List<Param> params;
    private final GPT2Weights weights, grads, m, v;
    private long t;
    private final int[][] slices;

    public AdamW(GPT2Weights weights, double beta1, double beta2, double eps, double weightDecay, double clip) {
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        this.clip = clip;
        this.weights = weights;
        boolean tied = weights.tied();
        this.grads = new GPT2Weights(weights.config, tied);
        this.m = new GPT2Weights(weights.config, tied);
        this.v = new GPT2Weights(weights.config, tied);
        Map<String, SafeTensors.Tensor> pw = Checkpoint.tensors(weights, "F32"), pg = Checkpoint.tensors(grads, "F32"),
                pm = Checkpoint.tensors(m, "F32"), pv = Checkpoint.tensors(v, "F32");
        params = new ArrayList<>();
        for (Map.Entry<String, SafeTensors.Tensor> e : pw.entrySet()) {
            String n = e.getKey();
            boolean decay = e.getValue().shape().length == 2 && !n.endsWith("wte.weight") && !n.endsWith("wpe.weight");
            params.add(new Param(n, e.getValue().data(), pg.get(n).data(), pm.get(n).data(), pv.get(n).data(), decay));
        }
        slices = slices();
    }

    /** {param index, from, to}: the optimizer step's parallel tasks. */
    private int[][] slices() {
        List<int[]> out = new ArrayList<>();
        for (int k = 0; k < params.size(); k++)
            for (int i = 0, n = params.get(k).p.length; i < n; i += SLICE) out.add(new int[] {k, i, Math.min(n, i + SLICE)});
        return out.toArray(new int[0][]);
    }

    private static final int SLICE = 1 << 16;
    private static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    private static final int FL = FS.length();

    public List<Param> params() { return params; }

    /** Gradient accumulator of the same shapes as the weights (tied head: one array for wte and lm_head). */
    public GPT2Weights grads() { return grads; }

    /** Steps taken so far (Adam's t). */
    public long steps() { return t; }

    public void setSteps(long steps) { this.t = steps; }

    public void zeroGrads() {
        params.parallelStream().forEach(q -> java.util.Arrays.fill(q.g, 0f));
    }

    /** Multiplies every gradient by {@code s} (averaging micro-batches). */
    public void scaleGrads(float s) {
        if (s == 1f) return;
        params.parallelStream().forEach(q -> { for (int i = 0; i < q.g.length; i++) q.g[i] *= s; });
    }

    /** Global L2 norm of the gradients, summed in float64 in a fixed order (the same bits on every run). */
    public double gradNorm() {
        double[] part = new double[params.size()];
        IntStream.range(0, params.size()).parallel().forEach(k -> {
            float[] g = params.get(k).g;
            double s = 0;
            for (float x : g) s += (double) x * x;
            part[k] = s;
        });
        double s = 0;
        for (double x : part) s += x;
        return Math.sqrt(s);
    }

    /** Clips, then takes one step at learning rate {@code lr}; returns the gradient norm before clipping. */
    public double step(double lr) {
        double norm = gradNorm();
        double scale = clip > 0 && norm > clip ? clip / (norm + 1e-6) : 1.0;
        t++;
        double bc1 = 1 - Math.pow(beta1, t), bc2 = 1 - Math.pow(beta2, t);
        float b1 = (float) beta1, b2 = (float) beta2, ob1 = (float) (1 - beta1), ob2 = (float) (1 - beta2);
        float sc = (float) scale, e = (float) eps;
        // Folding the bias corrections into the step size and eps, as PyTorch does: lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
        float stepSize = (float) (lr / bc1), sqrtBc2 = (float) Math.sqrt(bc2);
        float decayMul = (float) (1 - lr * weightDecay);
        // Element-wise, so split into equal slices: wte alone is most of the parameters, one task per tensor left
        // one core idle.
        IntStream.range(0, slices.length).parallel().forEach(k -> {
            Param q = params.get(slices[k][0]);
            float[] p = q.p, g = q.g, m = q.m, v = q.v;
            boolean decay = q.decay && weightDecay != 0;
            int i = slices[k][1], end = slices[k][2];
            // The vector body performs exactly the scalar loop's IEEE operations in the same order (no fma), so
            // a parameter's update does not depend on where its slice or vector boundary falls.
            FloatVector vsc = FloatVector.broadcast(FS, sc), vb1 = FloatVector.broadcast(FS, b1), vob1 = FloatVector.broadcast(FS, ob1),
                    vb2 = FloatVector.broadcast(FS, b2), vob2 = FloatVector.broadcast(FS, ob2), vstep = FloatVector.broadcast(FS, stepSize),
                    vbc2 = FloatVector.broadcast(FS, sqrtBc2), ve = FloatVector.broadcast(FS, e), vdec = FloatVector.broadcast(FS, decayMul);
            for (; i + FL <= end; i += FL) {
                FloatVector gi = FloatVector.fromArray(FS, g, i).mul(vsc);
                FloatVector mi = vb1.mul(FloatVector.fromArray(FS, m, i)).add(vob1.mul(gi));
                FloatVector vi = vb2.mul(FloatVector.fromArray(FS, v, i)).add(vob2.mul(gi).mul(gi));
                mi.intoArray(m, i);
                vi.intoArray(v, i);
                FloatVector pi = FloatVector.fromArray(FS, p, i);
                if (decay) pi = pi.mul(vdec);
                pi.sub(vstep.mul(mi).div(vi.sqrt().div(vbc2).add(ve))).intoArray(p, i);
            }
            for (; i < end; i++) {
                float gi = g[i] * sc;
                m[i] = b1 * m[i] + ob1 * gi;
                v[i] = b2 * v[i] + ob2 * gi * gi;
                float pi = decay ? p[i] * decayMul : p[i];
                p[i] = pi - stepSize * m[i] / ((float) Math.sqrt(v[i]) / sqrtBc2 + e);
            }
        });
        return norm;
    }

    /** Tensors of the optimizer state (both moments), named adam_m.NAME / adam_v.NAME, for a checkpoint. */
    public LinkedHashMap<String, SafeTensors.Tensor> stateTensors() {
        LinkedHashMap<String, SafeTensors.Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, SafeTensors.Tensor> e : Checkpoint.tensors(m, "F32").entrySet()) out.put("adam_m." + e.getKey(), e.getValue());
        for (Map.Entry<String, SafeTensors.Tensor> e : Checkpoint.tensors(v, "F32").entrySet()) out.put("adam_v." + e.getKey(), e.getValue());
        return out;
    }

    public GPT2Weights weights() { return weights; }
}
