package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.eval.NeuronGame;
import dev.nshap.shapley.EstimatorEval;
import dev.nshap.shapley.PlayerEstimate;
import dev.nshap.shapley.Game;
import dev.nshap.shapley.Metrics;
import dev.nshap.shapley.ShapleyConfig;
import dev.nshap.shapley.ShapleyOutput;
import dev.nshap.shapley.ShapleyResult;
import dev.nshap.shapley.ShapleyRunner;
import dev.nshap.shapley.SyntheticGames;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "shapley", mixinStandardHelpOptions = true,
        description = "Estimate Shapley values of a cooperative game (exact, permutation, antithetic, tmc, tmab).",
        subcommands = {ShapleyCommand.Merge.class, ShapleyCommand.EvalEstimators.class})
public final class ShapleyCommand implements Callable<Integer> {

    @Option(names = "--game", description = {"synthetic game JSON with known values, one of:",
            "  {\"type\":\"unanimity\",\"players\":N,\"terms\":[{\"coalition\":[0,2],\"weight\":1.5},...]}",
            "  {\"type\":\"voting\",\"quota\":Q,\"weights\":[integers...]}",
            "  {\"type\":\"additive\",\"weights\":[...]}   (optional \"names\":[...])"})
    Path gameFile;

    @Mixin ShapleyOptions options;

    @Mixin NeuronGameOptions neurons;

    @Mixin ModelOptions model;

    /** The game source: a synthetic game file, or the GPT-2 neuron game on a topic dataset. */
    Game buildGame() {
        if (gameFile != null && neurons.selected())
            throw new NshapException("give either --game FILE.json or --dataset FILE (the GPT-2 neuron game), not both");
        if (gameFile != null) return SyntheticGames.load(gameFile);
        if (neurons.selected()) return neurons.build(model);
        throw new NshapException("no game given: use --dataset FILE (GPT-2 neurons) or --game FILE.json");
    }

    @Override public Integer call() {
        ShapleyConfig cfg = options.toConfig();
        Game game = buildGame();
        return run(game, cfg, System.out, System.err, options.force);
    }

    /** Runs and prints a summary; shared with other game sources. */
    static int run(Game game, ShapleyConfig cfg, PrintStream out, PrintStream err) { return run(game, cfg, out, err, false); }

    static int run(Game game, ShapleyConfig cfg, PrintStream out, PrintStream err, boolean force) {
        ShapleyResult r;
        try {
            r = new ShapleyRunner(game, cfg).force(force).run();
        } catch (ShapleyRunner.Interrupted e) {
            if (!e.reported) err.println("nshap: " + e.getMessage());
            return 130;
        }
        summary(r, out);
        if (game instanceof NeuronGame ng) neuronSummary(ng, r, out);
        out.println("wrote " + cfg.jsonPath() + " and " + cfg.csvPath());
        return 0;
    }

    static void neuronSummary(NeuronGame g, ShapleyResult r, PrintStream out) {
        Map<String, Object> p = g.provenance();
        double secs = r.elapsedSeconds();
        out.printf(Locale.ROOT, "%s; v(all) %.6g, v(none) %.6g; %d forward passes; %.1f evaluations/s%n",
                p.get("value_sign"), (Double) p.get("v_all"), (Double) p.get("v_none"),
                g.evaluator().forwardPasses(), secs > 0 ? r.evaluations() / secs : 0.0);
        List<PlayerEstimate> top = r.byRank();
        out.println("rank  neuron                              value        stderr");
        for (int i = 0; i < Math.min(10, top.size()); i++) {
            PlayerEstimate e = top.get(i);
            out.printf(Locale.ROOT, "%4d  %-34s %12.6g %12.4g%n", e.rank(), g.playerName(e.player()), e.mean(), e.stderr());
        }
    }

    static void summary(ShapleyResult r, PrintStream out) {
        out.printf(Locale.ROOT, "%s: %d players, %d evaluations, %d units, stop: %s%n", r.config().estimator().id(),
                r.estimates().size(), r.evaluations(), r.units(), r.stopReason());
        Metrics.Errors e = r.errors();
        if (e != null)
            out.printf(Locale.ROOT, "error vs exact: mse %.6g, max abs %.6g, spearman %.4f, precision@%d %.3f%n",
                    e.mse(), e.maxAbs(), e.spearman(), e.k(), e.precisionAtK());
    }

    @Command(name = "merge", mixinStandardHelpOptions = true,
            description = "Combine the result files of shards 0..S-1 of one run into one result.")
    static final class Merge implements Callable<Integer> {
        @Option(names = "--out", required = true, description = "output prefix of the merged result")
        Path out;

        @Parameters(arity = "1..*", description = "shard result files (PREFIX.json of each shard)")
        List<Path> shards;

        @Override public Integer call() {
            ShapleyResult r = ShapleyOutput.merge(shards, out);
            summary(r, System.out);
            System.out.println("wrote " + r.config().jsonPath() + " and " + r.config().csvPath());
            return 0;
        }
    }

    @Command(name = "eval-estimators", mixinStandardHelpOptions = true,
            description = "Run every sampling estimator on three synthetic games (n = 100..1000) at several budgets"
                    + " and print a markdown table of errors, and the evaluations TMAB and plain permutation"
                    + " sampling need to reach precision@k >= 0.9.")
    static final class EvalEstimators implements Callable<Integer> {
        @Option(names = "--seed", defaultValue = "1") long seed;
        @Option(names = "--scale", defaultValue = "1.0",
                description = "multiplies the number of players (0.1 for a quick look)")
        double scale;
        @Option(names = "--reps", defaultValue = "3", description = "repetitions (seeds) averaged per cell")
        int reps;

        @Override public Integer call() {
            System.out.print(EstimatorEval.run(seed, scale, reps, System.err));
            return 0;
        }
    }
}
