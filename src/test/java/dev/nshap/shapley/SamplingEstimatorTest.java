package dev.nshap.shapley;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SamplingEstimatorTest {

    static ShapleyResult run(Game g, ShapleyConfig cfg) {
        return new ShapleyRunner(g, cfg).progress(false).handleSignals(false).run();
    }

    /** Random games with known values: unanimity (some negative weights) and voting. */
    static List<Game> games() {
        var u = SyntheticGames.randomUnanimity(9, 2, 9, 12, 4, 7);
        double[] w = u.weights.clone();
        for (int i = 0; i < w.length; i += 3) w[i] = -w[i];
        return List.of(new SyntheticGames.Unanimity(9, u.terms, w), SyntheticGames.randomVoting(10, 3, 11));
    }

    /**
     * Over repetitions with different seeds, the 95% intervals must contain the exact values about 95% of the
     * time; and the error must shrink like 1/budget in MSE.
     */
    @Test
    void samplingEstimatorsCoverTheExactValues() {
        for (Estimator e : List.of(Estimator.PERMUTATION, Estimator.ANTITHETIC, Estimator.TMC, Estimator.REGRESSION,
                Estimator.KERNELSHAP)) {
            for (Game g : games()) {
                double[] exact = g.exactValues();
                int n = g.players(), reps = 40, covered = 0, total = 0;
                double mseSmall = 0, mseLarge = 0;
                for (int r = 0; r < reps; r++) {
                    ShapleyConfig.Builder b = ShapleyConfig.builder(e).seed(100 + r).batch(16);
                    ShapleyResult small = run(g, b.budget(60L * (n + 1)).build());
                    ShapleyResult large = run(g, b.budget(480L * (n + 1)).build());
                    for (PlayerEstimate p : large.estimates()) {
                        total++;
                        double x = exact[p.player()];
                        if (p.ciLow() - 1e-12 <= x && x <= p.ciHigh() + 1e-12) covered++;
                    }
                    mseSmall += Metrics.mse(small.means(), exact) / reps;
                    mseLarge += Metrics.mse(large.means(), exact) / reps;
                }
                double coverage = (double) covered / total;
                String what = e.id() + " on " + g.describe().get("type");
                assertTrue(coverage >= 0.88 && coverage <= 0.995, what + ": coverage " + coverage);
                // 8x the budget: MSE should drop ~8x; demand at least 4x
                assertTrue(mseLarge < mseSmall / 4, what + ": mse " + mseSmall + " -> " + mseLarge);
            }
        }
    }

    /**
     * PAC top-k: on a game with well separated values the run stops by itself ("settled") with the right top-k,
     * every player IN or OUT against the boundary theta (the midpoint of the k-th and (k+1)-th means) by its
     * bandit interval, and the Student-t interval is the narrower one.
     */
    @Test
    void tmabCertifiesTheTopKAndStops() {
        int n = 30;
        int[][] terms = new int[n + n / 2][];
        double[] w = new double[terms.length];
        for (int i = 0; i < n; i++) { terms[i] = new int[]{i}; w[i] = i < 5 ? 10 + 2 * i : 0.5 * (i - 5); }
        for (int j = 0; j < n / 2; j++) { terms[n + j] = new int[]{2 * j, 2 * j + 1}; w[n + j] = 1; }   // variance
        var g = new SyntheticGames.Unanimity(n, terms, w);
        ShapleyResult r = run(g, ShapleyConfig.builder(Estimator.TMAB).topK(5).seed(5).budget(2_000_000).round(4).build());
        assertEquals("settled", r.stopReason());
        assertTrue(r.evaluations() < 2_000_000);
        assertEquals(1.0, Metrics.precisionAtK(r.means(), g.exactValues(), 5), 0);
        assertEquals(Boolean.TRUE, r.topK().get("determined"));
        assertEquals(5, ((List<?>) r.topK().get("returned")).size());
        double[] m = r.means();
        int[] top = Metrics.topK(m, 6);
        double theta = 0.5 * (m[top[4]] + m[top[5]]);
        for (PlayerEstimate p : r.estimates()) {
            assertTrue(p.settled(), "player " + p.player());
            if (p.status().equals(TopK.IN)) assertTrue(p.banditLow() > theta);
            else if (p.status().equals(TopK.OUT)) assertTrue(p.banditHigh() < theta);
            else assertEquals(TopK.AMBIGUOUS, p.status());
            if (p.stderr() > 0) assertTrue(p.ciHigh() - p.ciLow() < p.banditHigh() - p.banditLow(), "t is narrower");
        }
    }

    /**
     * Two players tied at the boundary can never be separated: without epsilon the old rule ran the whole budget;
     * with epsilon they settle as ambiguous, the run stops, and each returned player is within epsilon of the k-th.
     */
    @Test
    void epsilonStopsTiesAtTheBoundary() {
        int n = 12;
        int[][] terms = new int[n + 1][];
        double[] w = new double[n + 1];
        for (int i = 0; i < n; i++) { terms[i] = new int[]{i}; w[i] = i < 3 ? 10 : i < 5 ? 5 : 0; }
        terms[n] = new int[]{0, 1};
        w[n] = 2;                                                     // some variance
        var g = new SyntheticGames.Unanimity(n, terms, w);           // top-4: 0,1,2 and one of the tied 3,4
        ShapleyResult r = run(g, ShapleyConfig.builder(Estimator.TMAB).topK(4).seed(2).budget(400_000).round(8)
                .epsilon(0.5).build());
        assertEquals("settled", r.stopReason(), "stops long before the budget: " + r.evaluations());
        List<?> amb = (List<?>) r.topK().get("ambiguousWithinEpsilon");
        assertTrue(amb.contains("3") && amb.contains("4"), "the tied players are ambiguous: " + amb);
        double[] exact = g.exactValues(), sorted = exact.clone();
        java.util.Arrays.sort(sorted);
        double kth = sorted[n - 4];
        for (Object name : (List<?>) r.topK().get("returned"))
            assertTrue(exact[Integer.parseInt((String) name)] >= kth - 0.5);
    }

    /** Same seed => same numbers, whatever the batch size (all estimators, TMC with truncation active). */
    @Test
    void batchSizeNeverChangesTheNumbers() {
        var g = SyntheticGames.randomUnanimity(30, 4, 12, 20, 3, 9);
        for (Estimator e : List.of(Estimator.PERMUTATION, Estimator.ANTITHETIC, Estimator.TMC, Estimator.TMAB,
                Estimator.REGRESSION, Estimator.KERNELSHAP)) {
            ShapleyResult ref = null;
            for (int batch : new int[]{1, 7, 64, 1000}) {
                ShapleyResult r = run(g, ShapleyConfig.builder(e).seed(42).batch(batch).budget(9_000).topK(4).round(5).build());
                if (ref == null) { ref = r; continue; }
                assertEquals(ref.evaluations(), r.evaluations(), e + " batch " + batch);
                assertTrue(ref.stats().sameAs(r.stats()), e + " batch " + batch + ": statistics differ");
                assertArrayEquals(ref.means(), r.means(), 0.0);
            }
            assertTrue(ref.evaluations() <= 9_000, "budget respected: " + ref.evaluations());
            ShapleyResult other = run(g, ShapleyConfig.builder(e).seed(43).budget(9_000).topK(4).round(5).build());
            assertTrue(!ref.stats().sameAs(other.stats()), e + ": another seed must give other samples");
        }
    }

    /** TMC truncating at exactly v(empty) is unbiased on a game whose value stays 0 once 0, and much cheaper. */
    @Test
    void truncationSkipsEvaluationsAfterTheValueReachesTheBaseline() {
        var g = SyntheticGames.randomVoting(50, 4, 20, 0.8, 4);   // 26 null players; below quota after ~20% removed
        ShapleyResult tmc = run(g, ShapleyConfig.builder(Estimator.TMC).seed(1).permutations(200).build());
        ShapleyResult plain = run(g, ShapleyConfig.builder(Estimator.PERMUTATION).seed(1).permutations(200).build());
        assertEquals(200 * 51, plain.evaluations());
        assertTrue(tmc.evaluations() < plain.evaluations() / 2, "tmc used " + tmc.evaluations());
        // same permutations, same walk direction: the truncated marginals are exactly 0, so the means agree
        assertArrayEquals(plain.means(), tmc.means(), 1e-12);
        // a tolerance that declares "at baseline" far too early must show up as bias
        ShapleyResult early = run(g, ShapleyConfig.builder(Estimator.TMC).seed(1).permutations(200)
                .truncationTolerance(1.0).build());
        assertTrue(early.evaluations() < tmc.evaluations() / 2, "early " + early.evaluations());
        assertTrue(Metrics.maxAbs(early.means(), g.exactValues()) > 0.1, "early truncation is visible");
    }

    @Test
    void stoppingToleranceEndsTheRunEarly() {
        var g = SyntheticGames.randomVoting(12, 2, 3);
        ShapleyResult r = run(g, ShapleyConfig.builder(Estimator.PERMUTATION).seed(2).budget(10_000_000).tolerance(0.01).build());
        assertEquals("tolerance", r.stopReason());
        for (PlayerEstimate p : r.estimates()) assertTrue(p.stderr() <= 0.01);
        assertTrue(r.evaluations() < 10_000_000);
    }

    /**
     * A game that subsamples its data per permutation sees one seed per unit (shared by both halves of an
     * antithetic pair), whatever the batching, and the results stay batch-independent.
     */
    @Test
    void coalitionsCarryTheirPermutationSeed() {
        double[] w = {1, 2, 3, 4, 5, 6};
        for (Estimator e : List.of(Estimator.PERMUTATION, Estimator.ANTITHETIC, Estimator.TMC)) {
            ShapleyResult ref = null;
            for (int batch : new int[]{1, 5, 100}) {
                java.util.Map<Long, Long> seedOfUnit = new java.util.HashMap<>();
                Game g = new Game() {
                    @Override public int players() { return w.length; }
                    @Override public double[] values(List<Coalition> cs) {
                        double[] v = new double[cs.size()];
                        for (int j = 0; j < v.length; j++) {
                            Coalition c = cs.get(j);
                            Long prev = seedOfUnit.putIfAbsent(c.unit(), c.seed());
                            assertTrue(prev == null || prev == c.seed(), "unit " + c.unit() + " saw two seeds");
                            double scale = 1 + 0.5 * ((c.seed() >>> 11) * 0x1.0p-53);   // "this permutation's data"
                            for (int i = c.members().nextSetBit(0); i >= 0; i = c.members().nextSetBit(i + 1)) v[j] += w[i] * scale;
                        }
                        return v;
                    }
                };
                ShapleyResult r = run(g, ShapleyConfig.builder(e).seed(3).batch(batch).permutations(12).build());
                assertEquals(12, seedOfUnit.size(), e + ": one seed per unit");
                assertEquals(seedOfUnit.size(), new java.util.HashSet<>(seedOfUnit.values()).size(), "distinct seeds");
                if (ref == null) ref = r;
                else assertTrue(ref.stats().sameAs(r.stats()), e + " batch " + batch);
            }
        }
    }

    /**
     * TMAB's bandit intervals hold for all players and times at once with probability 1 - delta, so nearly every
     * one covers; its Student-t intervals are the usual ones, frozen early for settled players, so they are
     * checked only loosely.
     */
    @Test
    void tmabIntervalsCoverTheExactValues() {
        for (Game g : games()) {
            double[] exact = g.exactValues();
            int covered = 0, coveredT = 0, total = 0;
            for (int r = 0; r < 25; r++) {
                ShapleyResult res = run(g, ShapleyConfig.builder(Estimator.TMAB).topK(3).seed(300 + r).round(4)
                        .budget(250L * (g.players() + 1)).build());
                for (PlayerEstimate p : res.estimates()) {
                    total++;
                    double x = exact[p.player()];
                    if (p.banditLow() <= x && x <= p.banditHigh()) covered++;
                    if (p.ciLow() - 1e-12 <= x && x <= p.ciHigh() + 1e-12) coveredT++;
                }
            }
            assertTrue((double) covered / total >= 0.99, g.describe().get("type") + ": bandit coverage " + covered + "/" + total);
            assertTrue((double) coveredT / total >= 0.8, g.describe().get("type") + ": t coverage " + coveredT + "/" + total);
        }
    }
}
