package dev.nshap.shapley;

import dev.nshap.io.AtomicFiles;
import org.apache.commons.rng.UniformRandomProvider;
import org.apache.commons.rng.simple.RandomSource;
import org.apache.commons.statistics.distribution.TDistribution;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * {@code nshap shapley eval-estimators}: every sampling estimator on sum-of-unanimity games with closed-form values
 * at the real sizes (n = 3,072: one GPT-2-small layer; n = 36,864: all its MLP neurons), heavy-tailed term weights
 * (Pareto 1.5), interaction orders 1-4, and a noisy variant. Prints markdown tables: per budget (10n, 30n, 100n)
 * MSE, Spearman, precision@10 and @100 and 95% interval coverage; evaluations until precision@k >= 0.9 holds for
 * good; the estimators' own time and memory per evaluation next to a game evaluation; and the surrogate-guided
 * estimators (regression with a fixed surrogate, TMAB with a screen) for surrogates of controlled quality.
 *
 * <p>Metrics at budget B are read from one run per (game, estimator, seed) to 100n, after the last group of units
 * that fits in B: for the non-adaptive estimators that is exactly the run with budget B (the budget rule starts the
 * same units); for TMAB it may differ in the size of the last round.
 */
public final class EstimatorEval {
    private EstimatorEval() {}

    static final int K = 10;
    static final int CAP_PERMUTATIONS = 2000;
    static final int[] BUDGETS = {10, 30, 100};            // x n evaluations
    static final double[] ORDERS = {0.4, 0.3, 0.2, 0.1};   // probability of a term of order 1, 2, 3, 4

    static ShapleyConfig.Builder base(Estimator e, long seed) {
        return ShapleyConfig.builder(e).seed(seed).topK(K).batch(256);
    }

    /** The benchmark games for one size: noiseless and noisy (sd = half the 100th largest |value|). */
    static List<IndexedUnanimity> games(int n, long seed) {
        IndexedUnanimity g = IndexedUnanimity.heavyTailed(n, 1.0, ORDERS, 0, seed + n);
        double[] abs = Arrays.stream(g.exactValues()).map(Math::abs).toArray();
        double kth = abs[Metrics.topK(abs, Math.min(100, n))[Math.min(100, n) - 1]];
        return List.of(g, g.withNoise(0.5 * kth));
    }

    static String label(IndexedUnanimity g) {
        return g.noise == 0 ? "orders 1-4" : String.format(Locale.ROOT, "orders 1-4, noise sd %.3g", g.noise);
    }

    /**
     * What one run shows at each budget, and when precision@10 / @100 reached 0.9 for good. {@code stopped[b]}: the
     * run ended (top-k determined) before budget b, so {@code at[b]} is its state at the stop.
     */
    record Trace(double[][] at, long[] reach, long evaluations, double gameSeconds, double totalSeconds,
                 double banditCoverage, boolean[] stopped) {}

    /** A game that times its own evaluations (to tell them from the estimator's overhead). */
    static final class Timed implements Game {
        final Game g;
        long nanos;

        Timed(Game g) { this.g = g; }

        @Override public int players() { return g.players(); }
        @Override public double[] values(List<Coalition> cs) {
            long t = System.nanoTime();
            double[] v = g.values(cs);
            nanos += System.nanoTime() - t;
            return v;
        }
        @Override public String playerName(int i) { return g.playerName(i); }
        @Override public java.util.Map<String, Object> describe() { return g.describe(); }
        @Override public double[] exactValues() { return g.exactValues(); }
    }

