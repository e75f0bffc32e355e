package dev.nshap.shapley;

import dev.nshap.NshapException;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Everything a Shapley run needs besides the game.
 *
 * @param estimator           which estimator
 * @param budget              game evaluations (coalition values) the run may spend; 0 = no limit (then
 *                            {@code permutations} must bound the run). Exact enumeration ignores it.
 * @param permutations        sampling units (permutations; antithetic pairs) over all shards; 0 = no limit.
 *                            Fixing it makes S shards cover exactly the units of one unbroken run.
 * @param batch               coalitions per {@link Game#values} call; never changes the numbers
 * @param seed                run seed; unit u's permutation is a pure function of (seed, u)
 * @param tolerance           stop once every (unsettled) player's standard error is at most this; 0 = off
 * @param truncationTolerance TMC: a value within this (absolute) distance of the baseline counts as "at baseline"
 * @param truncationBaseline  TMC: the baseline, or null for the value of the empty coalition
 * @param truncationSteps     TMC: truncate once the value has been at baseline for more than this many
 *                            consecutive evaluated steps
 * @param delta               TMAB: probability that any of the bandit's intervals fails, over all players and
 *                            all sample counts (union bound), so the returned top-k holds with probability 1 - delta
 * @param topK                TMAB: the k of top-k (and the k of precision@k in error reports)
 * @param range               TMAB: R, the range of a marginal contribution; 0 = observed range so far
 * @param round               units per round: TMAB re-settles players and the stopping tolerance is checked
 *                            between rounds; the walks of a round run in lockstep to fill batches
 * @param confidence          confidence level of the reported Student-t intervals (every sampling estimator)
 * @param checkpointEvery     write a checkpoint each time this many evaluations have been done; 0 = only on
 *                            SIGINT/SIGTERM
 * @param shardIndex          this shard (0-based)
 * @param shardCount          number of shards; shard i takes units u with u mod S == i
 * @param out                 output prefix (PREFIX.json, PREFIX.csv, PREFIX.ckpt.json), or null to write nothing
 * @param resume              continue from PREFIX.ckpt.json
 * @param epsilon             TMAB: a player whose bandit interval straddles the top-k boundary is settled as
 *                            ambiguous once the interval is at most epsilon/2 wide, so every returned player is
 *                            worth at least the true k-th value minus epsilon; 0 = 1% of the spread of the means
 * @param surrogate           regression: a result file (JSON or CSV, values matched by player name) giving a fixed
 *                            additive surrogate a_j; null = fit it on the samples (the estimates so far)
 * @param bound               TMAB: the bandit's interval, "bernstein" (empirical Bernstein, valid for any
 *                            bounded marginal) or "normal" (Gaussian approximation, no range term)
 * @param screen              TMAB: a result file of first-order values a_j; only the top {@code screenTop} by
 *                            a_j and a uniform sample of {@code screenSample} of the rest are played; null = all
 * @param screenWiden         TMAB with a screen: after every round, add the unplayed players that the sampled
 *                            players' calibration says are likely to reach the top-k ({@link TopK#widen}); false
 *                            keeps the screen to the end
 * @param focus               TMAB: each round samples only the OPEN players whose plausible interval still
 *                            reaches the top-k boundary ({@link TopK#parked}); the certificate is unchanged
 */
public record ShapleyConfig(Estimator estimator, long budget, long permutations, int batch, long seed,
                            double tolerance, double truncationTolerance, Double truncationBaseline,
                            int truncationSteps, double delta, int topK, double range, int round,
                            double confidence, long checkpointEvery, int shardIndex, int shardCount,
                            Path out, boolean resume, double epsilon, Path surrogate, Path screen, int screenTop,
                            int screenSample, String bound, boolean screenWiden, boolean focus) {

    public static final int MAX_BATCH = 1 << 20;

    public ShapleyConfig {
        if (estimator == null) throw new NshapException("no estimator given");
        if (batch < 1) throw new NshapException("--batch must be at least 1, got " + batch);
        // each batch is a list sized up front: 2^31 coalitions is an out-of-memory crash, not a batch
        if (batch > MAX_BATCH) throw new NshapException("--batch " + batch + " is too large (at most " + MAX_BATCH + " coalitions per call)");
        if (round < 1) throw new NshapException("--round must be at least 1, got " + round);
        if (round > MAX_BATCH) throw new NshapException("--round " + round + " is too large (at most " + MAX_BATCH + " units per round)");
        if (budget < 0) throw new NshapException("--budget must not be negative, got " + budget);
        if (permutations < 0) throw new NshapException("--permutations must not be negative, got " + permutations);
        if (estimator != Estimator.EXACT && budget == 0 && permutations == 0)
            throw new NshapException("estimator " + estimator.id() + " needs --budget (or --permutations)");
        if (!(tolerance >= 0) || Double.isInfinite(tolerance))
            throw new NshapException("--tolerance must be a finite number >= 0, got " + tolerance);
        if (!(truncationTolerance >= 0) || Double.isInfinite(truncationTolerance))
            throw new NshapException("--truncation-tolerance must be a finite number >= 0, got " + truncationTolerance);
        if (truncationBaseline != null && !Double.isFinite(truncationBaseline))
            throw new NshapException("--truncation-baseline must be finite");
        if (truncationSteps < 0) throw new NshapException("--truncation-steps must be >= 0, got " + truncationSteps);
        if (!(delta > 0 && delta < 1)) throw new NshapException("--delta must be in (0, 1), got " + delta);
        if (topK < 1) throw new NshapException("--top-k must be at least 1, got " + topK);
        if (!(range >= 0) || Double.isInfinite(range))
            throw new NshapException("--range must be a finite number >= 0 (0 = observed range), got " + range);
        if (!(confidence > 0 && confidence < 1))
            throw new NshapException("--confidence must be in (0, 1), got " + confidence);
        if (checkpointEvery < 0) throw new NshapException("--checkpoint-every must be >= 0, got " + checkpointEvery);
        if (shardCount < 1 || shardIndex < 0 || shardIndex >= shardCount)
            throw new NshapException("bad shard " + shardIndex + "/" + shardCount + " (need 0 <= i < S)");
        if (shardCount > 1 && (estimator == Estimator.EXACT || estimator == Estimator.TMAB))
            throw new NshapException("estimator " + estimator.id() + " cannot be sharded"
                    + (estimator == Estimator.TMAB ? " (the bandit adapts to all samples so far)" : ""));
        if (!(epsilon >= 0) || Double.isInfinite(epsilon))
            throw new NshapException("--epsilon must be a finite number >= 0 (0 = 1% of the spread of the means), got " + epsilon);
        if (surrogate != null && estimator != Estimator.REGRESSION)
            throw new NshapException("--surrogate is for --estimator regression");
        if (screen != null && estimator != Estimator.TMAB) throw new NshapException("--screen is for --estimator tmab");
        if (focus && estimator != Estimator.TMAB) throw new NshapException("--focus is for --estimator tmab");
        if (screen != null && (screenTop < 0 || screenSample < 0 || screenTop + screenSample < 1))
            throw new NshapException("--screen needs --screen-top M and --screen-sample R (>= 0, M + R >= 1)");
        if (shardCount > 1 && estimator == Estimator.REGRESSION && surrogate == null)
            throw new NshapException("estimator regression fits its surrogate on all samples so far and cannot be "
                    + "sharded: give --surrogate FILE (e.g. a pilot run's result) to shard it");
        if (!TopK.BERNSTEIN.equals(bound) && !TopK.NORMAL.equals(bound))
            throw new NshapException("--bound must be bernstein or normal, got '" + bound + "'");
        if (resume && out == null) throw new NshapException("--resume needs --out (the checkpoint is PREFIX.ckpt.json)");
    }

    /** Parses "i/S". */
    public static int[] parseShard(String spec) {
        String[] p = spec.trim().split("/");
        try {
            if (p.length == 2) {
                int i = Integer.parseInt(p[0].trim()), s = Integer.parseInt(p[1].trim());
                if (s >= 1 && i >= 0 && i < s) return new int[]{i, s};
            }
        } catch (NumberFormatException ignored) { }
        throw new NshapException("bad shard spec '" + spec + "' (expected i/S with 0 <= i < S, e.g. 0/4)");
    }

    public static Builder builder(Estimator e) { return new Builder(e); }

    public Builder toBuilder() {
        Builder b = new Builder(estimator);
        b.budget = budget; b.permutations = permutations; b.batch = batch; b.seed = seed; b.tolerance = tolerance;
        b.truncationTolerance = truncationTolerance; b.truncationBaseline = truncationBaseline;
        b.truncationSteps = truncationSteps; b.delta = delta; b.topK = topK; b.range = range; b.round = round;
        b.confidence = confidence; b.checkpointEvery = checkpointEvery; b.shardIndex = shardIndex;
        b.shardCount = shardCount; b.out = out; b.resume = resume; b.epsilon = epsilon; b.surrogate = surrogate;
        b.screen = screen; b.screenTop = screenTop; b.screenSample = screenSample; b.bound = bound;
        b.screenWiden = screenWiden; b.focus = focus;
        return b;
    }

    /** The settings that determine the numbers (not batch, checkpointing or output place). */
    public Map<String, Object> resultDefining() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("estimator", estimator.id());
        m.put("budget", budget);
        m.put("permutations", permutations);
        m.put("seed", seed);
        m.put("tolerance", tolerance);
        m.put("truncationTolerance", truncationTolerance);
        m.put("truncationBaseline", truncationBaseline);
        m.put("truncationSteps", truncationSteps);
        m.put("delta", delta);
        m.put("topK", topK);
        m.put("range", range);
        m.put("round", round);
        m.put("confidence", confidence);
        m.put("shardIndex", shardIndex);
        m.put("shardCount", shardCount);
        if (estimator == Estimator.TMAB) {
            m.put("epsilon", epsilon);
            m.put("bound", bound);
            if (focus) m.put("focus", true);   // only when on: unfocused runs' files and checkpoints stay as they were
        }
        if (surrogate != null) m.put("surrogate", surrogate.toString());
        if (screen != null) {
            m.put("screen", screen.toString());
            m.put("screenTop", screenTop);
            m.put("screenSample", screenSample);
            m.put("screenWiden", screenWiden);
        }
        return m;
    }

    /** The full configuration for provenance. */
    public Map<String, Object> describe() {
        Map<String, Object> m = resultDefining();
        m.put("batch", batch);
        m.put("checkpointEvery", checkpointEvery);
        m.put("out", out == null ? null : out.toString());
        m.put("resume", resume);
        return m;
    }

    public Path jsonPath() { return sibling(".json"); }
    public Path csvPath() { return sibling(".csv"); }
    public Path checkpointPath() { return sibling(".ckpt.json"); }

    private Path sibling(String suffix) {
        if (out == null) return null;
        return out.resolveSibling(out.getFileName().toString() + suffix);
    }

    public static final class Builder {
        private final Estimator estimator;
        public long budget, permutations;
        public int batch = 64;
        public long seed = 1;
        public double tolerance = 0, truncationTolerance = 0;
        public Double truncationBaseline = null;
        public int truncationSteps = 0;
        public double delta = 0.05;
        public int topK = 10;
        public double range = 0;
        public int round = 16;
        public double confidence = 0.95;
        public long checkpointEvery = 0;
        public int shardIndex = 0, shardCount = 1;
        public Path out;
        public boolean resume;
        public double epsilon = 0;
        public Path surrogate, screen;
        public int screenTop, screenSample;
        public String bound = TopK.BERNSTEIN;
        public boolean screenWiden = true;
        public boolean focus = false;

        Builder(Estimator e) { this.estimator = e; }

        public Builder budget(long v) { budget = v; return this; }
        public Builder permutations(long v) { permutations = v; return this; }
        public Builder batch(int v) { batch = v; return this; }
        public Builder seed(long v) { seed = v; return this; }
        public Builder tolerance(double v) { tolerance = v; return this; }
        public Builder truncationTolerance(double v) { truncationTolerance = v; return this; }
        public Builder truncationBaseline(Double v) { truncationBaseline = v; return this; }
        public Builder truncationSteps(int v) { truncationSteps = v; return this; }
        public Builder delta(double v) { delta = v; return this; }
        public Builder topK(int v) { topK = v; return this; }
        public Builder range(double v) { range = v; return this; }
        public Builder round(int v) { round = v; return this; }
        public Builder confidence(double v) { confidence = v; return this; }
        public Builder checkpointEvery(long v) { checkpointEvery = v; return this; }
        public Builder shard(int i, int s) { shardIndex = i; shardCount = s; return this; }
        public Builder out(Path v) { out = v; return this; }
        public Builder resume(boolean v) { resume = v; return this; }
        public Builder epsilon(double v) { epsilon = v; return this; }
        public Builder bound(String v) { bound = v; return this; }
        public Builder surrogate(Path v) { surrogate = v; return this; }
        public Builder screen(Path file, int top, int sample) { screen = file; screenTop = top; screenSample = sample; return this; }
        public Builder screenWiden(boolean v) { screenWiden = v; return this; }
        public Builder focus(boolean v) { focus = v; return this; }

        public ShapleyConfig build() {
            return new ShapleyConfig(estimator, budget, permutations, batch, seed, tolerance, truncationTolerance,
                    truncationBaseline, truncationSteps, delta, topK, range, round, confidence, checkpointEvery,
                    shardIndex, shardCount, out, resume, epsilon, surrogate, screen, screenTop, screenSample, bound, screenWiden, focus);
        }
    }
}
