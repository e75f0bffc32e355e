package dev.nshap.shapley;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** At equal budget, the refinements must not lose to plain permutation sampling where they should win. */
class EstimatorComparisonTest {

    static double meanMse(Game g, Estimator e, long budget, int reps) {
        double[] exact = g.exactValues();
        double s = 0;
        for (int r = 0; r < reps; r++) {
            ShapleyResult res = new ShapleyRunner(g, ShapleyConfig.builder(e).seed(1000 + r).budget(budget).build())
                    .progress(false).handleSignals(false).run();
            s += Metrics.mse(res.means(), exact);
        }
        return s / reps;
    }

    /**
     * In a unanimity term of size >= 2 a player's marginal is non-zero only when it is the term's first member
     * removed; in the reversed permutation that is the term's last one, so the pair's marginals are negatively
     * correlated.
     */
    @Test
    void antitheticBeatsPermutationOnUnanimityGames() {
        var g = SyntheticGames.randomUnanimity(20, 0, 20, 25, 6, 21);
        long budget = 40L * 21;
        double plain = meanMse(g, Estimator.PERMUTATION, budget, 30), anti = meanMse(g, Estimator.ANTITHETIC, budget, 30);
        System.out.printf("antithetic vs permutation MSE at %d evaluations: %.4g vs %.4g (ratio %.2f)%n", budget, anti, plain, plain / anti);
        assertTrue(anti < plain * 0.8, "antithetic " + anti + " vs permutation " + plain);
    }

    /** When the value falls to the baseline early in the walk, TMC runs more permutations on the same budget. */
    @Test
    void tmcBeatsPermutationWhenTheValueCollapsesEarly() {
        var g = SyntheticGames.randomVoting(60, 5, 25, 0.8, 8);
        long budget = 40L * 61;
        double plain = meanMse(g, Estimator.PERMUTATION, budget, 30), tmc = meanMse(g, Estimator.TMC, budget, 30);
        System.out.printf("tmc vs permutation MSE at %d evaluations: %.4g vs %.4g (ratio %.2f)%n", budget, tmc, plain, plain / tmc);
        assertTrue(tmc < plain * 0.5, "tmc " + tmc + " vs permutation " + plain);
    }

    /**
     * TMAB stops evaluating settled players: on a game with a clear top-k gap and many null players it needs far
     * fewer evaluations until precision@k >= 0.9 holds for good.
     */
    @Test
    void tmabNeedsFarFewerEvaluationsForTheTopK() {
        var g = SyntheticGames.topKGame(300, 10, 20, 1.0, 5);
        long tm = 0, pm = 0;
        for (int r = 0; r < 2; r++) {
            long t = EstimatorEval.evaluationsToPrecision(g, Estimator.TMAB, 50 + r, 0.9, 800);
            long p = EstimatorEval.evaluationsToPrecision(g, Estimator.PERMUTATION, 50 + r, 0.9, 800);
            assertTrue(t > 0 && p > 0, "both reach precision 0.9: " + t + ", " + p);
            tm += t;
            pm += p;
        }
        System.out.printf("evaluations to precision@10 >= 0.9 (n=300): tmab %d, permutation %d, ratio %.1f%n",
                tm / 2, pm / 2, (double) pm / tm);
        assertTrue(pm > 2.5 * tm, "tmab " + tm + " vs permutation " + pm);
    }
}
