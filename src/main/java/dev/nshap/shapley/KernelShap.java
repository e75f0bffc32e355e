package dev.nshap.shapley;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.backend.CounterRng;
import org.apache.commons.rng.UniformRandomProvider;
import org.apache.commons.rng.simple.RandomSource;

import java.util.BitSet;
import java.util.List;

/**
 * KernelSHAP with paired sampling, in its unbiased form (Covert and Lee, 2021).
 *
 * <p>KernelSHAP solves min E_z[(v(z) - v(empty) - z.phi)^2] subject to sum phi = v(N) - v(empty), z drawn from the
 * Shapley kernel: size s with probability proportional to 1/(s(n - s)), s = 1..n-1, then uniform. Its solution is
 * the Shapley value. The Gram matrix A = E[z z^T] is known in closed form (1/2 on the diagonal, c = E[s(s-1)] /
 * (n(n-1)) off it), so only b = E[z (v(z) - v(empty))] is estimated, and the solution is linear in b:
 * phi_i = (b_i - mean_j b_j) / (1/2 - c) + (v(N) - v(empty)) / n. Estimating A as well (the original KernelSHAP)
 * needs an n x n matrix (10.9 GB at n = 36,864) and is biased; this form stores O(n) and is unbiased, so its
 * Student-t intervals mean what they say.
 *
 * <p>Paired: each drawn coalition B (the smaller side, size t) is evaluated with its complement. With
 * D = v(B) - v(N \ B), the pair's value is D / (2 kappa) (1 - t/n) for members of B and -D / (2 kappa) t/n for the
 * others (kappa = 1/2 - c; v(empty) cancels), so a pair costs O(t) per player update. A unit is v(N), v(empty) and
 * m = ceil((n-1)/2) pairs -- about n + 1 evaluations, like one permutation -- and gives each player one sample, the
 * unit's mean; units are i.i.d., so standard errors are honest, and the coalitions are a pure function of
 * (seed, unit), so batching, resuming and shards behave as for permutations.
 */
final class KernelShap {
    final int n, pairs;
    final double kappa;
    private final double[] cdf;   // over t = 1..n/2, the smaller side's size

    KernelShap(int n) {
        this.n = n;
        this.pairs = n < 2 ? 0 : (n - 1 + 1) / 2;
        int half = n / 2;
        cdf = new double[Math.max(0, half)];
        double total = 0, es = 0, norm = 0;
        for (int s = 1; s < n; s++) {
            double p = 1.0 / ((double) s * (n - s));
            norm += p;
            es += p * s * (s - 1.0);
        }
        for (int t = 1; t <= half; t++) {
            double p = (2 * t == n ? 1.0 : 2.0) / ((double) t * (n - t));
            total += p;
            cdf[t - 1] = total;
        }
        for (int t = 0; t < half; t++) cdf[t] /= total;
        double c = n < 2 ? 0 : es / norm / ((double) n * (n - 1));
        kappa = 0.5 - c;
    }

    int unitCost() { return 2 + 2 * pairs; }

    /** The smaller side of pair j of a unit: a pure function of (unit seed, j). */
    BitSet pair(long unitSeed, int j) {
        UniformRandomProvider rng = RandomSource.XO_RO_SHI_RO_128_PP.create(
                new long[]{CounterRng.mix64(unitSeed ^ 0x4B3E1L), CounterRng.mix64(j * 0x9E3779B97F4A7C15L + 7)});
        double u = rng.nextDouble();
        int lo = 0, hi = cdf.length - 1;
        while (lo < hi) { int mid = (lo + hi) >>> 1; if (cdf[mid] > u) hi = mid; else lo = mid + 1; }
        int t = lo + 1;
        BitSet b = new BitSet(n);
        for (int k = n - t; k < n; k++) {          // Floyd: a uniform t-subset in O(t)
            int r = rng.nextInt(k + 1);
            if (b.get(r)) b.set(k); else b.set(r);
        }
        return b;
    }

    /** The walk of one unit: v(N), v(empty), then each pair's smaller side and its complement. */
    final class PairWalk extends Walk {
        final double[] values = new double[unitCost()];
        private int emitted, applied;

        PairWalk(long unit, long seed) { super(KernelShap.this.n, null, unit, seed, null); }

        @Override boolean done() { return applied == values.length; }

        @Override int emit(List<Coalition> out, int max) {
            int added = 0;
            while (emitted < values.length && added < max) {
                BitSet b;
                if (emitted == 0) { b = new BitSet(n); b.set(0, n); }
                else if (emitted == 1) b = new BitSet(n);
                else {
                    b = pair(seed, (emitted - 2) / 2);
                    if ((emitted & 1) == 1) b.flip(0, n);
                }
                out.add(new Coalition(b, unit, seed));
                emitted++;
                added++;
            }
            return added;
        }

        @Override void apply(double v) { values[applied++] = v; }

        /** Each player's sample: the unit's estimate of phi. */
        double[] samples() {
            double[] acc = new double[n];
            double g = 0;
            for (int j = 0; j < pairs; j++) {
                BitSet b = pair(seed, j);
                int t = b.cardinality();
                double d = (values[2 + 2 * j] - values[3 + 2 * j]) / (2 * kappa);
                g -= d * t / n;
                for (int p = b.nextSetBit(0); p >= 0; p = b.nextSetBit(p + 1)) acc[p] += d;
            }
            double base = (values[0] - values[1]) / n;
            double[] x = new double[n];
            for (int p = 0; p < n; p++) x[p] = pairs == 0 ? base : (g + acc[p]) / pairs + base;
            return x;
        }

        @Override ObjectNode state() {
            ObjectNode o = node();
            o.put("applied", applied);
            var a = o.putArray("values");
            for (int i = 0; i < applied; i++) a.add(values[i]);
            return o;
        }

        @Override void restore(JsonNode s) {
            applied = emitted = s.path("applied").asInt();
            for (int i = 0; i < applied; i++) values[i] = s.path("values").get(i).asDouble();
        }
    }
}
