package dev.nshap.bench;

import dev.nshap.scale.ClusterEvaluators;
import dev.nshap.scale.GameSpec;
import dev.nshap.shapley.Estimator;
import dev.nshap.shapley.Game;
import dev.nshap.shapley.ShapleyConfig;
import dev.nshap.shapley.ShapleyResult;
import dev.nshap.shapley.ShapleyRunner;
import dev.nshap.shapley.SyntheticGames;

import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.UnaryOperator;

/**
 * The cluster engine's cost and scaling, on a synthetic game whose evaluation cost is a sleep per coalition (so
 * that W workers can be measured on a machine with fewer cores; a sleeping worker uses no CPU). Workers are members
 * in this process talking over loopback TCP: serialization, HMACs and the executor round trip are all real, the
 * network latency is loopback's.
 * <ul>
 * <li>Driver overhead: the same run with cost 0 through the cluster with one worker minus in-process, per 1,000
 *     coalitions.</li>
 * <li>Scaling: the run with cost c ms per coalition on 1, 2, 4 ... workers; efficiency = T(1) / (W T(W)), and the
 *     ideal time C c / W beside it.</li>
 * </ul>
 * Every run's statistics are checked against the in-process run's (bit-identical).
 */
public final class ClusterBench {
    private ClusterBench() {}

    public record Row(String what, int workers, double seconds, double perThousand, double efficiency, boolean identical) {}

    public static List<Row> run(int players, long permutations, int batch, double costMs, int[] workerCounts, Estimator e,
                                PrintStream err) {
        Game g = SyntheticGames.randomUnanimity(players, 5, players / 2, players, 4, 1);
        ShapleyConfig cfg = ShapleyConfig.builder(e).seed(1).permutations(permutations).batch(batch).round(batch)
                .topK(5).build();
        List<Row> rows = new ArrayList<>();
        ClusterEvaluators.Timing t = new ClusterEvaluators.Timing(600_000, 120_000, 1);

        // overhead: cost 0, in-process against one worker
        timed(g, cfg, null);                                     // warm the JIT on the estimator
        double[] local = timed(g, cfg, null);
        ShapleyResult ref = last;
        rows.add(new Row("in-process, cost 0", 0, local[0], local[0] / local[1] * 1e6, Double.NaN, true));
        try (ClusterEvaluators ce = ClusterEvaluators.local(1, null, GameSpec.synthetic(g, 0), g.players(), t, err,
                UnaryOperator.identity())) {
            timed(g, cfg, ce);                                   // warm the members
            double[] c1 = timed(g, cfg, ce);
            rows.add(new Row("1 worker, cost 0", 1, c1[0], c1[0] / c1[1] * 1e6, Double.NaN, ref.stats().sameAs(last.stats())));
            rows.add(new Row("driver overhead", 1, c1[0] - local[0], (c1[0] - local[0]) / c1[1] * 1e6, Double.NaN, true));
        }
        // scaling: cost c per coalition
        long micros = Math.round(costMs * 1000);
        Game slow = new GameSpec.Slow(g, micros);
        double t1 = Double.NaN;
        for (int w : workerCounts) {
            try (ClusterEvaluators ce = ClusterEvaluators.local(w, null, GameSpec.synthetic(g, micros), g.players(), t,
                    err, UnaryOperator.identity())) {
                double[] r = timed(slow, cfg, ce);
                if (Double.isNaN(t1) && w == 1) t1 = r[0];
                double eff = Double.isNaN(t1) ? Double.NaN : t1 / (w * r[0]);
                rows.add(new Row(String.format(Locale.ROOT, "%d worker(s), cost %.3g ms (ideal %.2f s)", w, costMs,
                        r[1] * costMs / 1000 / w), w, r[0], r[0] / r[1] * 1e6, eff, ref.stats().sameAs(last.stats())));
            }
        }
        return rows;
    }

    private static ShapleyResult last;

    /** {seconds, coalitions} of one run. */
    private static double[] timed(Game g, ShapleyConfig cfg, ClusterEvaluators ce) {
        ShapleyRunner r = new ShapleyRunner(g, cfg).progress(false).handleSignals(false);
        if (ce != null) r.evaluators(ce);
        long t0 = System.nanoTime();
        last = r.run();
        return new double[]{(System.nanoTime() - t0) / 1e9, last.evaluations()};
    }

    public static String table(List<Row> rows, String header) {
        StringBuilder sb = new StringBuilder(header).append("\n\n");
        sb.append("| run | workers | seconds | ms per 1,000 coalitions | efficiency T(1)/(W T(W)) | identical to in-process |\n");
        sb.append("|---|---|---|---|---|---|\n");
        for (Row r : rows)
            sb.append(String.format(Locale.ROOT, "| %s | %d | %.3f | %.0f | %s | %s |%n", r.what(), r.workers(), r.seconds(),
                    r.perThousand(), Double.isNaN(r.efficiency()) ? "" : String.format(Locale.ROOT, "%.2f", r.efficiency()),
                    r.identical() ? "yes" : "NO"));
        return sb.toString();
    }

    public static String machine() {
        double load = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        return String.format(Locale.ROOT, "%d cores, Java %s, load average %.2f", Runtime.getRuntime().availableProcessors(),
                System.getProperty("java.version"), load);
    }
}
