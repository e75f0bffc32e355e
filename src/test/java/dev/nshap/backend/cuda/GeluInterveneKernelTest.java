package dev.nshap.backend.cuda;

import dev.nshap.backend.CounterRng;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

class GeluInterveneKernelTest {
    static double gelu(double x) { return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))); }

    /** The documented semantics, one intervention at a time, in request order. */
    static double[] reference(float[] in, boolean gelu, int[] rowSeq, int[] rowPos, int[] lens, int width, List<Intervention> ivs) {
        int rows = rowSeq.length;
        double[] x = new double[rows * width];
        for (int i = 0; i < x.length; i++) x[i] = gelu ? gelu(in[i]) : in[i];
        for (Intervention iv : ivs)
            for (int r = 0; r < rows; r++) {
                if (!iv.appliesTo(rowSeq[r])) continue;
                int t = rowPos[r];
                if (!iv.atPosition(t, lens[rowSeq[r]])) continue;
                int[] units = iv.units();
                int n = units == null ? width : units.length;
                double max = Double.NEGATIVE_INFINITY;
                if (iv.op() == Intervention.Op.NEGATIVE_NOISE)
                    for (int i = 0; i < n; i++) max = Math.max(max, CounterRng.gaussian(iv.seed(), t, units == null ? i : units[i]));
                for (int i = 0; i < n; i++) {
                    int u = units == null ? i : units[i], o = r * width + u;
                    switch (iv.op()) {
                        case ZERO -> x[o] = 0;
                        case REPLACE -> x[o] = iv.vector()[u];
                        case SCALE -> x[o] *= iv.amount();
                        case NOISE -> x[o] += iv.amount() * CounterRng.gaussian(iv.seed(), t, u);
                        case NEGATIVE_NOISE -> x[o] += iv.amount() * (CounterRng.gaussian(iv.seed(), t, u) - max);
                        case ADD -> x[o] += (double) iv.amount() * iv.vector()[u];
                    }
                }
            }
        return x;
    }

    static int[] distinctUnits(Random r, int width, int n) {
        return r.ints(0, width).distinct().limit(n).sorted().toArray();
    }

    /** 6 sequences (coalitions) of different lengths, each with its own mix of ops, plus ops on several at once. */
    static List<Intervention> coalitionMix(Random r, HookPoint hp, int width, int nSeq) {
        List<Intervention> ivs = new ArrayList<>();
        float[] mean = Gpu.gaussian(r, width, 1);
        ivs.add(Intervention.zero(hp, distinctUnits(r, width, width / 3), new int[]{0}));
        ivs.add(Intervention.replace(hp, distinctUnits(r, width, 17), new int[]{1, 3}, mean));
        ivs.add(Intervention.scale(hp, distinctUnits(r, width, width / 2), new int[]{2}, 1.7f));
        ivs.add(Intervention.noise(hp, distinctUnits(r, width, 40), new int[]{3, 4}, 0.5f, 42L));
        ivs.add(Intervention.negativeNoise(hp, distinctUnits(r, width, 25), new int[]{4}, 2f, -7L));
        ivs.add(Intervention.negativeNoise(hp, null, new int[]{5}, 0.3f, 99L));
        ivs.add(Intervention.scale(hp, null, null, 0.9f));                // every sequence, after the others
        ivs.add(Intervention.zero(hp, new int[]{0, width - 1}, new int[]{1, 5}));
        float[] dir = Gpu.gaussian(r, width, 1);
        ivs.add(Intervention.add(hp, null, new int[]{0, 3}, dir, 2.5f, 0));                       // every position
        ivs.add(Intervention.add(hp, distinctUnits(r, width, 30), new int[]{1, 3, 4}, dir, -1.5f, 4)); // from 4 on
        ivs.add(Intervention.add(hp, null, new int[]{2, 3, 5}, Gpu.gaussian(r, width, 1), 3f, Intervention.LAST));
        for (int t = 0; t < 6; t++) // one shared direction, its own coefficient at each position
            ivs.add(Intervention.add(hp, distinctUnits(r, width, 50), new int[]{3, 4}, dir, 0.5f + t, Intervention.only(t)));
        return ivs;
    }

    static void run(boolean gelu, boolean bf16, int width, long seed) {
        try (Gpu g = Gpu.open()) {
            Random r = new Random(seed);
            int[] lens = {3, 7, 1, 12, 5, 9};
            int rows = 0;
            for (int l : lens) rows += l;
            int[] rowSeq = new int[rows], rowPos = new int[rows];
            for (int s = 0, q = 0; s < lens.length; s++) for (int t = 0; t < lens[s]; t++, q++) { rowSeq[q] = s; rowPos[q] = t; }
            HookPoint hp = gelu ? HookPoint.mlpPost(0) : new HookPoint(0, HookPoint.Kind.RESID_MID);
            List<Intervention> ivs = coalitionMix(r, hp, width, lens.length);
            float[] in = Gpu.gaussian(r, rows * width, 2);
            // the launch covers request sequences 10..15 of a bigger batch: the table maps them to 0..5
            List<Intervention> shifted = new ArrayList<>();
            for (Intervention iv : ivs) {
                int[] seqs = iv.sequences() == null ? null : java.util.Arrays.stream(iv.sequences()).map(s -> s + 10).toArray();
                shifted.add(iv.withSequences(seqs));
            }
            InterventionTable t = InterventionTable.build(shifted, width, 10, lens.length, lens);
            try (CudaKernels.Ops ops = new CudaKernels.Ops(g.dev, t)) {
                var dSeq = g.up(rowSeq);
                var dPos = g.up(rowPos);
                var dIn = g.up(in);
                double[] want = reference(in, gelu, rowSeq, rowPos, lens, width, ivs);
                if (gelu) {
                    var out = g.zeros((bf16 ? 2L : 4L) * rows * width);
                    var cache = g.zeros(4L * rows * width);
                    g.k.geluIntervene(out, bf16, cache, dIn, rows, width, CudaKernels.ACT_GELU_TANH, dSeq, dPos, ops);
                    float[] got = bf16 ? g.downBf16(out, rows * width) : g.down(out, rows * width);
                    Gpu.assertClose(want, got, bf16 ? 1e-2 : 2e-6, bf16 ? 8e-3 : 2e-6, "gelu+interventions" + (bf16 ? " bf16" : ""));
                    Gpu.assertClose(want, g.down(cache, rows * width), 2e-6, 2e-6, "fp32 copy for the cache");
                } else {
                    g.k.intervene(dIn, rows, width, dSeq, dPos, ops);
                    Gpu.assertClose(want, g.down(dIn, rows * width), 2e-6, 2e-6, "interventions in place");
                }
            }
        }
    }

    @Test void geluWithCoalitionInterventionsFp32() { run(true, false, 3072, 11); }

    @Test void geluWithCoalitionInterventionsBf16() { run(true, true, 256, 12); }

    @Test void interventionsAtResidualHook() { run(false, false, 768, 13); }

    @Test void plainGeluWithoutOps() {
        try (Gpu g = Gpu.open()) {
            Random r = new Random(14);
            int rows = 9, width = 128;
            float[] in = Gpu.gaussian(r, rows * width, 3);
            var dIn = g.up(in);
            g.k.geluIntervene(dIn, false, null, dIn, rows, width, CudaKernels.ACT_GELU_TANH, null, null, null);
            double[] want = new double[in.length];
            for (int i = 0; i < in.length; i++) want[i] = gelu(in[i]);
            Gpu.assertClose(want, g.down(dIn, rows * width), 2e-6, 2e-6, "gelu in place");
        }
    }
}