    /** Columns of {@code at}: evaluations, MSE, Spearman, precision@10, precision@100, coverage of 95% t intervals. */
    static Trace trace(Game game, ShapleyConfig cfg, long[] budgets) {
        double[] exact = game.exactValues();
        int n = game.players();
        double[][] at = new double[budgets.length][];
        List<long[]> reached = new ArrayList<>();
        Timed timed = new Timed(game);
        long t0 = System.nanoTime();
        long[] listening = new long[1];   // the metrics computed here are not the estimator's cost
        // each budget's row is computed once, after the run, from the last state within it: with --focus a round can
        // cost a few hundred evaluations, and a Spearman over 36,864 players after each would dwarf the run
        Snapshot[] within = new Snapshot[budgets.length], last = new Snapshot[1];
        ShapleyResult res = new ShapleyRunner(timed, cfg).progress(false).handleSignals(false).listener((evals, st, settled) -> {
            long l0 = System.nanoTime();
            Snapshot snap = new Snapshot(evals, st);
            last[0] = snap;
            reached.add(new long[]{evals, Metrics.precisionAtK(snap.m, exact, 10) >= 0.9 ? 1 : 0,
                    Metrics.precisionAtK(snap.m, exact, Math.min(100, n - 1)) >= 0.9 ? 1 : 0});
            // the state after the last group within each budget: groups are at most 10 (n + 2) evaluations
            for (int b = 0; b < budgets.length; b++)
                if (evals <= budgets[b] && evals > budgets[b] - 10L * (n + 2)) within[b] = snap;
            listening[0] += System.nanoTime() - l0;
        }).run();
        double total = (System.nanoTime() - t0 - listening[0]) / 1e9;
        // A run that stopped early (TMAB with its top-k determined) is at every later budget what it was at the stop.
        boolean[] stopped = new boolean[budgets.length];
        for (int b = 0; b < budgets.length; b++) {
            if (within[b] != null) at[b] = within[b].row(exact);
            else if (last[0] != null && last[0].evals < budgets[b]) {
                at[b] = last[0].row(exact);
                stopped[b] = true;
            }
        }
        double bandit = Double.NaN;
        if (cfg.estimator() == Estimator.TMAB) {
            int cov = 0, tot = 0;
            for (PlayerEstimate p : res.estimates()) {
                if (Double.isNaN(p.banditLow())) continue;
                tot++;
                if (p.banditLow() <= exact[p.player()] && exact[p.player()] <= p.banditHigh()) cov++;
            }
            bandit = tot == 0 ? Double.NaN : (double) cov / tot;
        }
        long[] reach = new long[2];
        for (int c = 0; c < 2; c++) {
            long first = -1;
            for (long[] t : reached) {
                if (t[1 + c] == 1) { if (first < 0) first = t[0]; }
                else first = -1;
            }
            reach[c] = first;
        }
        return new Trace(at, reach, res.evaluations(), timed.nanos / 1e9, total, bandit, stopped);
    }

    static double[] means(SufficientStats st) {
        double[] m = new double[st.players()];
        for (int i = 0; i < m.length; i++) m[i] = st.count(i) == 0 ? 0 : st.mean(i);
        return m;
    }

    /** What a row needs of the statistics after one round: means, counts and standard errors. */
    static final class Snapshot {
        final long evals;
        final double[] m, se;
        final long[] count;

        Snapshot(long evals, SufficientStats st) {
            this.evals = evals;
            int n = st.players();
            m = means(st);
            se = new double[n];
            count = new long[n];
            for (int i = 0; i < n; i++) {
                count[i] = st.count(i);
                se[i] = st.standardError(i);
            }
        }

        double[] row(double[] exact) {
            int n = m.length, cov = 0, tot = 0;
            java.util.Map<Long, Double> quantile = new java.util.HashMap<>();
            for (int i = 0; i < n; i++) {
                long c = count[i];
                if (c < 2) continue;
                double t = quantile.computeIfAbsent(c, x -> TDistribution.of(x - 1).inverseCumulativeProbability(0.975));
                tot++;
                if (Math.abs(m[i] - exact[i]) <= t * se[i] + 1e-12) cov++;
            }
            return new double[]{evals, Metrics.mse(m, exact), Metrics.spearman(m, exact), Metrics.precisionAtK(m, exact, 10),
                    Metrics.precisionAtK(m, exact, Math.min(100, n - 1)), tot == 0 ? Double.NaN : (double) cov / tot};
        }
    }

