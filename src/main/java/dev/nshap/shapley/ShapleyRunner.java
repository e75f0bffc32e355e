package dev.nshap.shapley;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;
import dev.nshap.util.Progress;
import org.apache.commons.statistics.distribution.TDistribution;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.LongPredicate;

/**
 * Runs any {@link Game} with any estimator: batching, progress, checkpoints (every N evaluations and on
 * SIGINT/SIGTERM), resume, shards and output files. The CLI and the GPT-2 command are thin layers over this.
 *
 * <p>Determinism. Unit u (a permutation, or an antithetic pair) walks the permutation derived from (seed, u).
 * Units run in rounds of {@code round}; the walks of a round advance in lockstep and their coalitions are cut
 * into batches, but each walk only depends on its own values, and the per-player sums are exact (see
 * {@link SufficientStats}), so the batch size never changes a number. Everything adaptive (TMAB settling, the
 * stopping tolerance, how many units the remaining budget allows) is decided between rounds from the exact
 * statistics. A round starts only as many units as the remaining budget covers in the worst case, so the budget
 * is never exceeded; the units run are those of the sequential rule "start the next unit while its worst-case
 * cost fits", whatever the round size.
 */
public final class ShapleyRunner {
    public static final String CHECKPOINT_FORMAT = "nshap-shapley-checkpoint-1";
    /** 4M players: 13 times all of GPT-2 xl's neurons; a few arrays of this length per run still fit any heap. */
    public static final int MAX_PLAYERS = 1 << 22;

    /**
     * Called after every group of units started together: a round for TMAB or with a stopping tolerance, else
     * max(round, batch) units (tests and the estimator evaluation watch convergence through it).
     */
    public interface RoundListener { void afterRound(long evaluations, SufficientStats stats, BitSet settled); }

    /** The run stopped early (signal or injected stop); its state is in the checkpoint, if it has an output. */
    public static final class Interrupted extends RuntimeException {
        public final Path checkpoint;
        public final long evaluations;
        /** True when the runner already told the user (on a signal the JVM may exit before the caller can). */
        public boolean reported;

        Interrupted(Path checkpoint, long evaluations) {
            super(message(checkpoint, evaluations));
            this.checkpoint = checkpoint;
            this.evaluations = evaluations;
        }
    }

    static String message(Path checkpoint, long evaluations) {
        return "interrupted after " + evaluations + " evaluations" + (checkpoint == null ? ""
                : "; checkpoint " + checkpoint + " written (rerun with --resume to continue, or --resume --budget "
                + evaluations + " to write the result from what exists)");
    }

    /** A step of a big model can take minutes: after this grace the signal path writes the last consistent state itself. */
    static final long SIGNAL_GRACE_MS = 2000;
    /** Besides --checkpoint-every: a checkpoint after the first step, then at least this often. */
    static final long CHECKPOINT_SECONDS = 300;

