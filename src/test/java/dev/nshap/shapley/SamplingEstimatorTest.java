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
        for (Estimator e : List.of(Estimator.PERMUTATION, Estimator.ANTITHETIC, Estimator.TMC)) {
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
     * TMAB's intervals are the wider Bernstein ones. On a game with well separated values every player but the
     * (k+1)-th settles, the top-k is right, and settled players' intervals exclude the (k+1)-th largest mean.
     */
    @Test
    void tmabSettlesEveryoneOnASeparatedGame() {
        int n = 30;
        int[][] terms = new int[n + n / 2][];
        double[] w = new double[terms.length];
        for (int i = 0; i < n; i++) { terms[i] = new int[]{i}; w[i] = i < 5 ? 10 + 2 * i : 0.5 * (i - 5); }
        for (int j = 0; j < n / 2; j++) { terms[n + j] = new int[]{2 * j, 2 * j + 1}; w[n + j] = 1; }   // variance
        var g = new SyntheticGames.Unanimity(n, terms, w);
        ShapleyResult r = run(g, ShapleyConfig.builder(Estimator.TMAB).topK(5).seed(5).budget(2_000_000).round(4).build());
        assertEquals("settled", r.stopReason());
        assertEquals(1.0, Metrics.precisionAtK(r.means(), g.exactValues(), 5), 0);
        assertEquals(1, r.estimates().stream().filter(p -> !p.settled()).count());
        double[] m = r.means();
        double thr = m[Metrics.topK(m, 6)[5]];
        for (PlayerEstimate p : r.estimates())
            if (p.settled()) assertTrue(p.ciLow() > thr || p.ciHigh() < thr, "player " + p.player());
            else assertEquals(thr, p.mean(), 0, "the one unsettled player holds the threshold");
    }

    /** Same seed => same numbers, whatever the batch size (all estimators, TMC with truncation active). */
    @Test
    void batchSizeNeverChangesTheNumbers() {
        var g = SyntheticGames.randomUnanimity(30, 4, 12, 20, 3, 9);
        for (Estimator e : List.of(Estimator.EXACT, Estimator.PERMUTATION, Estimator.ANTITHETIC, Estimator.TMC, Estimator.TMAB)) {
            if (e == Estimator.EXACT) continue;
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
}