    static String fmt(double v, String f) { return Double.isNaN(v) ? "n/a" : String.format(Locale.ROOT, f, v); }

    static String reach(long v) { return v < 0 ? "not reached" : Long.toString(v); }

    public static String run(int[] sizes, int[] reps, long seed, PrintStream log) {
        return run(sizes, reps, seed, BUDGETS, null, true, true, null, log);
    }

    /** {@code budgetFactors}: budgets in multiples of n; {@code only}: labels of the estimators to run (null = all). */
    public static String run(int[] sizes, int[] reps, long seed, int[] budgetFactors, List<String> only,
                             boolean noiseless, boolean noisy, PrintStream out, PrintStream log) {
        StringBuilder sb = new StringBuilder();
        record Variant(String label, Estimator e, String bound, boolean focus) {}
        List<Variant> ests = List.of(new Variant("permutation", Estimator.PERMUTATION, TopK.BERNSTEIN, false),
                new Variant("antithetic", Estimator.ANTITHETIC, TopK.BERNSTEIN, false),
                new Variant("tmab (bernstein)", Estimator.TMAB, TopK.BERNSTEIN, false),
                new Variant("tmab (normal)", Estimator.TMAB, TopK.NORMAL, false),
                new Variant("tmab (normal, focus)", Estimator.TMAB, TopK.NORMAL, true),
                new Variant("regression (fitted)", Estimator.REGRESSION, TopK.BERNSTEIN, false),
                new Variant("kernelshap", Estimator.KERNELSHAP, TopK.BERNSTEIN, false)).stream()
                .filter(v -> only == null || only.contains(v.label().replace(" (", "-").replace(", ", "-").replace(")", ""))).toList();
        StringBuilder overhead = new StringBuilder();
        for (int si = 0; si < sizes.length; si++) {
            int n = sizes[si];
            long[] budgets = Arrays.stream(budgetFactors).mapToLong(b -> (long) b * n).toArray();
            for (IndexedUnanimity g : games(n, seed)) {
                if (g.noise == 0 ? !noiseless : !noisy) continue;
                sb.append("\n### n = ").append(n).append(", ").append(label(g)).append(" (").append(g.terms())
                        .append(" terms; mean over ").append(reps[si]).append(reps[si] == 1 ? " seed)" : " seeds)")
                        .append("\n\n| estimator | budget | MSE | Spearman | precision@10 | precision@100 | 95% coverage |\n")
                        .append("|---|---|---|---|---|---|---|\n");
                StringBuilder reachRows = new StringBuilder();
                for (Variant v : ests) {
                    Estimator e = v.e();
                    double[][] sum = new double[budgets.length][6];
                    long[][] rch = new long[2][reps[si]];
                    double gameS = 0, totalS = 0, evals = 0, bandit = 0;
                    boolean[] stoppedBefore = new boolean[budgets.length];
                    for (int r = 0; r < reps[si]; r++) {
                        // round 2: the listener sees the state every 2 units; TMAB decides between rounds of 4
                        // TMAB: rounds of 8 walks (its decisions cost O(n log n) each)
                        ShapleyConfig cfg = base(e, seed * 1000 + r).round(v.focus() ? 2 : e == Estimator.TMAB ? 8 : 2).batch(2)
                                .budget(budgets[budgets.length - 1]).topK(100).bound(v.bound()).focus(v.focus()).build();
                        Trace t = trace(g, cfg, budgets);
                        for (int b = 0; b < budgets.length; b++)
                            if (t.at()[b] != null) for (int c = 0; c < 6; c++) sum[b][c] += t.at()[b][c] / reps[si];
                        for (int b = 0; b < budgets.length; b++) stoppedBefore[b] |= t.stopped()[b];
                        rch[0][r] = t.reach()[0];
                        rch[1][r] = t.reach()[1];
                        gameS += t.gameSeconds();
                        totalS += t.totalSeconds();
                        evals += t.evaluations();
                        bandit += t.banditCoverage() / reps[si];
                        if (log != null) log.printf(Locale.ROOT, "eval-estimators: n %d %s %s seed %d: %.1f s%n", n,
                                label(g), v.label(), r, t.totalSeconds());
                    }
                    for (int b = 0; b < budgets.length; b++)
                        sb.append(String.format(Locale.ROOT, "| %s | %s | %s | %s | %s | %s | %s |%n", v.label(),
                                stoppedBefore[b] ? budgetFactors[b] + "n (stopped at " + Math.round(evals / reps[si]) + ")" : budgetFactors[b] + "n",
                                fmt(sum[b][1], "%.3g"), fmt(sum[b][2], "%.3f"), fmt(sum[b][3], "%.2f"),
                                fmt(sum[b][4], "%.2f"), fmt(sum[b][5], "%.3f")
                                        + (e == Estimator.TMAB && b == budgets.length - 1 && !Double.isNaN(bandit)
                                        ? fmt(bandit, " (bandit bound: %.3f)") : "")));
                    reachRows.append(String.format(Locale.ROOT, "| %s | %s | %s | %.0f |%n", v.label(), reach(median(rch[0])),
                            reach(median(rch[1])), evals / reps[si]));
                    if (si == sizes.length - 1 && g.noise == 0)
                        overhead.append(String.format(Locale.ROOT, "| %s | %.0f | %.2f | %.2f | %.2f |%n", v.label(),
                                evals / reps[si], 1e6 * gameS / evals, 1e6 * (totalS - gameS) / evals,
                                (totalS - gameS) / Math.max(1e-9, gameS)));
                }
                sb.append("\nEvaluations until precision@k >= 0.9 for the rest of the run (median; cap ")
                        .append(budgetFactors[budgetFactors.length - 1]).append("n = ").append(budgets[budgets.length - 1]).append("; TMAB stops once its top-100 is determined)\n\n")
                        .append("| estimator | precision@10 | precision@100 | evaluations used |\n|---|---|---|---|\n")
                        .append(reachRows);
                if (out != null) { out.print(sb); out.flush(); sb.setLength(0); }   // a long benchmark shows each table as it ends
            }
        }
        int big = sizes[sizes.length - 1];
        sb.append("\n### Estimator overhead per evaluation at n = ").append(big)
                .append(" (noiseless game; the indexed unanimity game is itself a few microseconds)\n\n")
                .append("| estimator | evaluations | game us/eval | estimator us/eval | estimator / game |\n")
                .append("|---|---|---|---|---|\n").append(overhead);
        if (out != null) { out.print(sb); out.flush(); return ""; }
        return sb.toString();
    }

