package dev.nshap.cli;

import dev.nshap.shapley.Estimator;
import dev.nshap.shapley.ShapleyConfig;
import picocli.CommandLine.Option;

import java.nio.file.Path;

/** Estimator and run options shared by every game source of {@code nshap shapley} (a picocli mixin). */
public final class ShapleyOptions {
    @Option(names = "--estimator", defaultValue = "tmc",
            description = "exact | permutation | antithetic | tmc | tmab | regression | kernelshap (default: ${DEFAULT-VALUE})")
    String estimator;

    @Option(names = "--budget", defaultValue = "0", description = "game evaluations the run may spend")
    long budget;

    @Option(names = "--permutations", defaultValue = "0",
            description = "cap on permutations (antithetic: pairs) over all shards; fixes the units shards cover")
    long permutations;

    @Option(names = "--batch", defaultValue = "64", description = "coalitions per game call (never changes results)")
    int batch;

    @Option(names = "--seed", defaultValue = "1") long seed;

    @Option(names = "--top-k", defaultValue = "10", description = "k of the TMAB top-k and of precision@k")
    int topK;

    @Option(names = "--delta", defaultValue = "0.05",
            description = "TMAB: probability that the returned top-k is wrong (shared by all players and rounds)")
    double delta;

    @Option(names = "--epsilon", defaultValue = "0",
            description = "TMAB: settle players within epsilon of the top-k boundary as ambiguous (0: 1%% of the spread of the means)")
    double epsilon;

    @Option(names = "--surrogate", paramLabel = "RESULT",
            description = "regression: fixed additive surrogate a_j from a result file (JSON/CSV, matched by name; e.g. nshap attribute)")
    Path surrogate;

    @Option(names = "--screen", paramLabel = "RESULT",
            description = "tmab: play only the top --screen-top players by value in this result file plus --screen-sample random others")
    Path screen;

    @Option(names = "--bound", defaultValue = "bernstein",
            description = "tmab: bandit interval, bernstein (valid for bounded marginals) or normal (Gaussian approximation, settles sooner)")
    String bound;

    @Option(names = "--screen-top", defaultValue = "0") int screenTop;

    @Option(names = "--screen-sample", defaultValue = "0") int screenSample;

    @Option(names = "--screen-keep",
            description = "tmab: keep the screen to the end; by default, after every round, the sampled players' fit of value"
                    + " against the screen's adds the unplayed players likely to reach the top-k (docs/shapley.md)")
    boolean screenKeep;

    @Option(names = "--focus", negatable = true, defaultValue = "false",
            description = "tmab: each round samples only the unsettled players whose plausible interval still reaches"
                    + " the top-k boundary (the certificate is unchanged; docs/shapley.md)")
    boolean focus;

    @Option(names = "--range", defaultValue = "0",
            description = "TMAB range R of a marginal contribution (0: the range observed so far)")
    double range;

    @Option(names = "--tolerance", defaultValue = "0",
            description = "stop once every unsettled player's standard error is at most this (0: off)")
    double tolerance;

    @Option(names = "--truncation-tolerance", defaultValue = "0",
            description = "TMC: |v - baseline| at most this counts as at baseline")
    double truncationTolerance;

    @Option(names = "--truncation-baseline",
            description = "TMC: baseline value (e.g. chance level); default the value of the empty coalition")
    Double truncationBaseline;

    @Option(names = "--truncation-steps", defaultValue = "0",
            description = "TMC: truncate after more than this many consecutive steps at baseline")
    int truncationSteps;

    @Option(names = "--round", defaultValue = "16",
            description = "permutations per round: TMAB settles players (and --tolerance is checked) between rounds; for tmab keep it >= --batch to fill batches")
    int round;

    @Option(names = "--confidence", defaultValue = "0.95",
            description = "confidence level of the Student-t intervals (ci_low, ci_high; every sampling estimator)")
    double confidence;

    @Option(names = "--checkpoint-every", defaultValue = "0",
            description = "checkpoint every N evaluations (always on SIGINT/SIGTERM)")
    long checkpointEvery;

    @Option(names = "--resume", description = "continue from PREFIX.ckpt.json")
    boolean resume;

    @Option(names = "--shard", description = "run shard i of S (i/S); combine with 'nshap shapley merge'")
    String shard;

    @Option(names = "--force", description = "run even when the budget cannot give each player two samples, and replace a"
            + " result of more evaluations at --out")
    boolean force;

    @Option(names = "--out", description = "output prefix: PREFIX.json, PREFIX.csv, checkpoint PREFIX.ckpt.json")
    Path out;

    public ShapleyConfig toConfig() {
        if (out == null) throw new dev.nshap.NshapException("--out PREFIX is required");
        int[] sh = shard == null ? new int[]{0, 1} : ShapleyConfig.parseShard(shard);
        return ShapleyConfig.builder(Estimator.parse(estimator)).budget(budget).permutations(permutations)
                .batch(batch).seed(seed).topK(topK).delta(delta).range(range).tolerance(tolerance)
                .truncationTolerance(truncationTolerance).truncationBaseline(truncationBaseline)
                .truncationSteps(truncationSteps).round(round).confidence(confidence).checkpointEvery(checkpointEvery)
                .resume(resume).shard(sh[0], sh[1]).out(out).epsilon(epsilon).surrogate(surrogate)
                .screen(screen, screenTop, screenSample).screenWiden(!screenKeep).focus(focus).bound(bound).build();
    }
}
