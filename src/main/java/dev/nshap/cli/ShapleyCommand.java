package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.eval.NeuronGame;
import dev.nshap.shapley.EstimatorEval;
import dev.nshap.shapley.Evaluators;
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
        description = "Estimate Shapley values of a cooperative game (exact, permutation, antithetic, tmc, tmab, regression, kernelshap).",
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

    @Mixin ScaleOptions scale;

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
        if (!scale.selected()) return run(game, cfg, game::values, System.out, System.err, options.force);
        byte[] spec = gameFile != null ? dev.nshap.scale.GameSpec.synthetic(game, 0)
                : dev.nshap.scale.GameSpec.neurons(neurons, String.valueOf(game.describe().get("weights_sha256")));
        try (Evaluators ev = scale.open(spec, game.players(), model, System.err)) {
            return run(game, cfg, ev, System.out, System.err, options.force);
        }
    }

    /** Runs and prints a summary; shared with other game sources. */
    static int run(Game game, ShapleyConfig cfg, PrintStream out, PrintStream err) {
        return run(game, cfg, game::values, out, err, false);
    }

    static int run(Game game, ShapleyConfig cfg, Evaluators ev, PrintStream out, PrintStream err, boolean force) {
        ShapleyResult r;
        try {
            r = new ShapleyRunner(game, cfg).evaluators(ev).force(force).run();
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
            description = "Benchmark every sampling estimator on heavy-tailed sum-of-unanimity games with closed-form"
                    + " values (orders 1-4, and a noisy variant) at budgets 10n, 30n, 100n: MSE, Spearman, precision@10"
                    + " and @100, 95%% coverage, evaluations to precision@k >= 0.9, estimator overhead per evaluation;"
                    + " then the surrogate-guided estimators for surrogates of correlation 0.3, 0.7, 0.95."
                    + " Markdown on stdout, progress on stderr.")
    static final class EvalEstimators implements Callable<Integer> {
        @Option(names = "--seed", defaultValue = "1") long seed;
        @Option(names = "--sizes", defaultValue = "3072,36864", split = ",",
                description = "numbers of players (default: ${DEFAULT-VALUE})")
        int[] sizes;
        @Option(names = "--reps", defaultValue = "3,1", split = ",",
                description = "seeds per size, one number per --sizes entry (default: ${DEFAULT-VALUE})")
        int[] reps;
        @Option(names = "--surrogate-size", defaultValue = "3072",
                description = "players of the surrogate-guided comparison (0: skip it)")
        int surrogateSize;
        @Option(names = "--surrogate-reps", defaultValue = "3") int surrogateReps;
        @Option(names = "--surrogate-k", defaultValue = "10,100", split = ",",
                description = "top-k sizes of the surrogate-guided comparison (default: ${DEFAULT-VALUE})")
        int[] surrogateK;
        @Option(names = "--budgets", defaultValue = "10,30,100", split = ",",
                description = "budgets in multiples of n (default: ${DEFAULT-VALUE})")
        int[] budgets;
        @Option(names = "--estimators", split = ",", description = "subset of: permutation, antithetic, tmab-bernstein,"
                + " tmab-normal, tmab-normal-focus, regression-fitted, kernelshap (default: all)")
        List<String> estimators;
        @Option(names = "--variants", defaultValue = "noiseless,noisy", split = ",",
                description = "game variants: noiseless, noisy (default: ${DEFAULT-VALUE})")
        List<String> variants;

        @Override public Integer call() {
            if (reps.length != sizes.length)
                throw new NshapException("--reps needs one number per --sizes entry (" + sizes.length + ")");
            for (int i = 0; i < sizes.length; i++)
                if (sizes[i] < 200 || reps[i] < 1) throw new NshapException("--sizes must be >= 200 and --reps >= 1");
            if (surrogateSize != 0 && surrogateSize < 200) throw new NshapException("--surrogate-size must be 0 or >= 200");
            for (int k : surrogateK)
                if (k < 1 || (surrogateSize > 0 && k >= surrogateSize))
                    throw new NshapException("--surrogate-k must be between 1 and --surrogate-size - 1, got " + k);
            if (surrogateReps < 1) throw new NshapException("--surrogate-reps must be >= 1");
            for (int b : budgets) if (b < 1) throw new NshapException("--budgets must be positive multiples of n");
            for (String v : variants)
                if (!v.equals("noiseless") && !v.equals("noisy")) throw new NshapException("--variants: noiseless or noisy, got " + v);
            EstimatorEval.run(sizes, reps, seed, budgets, estimators, variants.contains("noiseless"),
                    variants.contains("noisy"), System.out, System.err);
            if (surrogateSize > 0)
                System.out.print(EstimatorEval.surrogates(surrogateSize, surrogateK, surrogateReps, seed, System.err));
            return 0;
        }
    }
}