    private static final ObjectMapper SORTED = Json.MAPPER.copy()
            .enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS).disable(SerializationFeature.INDENT_OUTPUT);

    private final Game game;
    private final ShapleyConfig cfg;
    private final int n;
    private PrintStream err = System.err;
    private boolean showProgress = true, handleSignals = true;
    private LongPredicate stopWhen;
    private RoundListener listener;
    private Evaluators evaluators;
    private volatile boolean signalled;
    /** Regression: the fixed surrogate a_j (null = fitted). TMAB: the screen (null = every player is played). */
    private final double[] surrogate;
    private final TopK.Screen screen;
    /**
     * The players the bandit plays: all, or the screen's, which widens after every round by what its uniform sample
     * says of the surrogate's quality ({@link TopK#widen}): players once played stay played.
     */
    private BitSet played;
    /** The screen's surrogate values a_j (null without a screen). */
    private final double[] screenValues;
    /** Evaluations spent when the screen first widened; -1 = not widened. */
    private long widenedAt = -1;
    /** The last widening decision (null before the first). */
    private TopK.Widening widening;
    private final KernelShap kernel;
    /** Hash of the input files' values (surrogate, screen): a checkpoint from other inputs is refused. */
    private final String inputsHash;
    private boolean force;

    public ShapleyRunner(Game game, ShapleyConfig cfg) {
        this.game = Objects.requireNonNull(game);
        this.cfg = Objects.requireNonNull(cfg);
        this.n = game.players();
        this.evaluators = game::values;
        if (n < 1) throw new NshapException("the game has no players");
        if (n > MAX_PLAYERS) throw new NshapException("the game has " + n + " players; at most " + MAX_PLAYERS + " are supported");
        surrogate = cfg.surrogate() == null ? null : PlayerValues.load(cfg.surrogate(), game, "--surrogate");
        screenValues = cfg.screen() == null ? null : PlayerValues.load(cfg.screen(), game, "--screen");
        screen = screenValues == null ? null : TopK.screen(screenValues, cfg.screenTop(), cfg.screenSample(), cfg.seed());
        played = screen == null ? allPlayers(n) : (BitSet) screen.played().clone();   // widening adds to it
        if (cfg.estimator() == Estimator.TMAB && cfg.topK() >= played.cardinality())
            throw new NshapException("--top-k must be smaller than the number of players played (" + played.cardinality()
                    + ") for tmab");
        kernel = cfg.estimator() == Estimator.KERNELSHAP ? new KernelShap(n) : null;
        StringBuilder h = new StringBuilder();
        for (double[] a : new double[][]{surrogate, screenValues})
            if (a != null) for (double x : a) h.append(Double.doubleToLongBits(x)).append(',');
        inputsHash = sha256(h.toString());
    }

    private static BitSet allPlayers(int n) {
        BitSet b = new BitSet(n);
        b.set(0, n);
        return b;
    }

    public ShapleyRunner progress(boolean on) { showProgress = on; return this; }
    public ShapleyRunner progressStream(PrintStream s) { err = s; return this; }
    public ShapleyRunner handleSignals(boolean on) { handleSignals = on; return this; }
    /** Test hook: checked between steps; when true the run checkpoints and throws {@link Interrupted}. */
    public ShapleyRunner stopWhen(LongPredicate evaluationsDone) { stopWhen = evaluationsDone; return this; }
    public ShapleyRunner listener(RoundListener l) { listener = l; return this; }
    /** Run even when the budget cannot give each player two samples, and overwrite a result with more evaluations. */
    public ShapleyRunner force(boolean on) { force = on; return this; }
    /** Where coalitions are evaluated (default: the game, here); never changes a number. */
    public ShapleyRunner evaluators(Evaluators e) { evaluators = Objects.requireNonNull(e); return this; }

    public static String fingerprint(Game g) {
        try {
            byte[] json = SORTED.writeValueAsBytes(Map.of("players", g.players(), "game", g.describe()));
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(json));
        } catch (IOException | NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Runs to the end, writes PREFIX.json and PREFIX.csv (if an output prefix is set) and returns the result. */
    public ShapleyResult run() {
        Path ckpt = cfg.checkpointPath();
        if (ckpt != null) {
            if (cfg.resume() && !Files.exists(ckpt))
                throw new NshapException("--resume: no checkpoint " + ckpt);
            if (!cfg.resume() && Files.exists(ckpt))
                throw new NshapException(ckpt + " exists: pass --resume to continue that run, or delete it");
        }
        if (!force && cfg.estimator() != Estimator.EXACT && !cfg.resume()) refuseTooFewSamples();
        // Two runs into one prefix would overwrite each other's checkpoint: the second is refused.
        try (dev.nshap.io.OutputLock lock = cfg.out() == null ? null : dev.nshap.io.OutputLock.acquire(cfg.out())) {
            if (!force && cfg.out() != null) refuseWorseThanExisting();
            ShapleyResult r = cfg.estimator() == Estimator.EXACT ? runExact() : new Sampling().run();
            warnUndersampled(r);
            if (cfg.out() != null) {
                ShapleyOutput.write(r, game, cfg.jsonPath(), cfg.csvPath());
                try { Files.deleteIfExists(ckpt); } catch (IOException e) { throw new UncheckedIOException(e); }
            }
            return r;
        }
    }

    /** Worst-case evaluations of one unit before anything is settled (what the budget rule reserves for it). */
    private long firstUnitCost() {
        return switch (cfg.estimator()) {
            case ANTITHETIC -> 2L * (n + 1);
            case PERMUTATION -> n + 1;
            default -> n + 2L;
        };
    }

    /**
     * A unit gives each player at most one sample. Fewer than two units means no standard error and no interval:
     * a ranking of noise (--budget 10 gave NaNs, --budget 2048 over 1024 players one permutation). Refused up front.
     */
    private void refuseTooFewSamples() {
        long cost = firstUnitCost();
        long units = Long.MAX_VALUE;
        if (cfg.budget() > 0) units = cfg.budget() / cost;
        if (cfg.permutations() > 0) units = Math.min(units, cfg.permutations());
        else if (cfg.shardCount() > 1) units = Math.min(units, Long.MAX_VALUE / cfg.shardCount()) * cfg.shardCount();
        if (units >= 2) return;
        String unit = cfg.estimator() == Estimator.ANTITHETIC ? "antithetic pair" : "permutation";
        throw new NshapException((cfg.budget() > 0 && cfg.budget() / cost < 2
                ? "--budget " + cfg.budget() + " cannot give each of the " + n + " players two samples: one " + unit + " costs up to "
                        + cost + " evaluations, so at least " + 2 * cost + " are needed"
                : "--permutations " + cfg.permutations() + " gives each player fewer than two samples (at least 2 are needed)")
                + " for a standard error; pass --force to run anyway");
    }

    /** Never replace a finished result with one of fewer evaluations (demo --budget 64 over a 2048 run) unless forced. */
    private void refuseWorseThanExisting() {
        Path old = cfg.jsonPath();
        if (!Files.isRegularFile(old) || cfg.estimator() == Estimator.EXACT) return;
        JsonNode o;
        try {
            o = Json.readTree(old);
        } catch (NshapException e) {
            return;   // not a result we can compare with; the rename replaces it atomically as before
        }
        if (!o.path("format").asText().startsWith("nshap-shapley-result") || !o.path("evaluations").canConvertToLong()) return;
        long had = o.path("evaluations").asLong();
        long most = cfg.budget() > 0 ? cfg.budget() : Long.MAX_VALUE;
        if (cfg.permutations() > 0) most = Math.min(most, Math.multiplyExact(Math.max(1, cfg.permutations()), 2L * (n + 1)));
        if (most < had)
            throw new NshapException(old + " holds a finished result of " + had + " evaluations; this run may spend at most "
                    + most + " and would replace it with a less precise one: choose another --out, or pass --force");
    }

    /** Players left with fewer than two samples have no interval; say so loudly rather than hand over a quiet ranking. */
    private void warnUndersampled(ShapleyResult r) {
        if (cfg.estimator() == Estimator.EXACT) return;
        long few = 0, played = 0;
        for (PlayerEstimate e : r.estimates()) {
            // a screen leaves players unplayed on purpose; the result's screen block bounds what that may miss
            if (TopK.SCREENED.equals(e.status())) continue;
            played++;
            if (e.samples() < 2) few++;
        }
        if (few > 0)
            err.println("nshap: WARNING: " + few + " of " + played + (played < n ? " played" : "") + " players have fewer"
                    + " than two samples: their standard errors and intervals are undefined and their ranks are noise (raise --budget)");
    }

    private double[] evaluate(List<Coalition> batch) {
        double[] v = evaluators.values(batch);
        if (v.length != batch.size())
            throw new IllegalStateException("game returned " + v.length + " values for " + batch.size() + " coalitions");
        for (double x : v) if (!Double.isFinite(x)) throw new NshapException("the game returned a non-finite value");
        return v;
    }

    // ---------------------------------------------------------------- exact enumeration

    private ShapleyResult runExact() {
        if (n > 20)
            throw new NshapException("exact enumeration needs 2^n game evaluations; " + n
                    + " players is too many (at most 20): use permutation, antithetic, tmc or tmab");
        long t0 = System.nanoTime();
        int total = 1 << n;
        double[] v = new double[total];
        long seed = Walk.unitSeed(cfg.seed(), -1);
        Progress progress = new Progress("shapley exact", total, err);
        int gather = evaluators.gather(cfg.batch());
        List<Coalition> batch = new ArrayList<>(gather);
        for (int start = 0; start < total; start += gather) {
            int end = Math.min(total, start + gather);
            batch.clear();
            for (int m = start; m < end; m++) batch.add(new Coalition(BitSet.valueOf(new long[]{m}), -1, seed));
            double[] vals = evaluate(batch);
            System.arraycopy(vals, 0, v, start, end - start);
            if (showProgress) progress.update(end);
        }
        // Shapley weight of a coalition of size s not containing i: s!(n-s-1)!/n! = 1 / (n * C(n-1, s))
        double[] w = new double[n];
        double c = 1;
        for (int s = 0; s < n; s++) {
            w[s] = 1.0 / (n * c);
            c = c * (n - 1 - s) / (s + 1);
        }
        double[] phi = new double[n];
        for (int i = 0; i < n; i++) {
            int bit = 1 << i;
            double acc = 0;
            for (int m = 0; m < total; m++)
                if ((m & bit) == 0) acc += w[Integer.bitCount(m)] * (v[m | bit] - v[m]);
            phi[i] = acc;
        }
        List<PlayerEstimate> est = new ArrayList<>();
        int[] rank = ranks(phi);
        for (int i = 0; i < n; i++)
            est.add(new PlayerEstimate(i, phi[i], 0, total / 2, phi[i], phi[i], true, rank[i]));
        return new ShapleyResult(cfg, game.describe(), fingerprint(game), est, total, 1, 1, "exact",
                (System.nanoTime() - t0) / 1e9, null, game.exactValues(), null);
    }

    /** Rank 1 = largest; ties by lower index; NaN last. */
    static int[] ranks(double[] x) {
        int[] order = Metrics.topK(x, x.length);
        int[] r = new int[x.length];
        for (int i = 0; i < order.length; i++) r[order[i]] = i + 1;
        return r;
    }

    /** Turns statistics into per-player estimates (also used by shard merge); {@code played} only for TMAB. */
    static List<PlayerEstimate> estimates(ShapleyConfig cfg, SufficientStats st, BitSet settled) {
        return estimates(cfg, st, settled, null);
    }

    static List<PlayerEstimate> estimates(ShapleyConfig cfg, SufficientStats st, BitSet settled, BitSet played) {
        int n = st.players();
        double[] mean = new double[n];
        for (int i = 0; i < n; i++) mean[i] = st.mean(i);
        int[] rank = ranks(mean);
        List<PlayerEstimate> out = new ArrayList<>(n);
        boolean bandit = cfg.estimator() == Estimator.TMAB && played != null;
        double range = cfg.range() > 0 ? cfg.range() : st.observedRange();
        boolean normal = TopK.NORMAL.equals(cfg.bound());
        String[] status = bandit ? TopK.classify(st, played, cfg.topK(), cfg.delta(), range,
                TopK.epsilon(st, played, cfg.epsilon()), normal) : null;
        Map<Long, Double> zAt = new java.util.HashMap<>();
        for (int i = 0; i < n; i++) {
            long c = st.count(i);
            double se = st.standardError(i), lo, hi;
            if (c >= 2) {
                double t = TDistribution.of(c - 1).inverseCumulativeProbability(0.5 + cfg.confidence() / 2);
                lo = mean[i] - t * se;
                hi = mean[i] + t * se;
            } else {
                lo = hi = Double.NaN;
            }
            double blo = Double.NaN, bhi = Double.NaN;
            if (bandit && played.get(i)) {
                double cb = TopK.halfWidth(st, i, cfg.delta(), played.cardinality(), range, normal, zAt);
                if (Double.isFinite(cb)) { blo = mean[i] - cb; bhi = mean[i] + cb; }
            }
            out.add(new PlayerEstimate(i, mean[i], se, c, lo, hi, settled != null && settled.get(i), rank[i],
                    blo, bhi, bandit ? status[i] : ""));
        }
        return out;
    }

    // ---------------------------------------------------------------- sampling estimators

    /** One unit of the current round: its walks and, for antithetic pairs, the two halves' marginals. */
    private final class Unit {
        final long index;
        final Walk[] walks;
        final double[] a, b;   // antithetic only

        final KernelShap.PairWalk pairs;   // kernelshap only

        Unit(long index, BitSet settled, SufficientStats stats) {
            this.index = index;
            int[] order = Walk.permutation(cfg.seed(), index, n);
            long useed = Walk.unitSeed(cfg.seed(), index);
            pairs = kernel == null ? null : kernel.new PairWalk(index, useed);
            switch (cfg.estimator()) {
                case REGRESSION -> {
                    walks = new Walk[]{new Walk.Plain(n, order, index, useed, null, true)};
                    a = b = null;
                }
                case KERNELSHAP -> {
                    walks = new Walk[]{pairs};
                    a = b = null;
                }
                case PERMUTATION -> {
                    walks = new Walk[]{new Walk.Plain(n, order, index, useed, stats::add)};
                    a = b = null;
                }
                case ANTITHETIC -> {
                    a = new double[n];
                    b = new double[n];
                    walks = new Walk[]{
                            new Walk.Plain(n, order, index, useed, (p, x) -> a[p] = x),
                            new Walk.Plain(n, Walk.reversed(order), index, useed, (p, x) -> b[p] = x)};
                }
                default -> {
                    walks = new Walk[]{new Walk.Truncated(n, order, index, useed, stats::add,
                            cfg.estimator() == Estimator.TMAB ? settled : null, cfg.truncationBaseline(),
                            cfg.truncationTolerance(), cfg.truncationSteps())};
                    a = b = null;
                }
            }
        }

        boolean done() {
            for (Walk w : walks) if (!w.done()) return false;
            return true;
        }

        /** Adds what a unit contributes at its end; {@code fit} is the regression surrogate of this round. */
        void finish(SufficientStats stats, double[] fit, SufficientStats marginals) {
            if (a != null) for (int p = 0; p < n; p++) stats.add(p, (a[p] + b[p]) * 0.5);
            double[] x = null;
            if (cfg.estimator() == Estimator.REGRESSION) {
                Walk.Plain w = (Walk.Plain) walks[0];
                double[] m = RegressionAdjusted.marginals(w.order, w.trace);
                if (marginals != null) for (int p = 0; p < n; p++) marginals.add(p, m[p]);
                x = fit == null ? m : RegressionAdjusted.samples(w.order, w.trace, fit);
            } else if (pairs != null) x = pairs.samples();
            if (x != null) for (int p = 0; p < n; p++) stats.add(p, x[p]);
        }
    }

    private final class Sampling {
        SufficientStats stats = new SufficientStats(n);
        /** Regression with a fitted surrogate: the walks' plain permutation marginals, whose means are the fit. */
        SufficientStats marginals = cfg.estimator() == Estimator.REGRESSION && surrogate == null ? new SufficientStats(n) : null;
        long evaluations, nextSeq, rounds, lastCheckpoint;
        BitSet settled = unplayed();
        /** TMAB with --focus: OPEN players the coming round leaves out ({@link TopK#parked}). */
        BitSet parked = new BitSet(n);
        List<Unit> round;              // null between rounds
        String stopReason;
        double elapsedBefore;
        final long t0 = System.nanoTime();
        Progress progress;
        /** The last consistent state (between steps), for the signal path; built at most about once a second. */
        volatile ObjectNode snapshot;
        long snapshotAt, snapshotCost, lastCheckpointAt = System.nanoTime();
        boolean checkpointed;
        final Object writing = new Object();

        long unitAt(long seq) { return cfg.shardIndex() + seq * cfg.shardCount(); }

        BitSet unplayed() {
            BitSet b = allPlayers(n);
            b.andNot(played);
            return b;
        }

        /**
         * The regression surrogate for the units ending now: the fixed one, or the additive model whose values are
         * the plain permutation estimates of all earlier walks (null before any: the first round's walks give
         * their permutation marginals). Fitting on the permutation estimates, not on the regression estimates
         * themselves, keeps a noisy fit from feeding on its own noise.
         */
        double[] fit() {
            if (cfg.estimator() != Estimator.REGRESSION) return null;
            if (surrogate != null) return surrogate;
            if (rounds == 0) return null;
            double[] m = new double[n];
            for (int i = 0; i < n; i++) m[i] = marginals.count(i) == 0 ? 0 : marginals.mean(i);
            return m;
        }

        int unsettled() { return n - settled.cardinality(); }

        /** The players this round's walks skip: the settled ones, and under --focus the parked ones. */
        BitSet skipped() {
            if (parked.isEmpty()) return settled;
            BitSet b = (BitSet) settled.clone();
            b.or(parked);
            return b;
        }

        long worstCost() {
            return switch (cfg.estimator()) {
                case PERMUTATION -> n + 1;
                case ANTITHETIC -> 2L * (n + 1);
                case REGRESSION -> n + 1;
                case KERNELSHAP -> kernel.unitCost();
                default -> {   // N, empty, removals, refreshes
                    long walked = n - skipped().cardinality();
                    yield 2L + walked + Math.min(walked, n - walked);
                }
            };
        }

        ShapleyResult run() {
            if (cfg.resume()) {
                restore(Json.readTree(cfg.checkpointPath()));
                if (showProgress)
                    err.println("shapley " + cfg.estimator().id() + ": resuming from " + evaluations + " evaluations ("
                            + nextSeq + " units, " + Progress.formatSeconds(elapsedBefore) + " spent before)");
                // Stop early and take what exists: a budget at or below what was spent ends the run here.
                if (cfg.budget() > 0 && evaluations >= cfg.budget()) {
                    round = null;
                    if (stopReason == null) stopReason = "budget";
                }
            }
            long shardUnits = (cfg.permutations() - cfg.shardIndex() + cfg.shardCount() - 1) / cfg.shardCount();
            long total = cfg.budget() > 0 ? cfg.budget() : Math.max(1, shardUnits * worstCost());
            // the rate (and so the ETA) counts this run's evaluations only, not the checkpoint's
            progress = new Progress("shapley " + cfg.estimator().id(), total, err).from(evaluations);
            lastCheckpoint = evaluations;
            if (handleSignals && cfg.out() != null) snapshot = checkpointJson();   // the start is a consistent state too
            CountDownLatch saved = new CountDownLatch(1);
            Thread hook = null;
            if (handleSignals && cfg.out() != null) {
                hook = new Thread(() -> {
                    signalled = true;
                    // The loop checkpoints at its next step boundary; one step of a big model can outlast any wait
                    // (a minute for GPT-2 small on a CPU), so after a short grace write the last consistent state.
                    try {
                        if (saved.await(SIGNAL_GRACE_MS, TimeUnit.MILLISECONDS)) return;
                    } catch (InterruptedException ignored) { }
                    synchronized (writing) {
                        if (saved.getCount() == 0) return;
                        ObjectNode snap = snapshot;
                        Json.writeFile(cfg.checkpointPath(), snap);
                        err.println("nshap: " + message(cfg.checkpointPath(), snap.path("evaluations").asLong()));
                        err.flush();
                    }
                }, "nshap-shapley-checkpoint");
                Runtime.getRuntime().addShutdownHook(hook);
            }
            try {
                loop();
            } catch (Interrupted e) {
                if (signalled) {
                    err.println("nshap: " + e.getMessage());
                    err.flush();
                    e.reported = true;
                }
                throw e;
            } finally {
                saved.countDown();
                if (hook != null) {
                    try { Runtime.getRuntime().removeShutdownHook(hook); } catch (IllegalStateException ignored) { }
                }
            }
            if (showProgress && evaluations < total)
                err.println("shapley " + cfg.estimator().id() + " stopped (" + stopReason + ") after " + evaluations
                        + " evaluations, " + status());
            BitSet finalSettled = cfg.estimator() == Estimator.TMAB ? settled : null;
            List<PlayerEstimate> est = estimates(cfg, stats, finalSettled, played);
            return new ShapleyResult(cfg, game.describe(), fingerprint(game), est,
                    evaluations, nextSeq, rounds, stopReason, elapsed(), stats, game.exactValues(), topKReport(est));
        }

        double elapsed() { return elapsedBefore + (System.nanoTime() - t0) / 1e9; }

        /** TMAB: the certified top-k, the ambiguous players, the screen's bound on players it may have missed. */
        Map<String, Object> topKReport(List<PlayerEstimate> est) {
            if (cfg.estimator() != Estimator.TMAB) return null;
            double[] mean = new double[n];
            String[] status = new String[n];
            for (PlayerEstimate e : est) { mean[e.player()] = e.mean(); status[e.player()] = e.status(); }
            Map<String, Object> m = new java.util.LinkedHashMap<>();
            boolean ready = true;
            for (int i = played.nextSetBit(0); i >= 0; i = played.nextSetBit(i + 1)) if (stats.count(i) < 2) ready = false;
            if (!ready) {
                m.put("determined", false);
                m.put("note", "some played players have fewer than 2 samples: no bound, no certified set");
                if (screen != null) m.put("screen", screenState());
                return m;
            }
            double eps = TopK.epsilon(stats, played, cfg.epsilon());
            TopK.Certificate c = TopK.certificate(mean, status, played, cfg.topK(), eps, TopK.threshold(stats, played, cfg.topK()));
            m.put("k", cfg.topK());
            m.put("determined", c.open().isEmpty());
            m.put("delta", cfg.delta());
            m.put("epsilon", eps);
            m.put("threshold", c.threshold());
            m.put("evaluations", evaluations);
            m.put("returned", names(c.returned()));
            m.put("certified", names(c.certified()));
            m.put("ambiguousWithinEpsilon", names(c.ambiguous()));
            m.put("open", c.open().size());
            // of the open ones, how many the focus left out of the last round (they stay open; docs/shapley.md)
            if (cfg.focus()) m.put("parked", parked.cardinality());
            if (screen != null) {
                int x = 0;
                for (int i : c.returned()) if (screen.sample().get(i)) x++;
                Map<String, Object> s = screenState();
                s.put("top", screen.top().cardinality());
                s.put("sample", screen.sample().cardinality());
                s.put("sampledInTopK", x);
                // Every player played: none can have been missed. Else the hypergeometric bound on the rest, which the
                // players added by the widening can only make conservative.
                s.put("missedAtMost", played.cardinality() == n ? 0 : TopK.missedBound(screen.restSize(), screen.sample().cardinality(), x,
                        cfg.topK(), cfg.delta()));
                s.put("confidence", 1 - cfg.delta());
                m.put("screen", s);
            }
            return m;
        }

        /**
         * What the screen plays now and how it got there: played, widened, widenedAtEvaluations, added, and the
         * calibrated widening's model (a model's expectation, not a bound) once it has run.
         */
        Map<String, Object> screenState() {
            Map<String, Object> s = new java.util.LinkedHashMap<>();
            s.put("played", played.cardinality());
            s.put("widened", widenedAt >= 0);
            s.put("widenedAtEvaluations", widenedAt >= 0 ? widenedAt : null);
            s.put("added", played.cardinality() - screen.played().cardinality());
            if (widening == null) return s;
            Map<String, Object> w = new java.util.LinkedHashMap<>();
            // snake_case here: the output converts only the screen block's own keys
            w.put("expected_missed", played.cardinality() == n ? 0.0 : widening.expectedMissed());
            w.put("target", TopK.WIDEN_TARGET);
            w.put("slope", widening.slope());
            w.put("intercept", widening.intercept());
            w.put("residual_sd", widening.sigma());
            s.put("calibration", w);
            return s;
        }

        List<String> names(List<Integer> ps) { return ps.stream().map(game::playerName).toList(); }

        String status() {
            return "units " + nextSeq + (cfg.estimator() == Estimator.TMAB ? " unsettled " + unsettled() : "");
        }

        void loop() {
            while (true) {
                if (round == null && !startRound()) return;
                while (!roundDone()) {
                    step();
                    if (showProgress) progress.update(evaluations, status());
                    boolean stop = signalled || (stopWhen != null && stopWhen.test(evaluations));
                    if (stop || checkpointDue()) checkpoint();
                    else snapshotIfDue();
                    if (stop) throw new Interrupted(cfg.checkpointPath(), evaluations);
                }
                endRound();
            }
        }

        boolean roundDone() {
            for (Unit u : round) if (!u.done()) return false;
            return true;
        }

        boolean startRound() {
            if (stopReason != null) return false;
            long k = groupSize();
            if (cfg.budget() > 0) k = Math.min(k, (cfg.budget() - evaluations) / worstCost());
            int count = 0;
            while (count < k && (cfg.permutations() == 0 || unitAt(nextSeq + count) < cfg.permutations())) count++;
            if (count == 0) {
                stopReason = count < k ? "permutations" : "budget";
                return false;
            }
            round = new ArrayList<>(count);
            BitSet skip = skipped();
            for (int j = 0; j < count; j++) round.add(new Unit(unitAt(nextSeq + j), skip, stats));
            nextSeq += count;
            return true;
        }

        /**
         * Units started together. TMAB and the stopping tolerance decide between rounds, so there a group is
         * exactly one round. Otherwise nothing is decided between groups (the budget rule picks the same units for
         * any grouping), so a group is widened to the batch size: truncated walks emit one coalition per step,
         * and this keeps batches full without changing a number.
         */
        long groupSize() {
            if (cfg.estimator() == Estimator.TMAB && cfg.focus()) {
                // A focused walk costs about 2 evaluations per walked player, so once the focus narrows to a few
                // players a round of --round walks costs a few dozen evaluations while each decision between
                // rounds is O(n): at n = 36,864 the decisions, not the game, set the run's time (over 20 minutes
                // for what takes 4 unfocused). More walks per round keep a round at --round x n / 8 evaluations or
                // more, and the decisions at most one per n / 8 evaluations.
                long walked = Math.max(1, n - skipped().cardinality());
                return Math.max(cfg.round(), Math.min(ShapleyConfig.MAX_BATCH, cfg.round() * (long) n / (16 * walked)));
            }
            boolean decides = cfg.estimator() == Estimator.TMAB || cfg.tolerance() > 0
                    || (cfg.estimator() == Estimator.REGRESSION && surrogate == null);
            return decides ? cfg.round() : Math.max(cfg.round(), evaluators.gather(cfg.batch()));
        }

        /** Gathers up to one batch round-robin over the walks, evaluates it, feeds the values back in order. */
        void step() {
            int gather = evaluators.gather(cfg.batch());
            List<Coalition> batch = new ArrayList<>(gather);
            List<Walk> owners = new ArrayList<>(gather);
            boolean progressMade = true;
            while (batch.size() < gather && progressMade) {
                progressMade = false;
                for (Unit u : round) {
                    for (Walk w : u.walks) {
                        if (batch.size() >= gather) break;
                        int added = w.emit(batch, Math.min(1, gather - batch.size()));
                        for (int j = 0; j < added; j++) owners.add(w);
                        if (added > 0) progressMade = true;
                    }
                }
            }
            if (batch.isEmpty()) return;   // walks finished without needing evaluations
            double[] v = evaluate(batch);
            for (int j = 0; j < v.length; j++) owners.get(j).apply(v[j]);
            evaluations += batch.size();
        }

        void endRound() {
            double[] fit = fit();          // before this round's samples change the estimates
            for (Unit u : round) u.finish(stats, fit, marginals);
            round = null;
            rounds++;
            if (cfg.estimator() == Estimator.TMAB) {
                double range = cfg.range() > 0 ? cfg.range() : stats.observedRange();
                if (screen != null && cfg.screenWiden() && played.cardinality() < n) {
                    TopK.Widening wd = TopK.widen(screenValues, stats, played, screen.sample(), cfg.topK(), TopK.WIDEN_TARGET);
                    if (wd != null) {
                        widening = wd;
                        for (int i : wd.add()) played.set(i);
                        if (wd.add().length > 0 && widenedAt < 0) widenedAt = evaluations;
                    }
                }
                String[] status = TopK.classify(stats, played, cfg.topK(), cfg.delta(), range,
                        TopK.epsilon(stats, played, cfg.epsilon()), TopK.NORMAL.equals(cfg.bound()));
                settled = TopK.settled(status);
                parked = cfg.focus() ? TopK.parked(stats, played, status, cfg.topK()) : new BitSet(n);
                if (unsettled() == 0) stopReason = "settled";
            }
            if (stopReason == null && cfg.tolerance() > 0 && toleranceReached()) stopReason = "tolerance";
            if (listener != null) listener.afterRound(evaluations, stats, (BitSet) settled.clone());
            if (checkpointDue()) checkpoint();
            else snapshotIfDue();
        }

        /** Every --checkpoint-every evaluations; and, so a long run never has nothing to resume, after its first step and every few minutes. */
        boolean checkpointDue() {
            if (cfg.out() == null) return false;
            if (!checkpointed && evaluations > lastCheckpoint) return true;
            if (cfg.checkpointEvery() > 0 && evaluations - lastCheckpoint >= cfg.checkpointEvery()) return true;
            return System.nanoTime() - lastCheckpointAt > CHECKPOINT_SECONDS * 1_000_000_000L;
        }

        /** At most 5% of the run goes to snapshots: one every 20 times what the last one cost to build. */
        void snapshotIfDue() {
            if (!handleSignals || cfg.out() == null) return;
            long now = System.nanoTime();
            if (now - snapshotAt < 20 * snapshotCost) return;
            snapshot = checkpointJson();
            snapshotAt = System.nanoTime();
            snapshotCost = snapshotAt - now;
        }

        boolean toleranceReached() {
            for (int i = 0; i < n; i++) {
                if (settled.get(i)) continue;
                if (stats.count(i) < 10 || !(stats.standardError(i) <= cfg.tolerance())) return false;
            }
            return true;
        }

        // ------------------------------------------------------------ checkpoints

        void checkpoint() {
            lastCheckpoint = evaluations;
            if (cfg.out() == null) return;
            ObjectNode o = checkpointJson();
            snapshot = o;
            snapshotAt = System.nanoTime();
            synchronized (writing) {
                Json.writeFile(cfg.checkpointPath(), o);
            }
            checkpointed = true;
            lastCheckpointAt = System.nanoTime();
        }

        /** The state between steps as checkpoint JSON. */
        ObjectNode checkpointJson() {
            ObjectNode o = JsonNodeFactory.instance.objectNode();
            o.put("format", CHECKPOINT_FORMAT);
            o.set("config", Json.MAPPER.valueToTree(cfg.resultDefining()));
            o.put("gameFingerprint", fingerprint(game));
            o.put("inputs", inputsHash);
            o.put("players", n);
            o.put("evaluations", evaluations);
            o.put("nextSeq", nextSeq);
            o.put("rounds", rounds);
            o.put("elapsedSeconds", elapsed());
            if (stopReason != null) o.put("stopReason", stopReason);
            ArrayNode s = o.putArray("settled");
            settled.stream().forEach(s::add);
            if (!parked.isEmpty()) {
                ArrayNode pk = o.putArray("parked");
                parked.stream().forEach(pk::add);
            }
            if (widenedAt >= 0) {
                o.put("screenWidenedAt", widenedAt);
                ArrayNode added = o.putArray("screenAdded");
                for (int i = played.nextSetBit(0); i >= 0; i = played.nextSetBit(i + 1)) if (!screen.played().get(i)) added.add(i);
            }
            if (widening != null) {
                ArrayNode w = o.putArray("screenWidening");
                w.add(widening.expectedMissed()).add(widening.slope()).add(widening.intercept()).add(widening.sigma());
            }
            o.set("stats", stats.toJson());
            if (marginals != null) o.set("marginalStats", marginals.toJson());
            if (round != null) {
                ArrayNode units = o.putArray("round");
                for (Unit u : round) {
                    ObjectNode un = units.addObject();
                    un.put("unit", u.index);
                    ArrayNode ws = un.putArray("walks");
                    for (Walk w : u.walks) ws.add(w.state());
                    if (u.a != null) {
                        ArrayNode aa = un.putArray("a"), bb = un.putArray("b");
                        for (int p = 0; p < n; p++) { aa.add(u.a[p]); bb.add(u.b[p]); }
                    }
                }
            }
            return o;
        }

        BitSet playerSet(JsonNode a, Path p, String field) {
            BitSet b = new BitSet(n);
            for (JsonNode s : a) {
                int q = s.asInt(-1);
                if (!s.isIntegralNumber() || q < 0 || q >= n)
                    throw new NshapException("checkpoint " + p + ": " + field + " holds " + s + ", not a player");
                b.set(q);
            }
            return b;
        }

        void restore(JsonNode o) {
            Path p = cfg.checkpointPath();
            if (!CHECKPOINT_FORMAT.equals(o.path("format").asText()))
                throw new NshapException(p + ": not an nshap shapley checkpoint");
            JsonNode want = Json.MAPPER.valueToTree(cfg.resultDefining());
            JsonNode have = o.path("config");
            // both sides' settings: one written only when on (focus) must not be dropped silently on resume
            java.util.Set<String> fields = new java.util.LinkedHashSet<>();
            want.fieldNames().forEachRemaining(fields::add);
            have.fieldNames().forEachRemaining(fields::add);
            for (String f : fields) {
                // a new budget continues (or, at or below what was spent, ends) the same run
                if (f.equals("budget")) continue;
                if (!String.valueOf(want.get(f)).equals(String.valueOf(have.get(f))))
                    throw new NshapException(p + " was written by a different configuration: " + f + " is "
                            + (have.has(f) ? have.get(f) : "not set") + " there but " + (want.has(f) ? want.get(f) : "not set") + " now");
            }
            if (!fingerprint(game).equals(o.path("gameFingerprint").asText()) || o.path("players").asInt() != n)
                throw new NshapException(p + " was written for a different game");
            if (!inputsHash.equals(o.path("inputs").asText(inputsHash)))
                throw new NshapException(p + " was written with other --surrogate/--screen values");
            evaluations = o.path("evaluations").asLong();
            nextSeq = o.path("nextSeq").asLong();
            rounds = o.path("rounds").asLong();
            elapsedBefore = o.path("elapsedSeconds").asDouble();
            stopReason = o.hasNonNull("stopReason") ? o.get("stopReason").asText() : null;
            settled = playerSet(o.path("settled"), p, "settled");
            parked = playerSet(o.path("parked"), p, "parked");
            if (o.has("screenWidenedAt") && screen != null) {
                widenedAt = o.get("screenWidenedAt").asLong();
                if (o.has("screenAdded")) {   // else a checkpoint from before calibrated widening: it had widened to all
                    played = (BitSet) screen.played().clone();
                    played.or(playerSet(o.get("screenAdded"), p, "screenAdded"));
                } else played = allPlayers(n);
            }
            JsonNode wd = o.path("screenWidening");
            if (screen != null && wd.isArray() && wd.size() == 4)
                widening = new TopK.Widening(new int[0], wd.get(0).asDouble(), wd.get(1).asDouble(), wd.get(2).asDouble(), wd.get(3).asDouble());
            stats = SufficientStats.fromJson(o.path("stats"), n, p.toString());
            if (marginals != null) marginals = SufficientStats.fromJson(o.path("marginalStats"), n, p.toString());
            if (o.has("round")) {
                round = new ArrayList<>();
                for (JsonNode un : o.get("round")) {
                    Unit u = new Unit(un.path("unit").asLong(), skipped(), stats);
                    for (int j = 0; j < u.walks.length; j++) u.walks[j].restore(un.path("walks").get(j));
                    if (u.a != null)
                        for (int q = 0; q < n; q++) {
                            u.a[q] = un.path("a").get(q).asDouble();
                            u.b[q] = un.path("b").get(q).asDouble();
                        }
                    round.add(u);
                }
            }
        }
    }

    static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