    // ---------------------------------------------------------------- surrogate-guided estimators

    /** A surrogate with correlation about rho with the exact values: exact + gaussian noise of the right size. */
    static double[] surrogate(double[] exact, double rho, long seed) {
        UniformRandomProvider rng = RandomSource.XO_RO_SHI_RO_128_PP.create(seed);
        double mean = Arrays.stream(exact).average().orElse(0), var = 0;
        for (double x : exact) var += (x - mean) * (x - mean) / exact.length;
        double sd = Math.sqrt(var * (1 / (rho * rho) - 1));
        double[] a = new double[exact.length];
        for (int i = 0; i < a.length; i++) {
            double u1 = 1 - rng.nextDouble(), u2 = rng.nextDouble();
            a[i] = exact[i] + sd * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
        }
        return a;
    }

    static double pearson(double[] a, double[] b) {
        double ma = Arrays.stream(a).average().orElse(0), mb = Arrays.stream(b).average().orElse(0), ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.length; i++) {
            ab += (a[i] - ma) * (b[i] - mb);
            aa += (a[i] - ma) * (a[i] - ma);
            bb += (b[i] - mb) * (b[i] - mb);
        }
        return ab / Math.sqrt(aa * bb);
    }

    static Path writeValues(Path dir, Game g, double[] a, String name) {
        StringBuilder sb = new StringBuilder("{\"results\": [");
        for (int i = 0; i < a.length; i++)
            sb.append(i == 0 ? "" : ",").append("{\"name\":\"").append(g.playerName(i)).append("\",\"mean\":").append(a[i]).append('}');
        Path p = dir.resolve(name);
        AtomicFiles.writeString(p, sb.append("]}").toString());
        return p;
    }

    /**
     * Evaluations until precision@k >= 0.9 for good: plain TMAB against TMAB with a screen (top 3k by |a| plus a
     * sample of 2k of the rest) and the regression estimator with the surrogate fixed, for surrogates of
     * correlation 0.3, 0.7 and 0.95; with the screen's bound on missed top-k players and the actual number missed.
     */
    public static String surrogates(int n, int[] ks, int reps, long seed, PrintStream log) {
        IndexedUnanimity g = games(n, seed).get(0);
        double[] exact = g.exactValues();
        long cap = 100L * n;
        StringBuilder sb = new StringBuilder();
        sb.append("\n### Surrogate-guided estimators, n = ").append(n).append(", ").append(label(g))
                .append(": evaluations until precision@k >= 0.9 for good (median of ").append(reps)
                .append(" seeds; cap 100n = ").append(cap)
                .append("; tmab with the normal bound; screen = top M by a + a sample of R = 2k of the rest, calibrated widening)\n\n")
                .append("| k | surrogate corr. | least M holding 0.9k of the top k (median) | tmab | tmab + screen M = 3k | tmab + screen M = 10k | screen: missed bound / actually missed (3k; 10k; 0/0 = widened or none missed) | regression + surrogate | regression, fitted | permutation |\n")
                .append("|---|---|---|---|---|---|---|---|---|---|\n");
        Path dir;
        try { dir = Files.createTempDirectory("nshap-eval"); } catch (IOException e) { throw new UncheckedIOException(e); }
        for (int k : ks) {
            long[] plain = new long[reps], perm = new long[reps], fitted = new long[reps];
            for (int r = 0; r < reps; r++) {
                plain[r] = reachK(g, base(Estimator.TMAB, seed * 100 + r).round(4).batch(4).budget(cap).topK(k).bound(TopK.NORMAL).build(), k);
                perm[r] = reachK(g, base(Estimator.PERMUTATION, seed * 100 + r).round(2).batch(2).budget(cap).topK(k).build(), k);
                fitted[r] = reachK(g, base(Estimator.REGRESSION, seed * 100 + r).round(2).batch(2).budget(cap).topK(k).build(), k);
            }
            for (double rho : new double[]{0.3, 0.7, 0.95}) {
                long[] scr = new long[reps], scr10 = new long[reps], reg = new long[reps], least = new long[reps];
                StringBuilder bounds = new StringBuilder();
                double corr = 0;
                for (int r = 0; r < reps; r++) {
                    double[] a = surrogate(exact, rho, seed * 7919 + r + Math.round(rho * 100));
                    corr += pearson(a, exact) / reps;
                    least[r] = leastScreen(a, exact, k);
                    Path f = writeValues(dir, g, a, "a-" + k + "-" + rho + "-" + r + ".json");
                    ShapleyConfig sc = base(Estimator.TMAB, seed * 100 + r).round(4).batch(4).budget(cap).topK(k)
                            .bound(TopK.NORMAL).screen(f, 3 * k, 2 * k).build();
                    List<ShapleyResult> out = new ArrayList<>();
                    scr[r] = reachK(g, sc, k, out);
                    Object s = out.get(0).topK().get("screen");
                    int missedBound = s == null ? -1 : (Integer) ((java.util.Map<?, ?>) s).get("missedAtMost");
                    bounds.append(r == 0 ? "" : ", ").append(missedBound).append('/').append(missed(g, out.get(0), k));
                    out.clear();
                    scr10[r] = reachK(g, sc.toBuilder().screen(f, Math.min(10 * k, n / 2), 2 * k).build(), k, out);
                    s = out.get(0).topK().get("screen");
                    bounds.append("; ").append(s == null ? -1 : ((java.util.Map<?, ?>) s).get("missedAtMost"))
                            .append('/').append(missed(g, out.get(0), k));
                    reg[r] = reachK(g, base(Estimator.REGRESSION, seed * 100 + r).round(2).batch(2).budget(cap).topK(k)
                            .surrogate(f).build(), k);
                    if (log != null) log.printf(Locale.ROOT, "eval-estimators: surrogates k %d rho %.2f seed %d done%n", k, rho, r);
                }
                sb.append(String.format(Locale.ROOT, "| %d | %.2f (measured %.2f) | %d | %s | %s | %s | %s | %s | %s | %s |%n", k,
                        rho, corr, median(least), reach(median(plain)), reach(median(scr)), reach(median(scr10)), bounds, reach(median(reg)),
                        reach(median(fitted)), reach(median(perm))));
            }
        }
        return sb.toString();
    }

    /**
     * The fewest players, taken by a from the top, that hold ceil(0.9 k) of the true top k: no screen by a that
     * plays fewer can reach precision@k >= 0.9, so n / this bounds what any such screen can save per walk.
     */
    static long leastScreen(double[] a, double[] exact, int k) {
        java.util.Set<Integer> truth = new java.util.HashSet<>();
        for (int i : Metrics.topK(exact, k)) truth.add(i);
        int need = (int) Math.ceil(0.9 * k), hit = 0, m = 0;
        for (int i : Metrics.topK(a, a.length)) {
            m++;
            if (truth.contains(i) && ++hit >= need) break;
        }
        return m;
    }

    /** True top-k players that the screen never played. */
    static int missed(IndexedUnanimity g, ShapleyResult r, int k) {
        double[] exact = g.exactValues();
        int m = 0;
        for (int i : Metrics.topK(exact, k)) if (r.estimates().get(i).status().equals(TopK.SCREENED)) m++;
        return m;
    }

    static long reachK(Game g, ShapleyConfig cfg, int k) { return reachK(g, cfg, k, null); }

    static long reachK(Game g, ShapleyConfig cfg, int k, List<ShapleyResult> out) {
        double[] exact = g.exactValues();
        List<long[]> trace = new ArrayList<>();
        ShapleyResult res = new ShapleyRunner(g, cfg).progress(false).handleSignals(false).listener((evals, st, settled) ->
                trace.add(new long[]{evals, Metrics.precisionAtK(means(st), exact, k) >= 0.9 ? 1 : 0})).run();
        if (out != null) out.add(res);
        long first = -1;
        for (long[] t : trace) {
            if (t[1] == 1) { if (first < 0) first = t[0]; }
            else first = -1;
        }
        return first;
    }

    static long median(long[] x) {
        // "not reached" (-1) counts as the largest
        long[] t = Arrays.stream(x).map(v -> v < 0 ? Long.MAX_VALUE : v).sorted().toArray();
        long m = t[t.length / 2];
        return m == Long.MAX_VALUE ? -1 : m;
    }

    /**
     * Evaluations after which precision@K, checked after every round, stays at least {@code target} until the run
     * ends (TMAB: top-k determined; permutation: the cap). -1 if it does not hold at the end.
     */
    public static long evaluationsToPrecision(Game g, Estimator e, long seed, double target) {
        return evaluationsToPrecision(g, e, seed, target, CAP_PERMUTATIONS);
    }

    public static long evaluationsToPrecision(Game g, Estimator e, long seed, double target, int capPermutations) {
        double[] exact = g.exactValues();
        int n = g.players();
        List<long[]> trace = new ArrayList<>();   // {evaluations, reached ? 1 : 0}
        // batch = round keeps the listener's granularity at 4 permutations for every estimator (numbers unchanged)
        ShapleyConfig cfg = base(e, seed).round(4).batch(4).budget((long) capPermutations * (n + 1)).build();
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
