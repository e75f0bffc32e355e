package dev.nshap.model;

import org.apache.commons.rng.UniformRandomProvider;
import org.apache.commons.rng.sampling.distribution.ZigguratSampler;
import org.apache.commons.rng.simple.RandomSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;

/**
 * A randomly initialised GPT-2 with Hugging Face's init, so every size can be run and benchmarked without
 * downloaded weights: N(0, 0.02) for wte, wpe and every Conv1D weight, N(0, 0.02/sqrt(2 n_layer)) for the two
 * residual projections (attn.c_proj, mlp.c_proj), biases 0, LayerNorm 1/0, lm_head tied to wte.
 */
public final class ModelInit {
    public static final double STD = 0.02;

    private ModelInit() {}

    public static GPT2Weights random(GPT2Config c, long seed) {
        GPT2Weights w = new GPT2Weights(c, true);
        double projStd = STD / Math.sqrt(2.0 * c.nLayer());
        List<float[]> arrays = new ArrayList<>();
        List<Double> stds = new ArrayList<>();
        arrays.add(w.wte); stds.add(STD);
        arrays.add(w.wpe); stds.add(STD);
        for (GPT2Weights.Block b : w.blocks) {
            arrays.add(b.attnW); stds.add(STD);
            arrays.add(b.attnProjW); stds.add(projStd);
            arrays.add(b.fcW); stds.add(STD);
            arrays.add(b.projW); stds.add(projStd);
            Arrays.fill(b.ln1W, 1f);
            Arrays.fill(b.ln2W, 1f);
        }
        Arrays.fill(w.lnfW, 1f);
        // One independent stream per tensor, keyed by (seed, tensor index): the result does not depend on how
        // many threads fill the tensors.
        IntStream.range(0, arrays.size()).parallel().forEach(i -> {
            UniformRandomProvider rng = RandomSource.XO_RO_SHI_RO_128_PP.create(new long[]{seed, 0x9E3779B97F4A7C15L * (i + 1)});
            ZigguratSampler.NormalizedGaussian g = ZigguratSampler.NormalizedGaussian.of(rng);
            float[] a = arrays.get(i);
            double s = stds.get(i);
            for (int j = 0; j < a.length; j++) a[j] = (float) (g.sample() * s);
        });
        return w;
    }
}
