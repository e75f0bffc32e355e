package dev.nshap.shapley;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Compares the sampling estimators on three synthetic games with known values (n = 100, 300, 1000) and prints
 * markdown tables: error and precision@k against budget, and the evaluations TMAB and plain permutation sampling
 * need before precision@k stays at or above 0.9 for the rest of the run.
 */
public final class EstimatorEval {
    private EstimatorEval() {}

    static final int K = 10;
    static final int[] BUDGET_PERMUTATIONS = {10, 50, 250};   // budget = this many permutations' worth: x (n+1)
    static final int CAP_PERMUTATIONS = 2000;

    record Case(String name, Game game) {}

    static List<Case> games(long seed, double scale) {
        int n1 = Math.max(20, (int) Math.round(100 * scale));
        int n2 = Math.max(20, (int) Math.round(300 * scale));
        int n3 = Math.max(20, (int) Math.round(1000 * scale));
        return List.of(
                new Case("unanimity, all players in light terms", SyntheticGames.randomUnanimity(n1, K, n1, 3 * n1, 4, seed)),
                new Case("weighted voting, 10 heavy voters", SyntheticGames.randomVoting(n2, K, seed + 1)),
                new Case("voting, quota 70%, 90% null players", SyntheticGames.randomVoting(n3, K, n3 / 10 - K, 0.7, seed + 2)));
    }

    static ShapleyConfig.Builder base(Estimator e, long seed) {
        return ShapleyConfig.builder(e).seed(seed).topK(K).batch(256);
    }

    public static String run(long seed, double scale, int reps, PrintStream log) {
        StringBuilder sb = new StringBuilder();
        List<Case> cases = games(seed, scale);
        Estimator[] ests = {Estimator.PERMUTATION, Estimator.ANTITHETIC, Estimator.TMC, Estimator.TMAB};
        sb.append("### Error against budget (mean over ").append(reps).append(" seeds; budget in game evaluations)\n\n");
        sb.append("| game | n | estimator | budget | evaluations used | MSE | max abs error | Spearman | precision@")
                .append(K).append(" |\n|---|---|---|---|---|---|---|---|---|\n");
        for (Case c : cases) {
            int n = c.game().players();
            double[] exact = c.game().exactValues();
            for (int bp : BUDGET_PERMUTATIONS) {
                long budget = (long) bp * (n + 1);
                for (Estimator e : ests) {
                    double mse = 0, max = 0, sp = 0, prec = 0, used = 0;
                    for (int r = 0; r < reps; r++) {
                        ShapleyResult res = new ShapleyRunner(c.game(), base(e, seed * 1000 + r).budget(budget).build())
                                .progress(false).handleSignals(false).run();
                        Metrics.Errors er = Metrics.errors(res.means(), exact, K);
                        mse += er.mse() / reps;
                        max += er.maxAbs() / reps;
                        sp += er.spearman() / reps;
                        prec += er.precisionAtK() / reps;
                        used += (double) res.evaluations() / reps;
                    }
                    sb.append(String.format(Locale.ROOT, "| %s | %d | %s | %d | %.0f | %.3g | %.3g | %.3f | %.2f |%n",
                            c.name(), n, e.id(), budget, used, mse, max, sp, prec));
                    if (log != null) log.println("eval: " + c.name() + " " + e.id() + " budget " + budget + " done");
                }
            }
        }
        sb.append("\n### Evaluations until precision@").append(K)
                .append(" stays >= 0.9 (median over ").append(reps).append(" seeds; round = 4 permutations; cap ")
                .append(CAP_PERMUTATIONS).append(" x (n+1))\n\n");
        sb.append("| game | n | tmab | permutation | permutation / tmab |\n|---|---|---|---|---|\n");
        for (Case c : cases) {
            int n = c.game().players();
            long[] tm = new long[reps], pm = new long[reps];
            for (int r = 0; r < reps; r++) {
                tm[r] = evaluationsToPrecision(c.game(), Estimator.TMAB, seed * 1000 + r, 0.9);
                pm[r] = evaluationsToPrecision(c.game(), Estimator.PERMUTATION, seed * 1000 + r, 0.9);
                if (log != null) log.println("eval: " + c.name() + " precision run " + r + " done");
            }
            long t = median(tm), p = median(pm);
            sb.append(String.format(Locale.ROOT, "| %s | %d | %s | %s | %s |%n", c.name(), n, show(t), show(p),
                    t > 0 && p > 0 ? String.format(Locale.ROOT, "%.1f", (double) p / t) : "n/a"));
        }
        return sb.toString();
    }

    private static String show(long v) { return v < 0 ? "not reached" : Long.toString(v); }

    private static long median(long[] x) {
        long[] s = x.clone();
        Arrays.sort(s);
        // "not reached" (-1) counts as the largest
        long[] t = Arrays.stream(s).map(v -> v < 0 ? Long.MAX_VALUE : v).sorted().toArray();
        long m = t[t.length / 2];
        return m == Long.MAX_VALUE ? -1 : m;
    }

    /**
     * Evaluations after which precision@K, checked after every round, stays at least {@code target} until the run
     * ends (TMAB: all but one player settled; permutation: the cap). -1 if it does not hold at the end.
     */
    public static long evaluationsToPrecision(Game g, Estimator e, long seed, double target) {
        double[] exact = g.exactValues();
        int n = g.players();
        List<long[]> trace = new ArrayList<>();   // {evaluations, reached ? 1 : 0}
        ShapleyConfig cfg = base(e, seed).round(4).budget((long) CAP_PERMUTATIONS * (n + 1)).build();
        new ShapleyRunner(g, cfg).progress(false).handleSignals(false).listener((evals, st, settled) -> {
            double[] m = new double[n];
            for (int i = 0; i < n; i++) m[i] = st.mean(i);
            trace.add(new long[]{evals, Metrics.precisionAtK(m, exact, K) >= target ? 1 : 0});
        }).run();
        long first = -1;
        for (long[] t : trace) {
            if (t[1] == 1) { if (first < 0) first = t[0]; }
            else first = -1;
        }
        return first;
    }
}
