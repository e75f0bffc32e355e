package dev.nshap.shapley;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.backend.CounterRng;
import org.apache.commons.rng.UniformRandomProvider;
import org.apache.commons.rng.sampling.PermutationSampler;
import org.apache.commons.rng.simple.RandomSource;

import java.util.BitSet;
import java.util.List;

/**
 * One permutation walked from the full coalition, removing players in permutation order: the marginal of player
 * p is v(S) - v(S \ {p}). A walk hands out the coalitions it can already name ({@link #emit}) and receives their
 * values in the same order ({@link #apply}); the runner interleaves many walks to fill batches. Between steps
 * (nothing outstanding) its state is a handful of numbers, which is what a checkpoint stores.
 */
abstract class Walk {
    interface Sink { void add(int player, double marginal); }

    final int n;
    final int[] order;
    final long unit, seed;
    final Sink sink;

    Walk(int n, int[] order, long unit, long seed, Sink sink) {
        this.n = n;
        this.order = order;
        this.unit = unit;
        this.seed = seed;
        this.sink = sink;
    }

    abstract boolean done();

    /** Appends at most {@code max} coalitions that can be evaluated now; returns how many. */
    abstract int emit(List<Coalition> out, int max);

    abstract void apply(double value);

    abstract ObjectNode state();

    abstract void restore(JsonNode state);

    /** The permutation of unit u: a pure function of (seed, u). */
    static int[] permutation(long seed, long unit, int n) {
        UniformRandomProvider rng = RandomSource.XO_RO_SHI_RO_128_PP.create(
                new long[]{CounterRng.mix64(seed ^ 0x5DEECE66DL), CounterRng.mix64(unit * 0x9E3779B97F4A7C15L + 1)});
        int[] a = new int[n];
        for (int i = 0; i < n; i++) a[i] = i;
        PermutationSampler.shuffle(rng, a);
        return a;
    }

    static int[] reversed(int[] a) {
        int[] r = new int[a.length];
        for (int i = 0; i < a.length; i++) r[i] = a[a.length - 1 - i];
        return r;
    }

    /** The seed a game sees for every coalition of unit u (see {@link Coalition}). */
    static long unitSeed(long seed, long unit) {
        return CounterRng.mix64(CounterRng.mix64(seed + 0x632BE59BD9B4E019L) ^ (unit + 0x2545F4914F6CDD1DL));
    }

    BitSet withoutPrefix(int removed) {
        BitSet b = new BitSet(n);
        b.set(0, n);
        for (int j = 0; j < removed; j++) b.clear(order[j]);
        return b;
    }

    static ObjectNode node() { return JsonNodeFactory.instance.objectNode(); }

    /**
     * Plain walk: all n+1 coalitions are known up front, so it emits ahead freely (full batches). With a trace it
     * also keeps every value (trace[t] = v after removing t players) for estimators that use whole walks.
     */
    static final class Plain extends Walk {
        private int emitted, applied;
        private double prev;
        private BitSet emitBits;
        final double[] trace;

        Plain(int n, int[] order, long unit, long seed, Sink sink) { this(n, order, unit, seed, sink, false); }

        Plain(int n, int[] order, long unit, long seed, Sink sink, boolean keepTrace) {
            super(n, order, unit, seed, sink);
            trace = keepTrace ? new double[n + 1] : null;
        }

        @Override boolean done() { return applied == n + 1; }

        @Override int emit(List<Coalition> out, int max) {
            int added = 0;
            while (emitted < n + 1 && added < max) {
                if (emitBits == null) emitBits = withoutPrefix(Math.max(0, emitted - 1));
                if (emitted > 0) emitBits.clear(order[emitted - 1]);
                out.add(new Coalition((BitSet) emitBits.clone(), unit, seed));
                emitted++;
                added++;
            }
            return added;
        }

        @Override void apply(double v) {
            if (applied > 0 && sink != null) sink.add(order[applied - 1], prev - v);
            if (trace != null) trace[applied] = v;
            prev = v;
            applied++;
        }

        @Override ObjectNode state() {
            ObjectNode o = node();
            o.put("applied", applied);
            o.put("prev", prev);
            if (trace != null) {
                var t = o.putArray("trace");
                for (int i = 0; i < applied; i++) t.add(trace[i]);
            }
            return o;
        }

        @Override void restore(JsonNode s) {
            applied = emitted = s.path("applied").asInt();
            prev = s.path("prev").asDouble();
            emitBits = null;
            if (trace != null) for (int i = 0; i < applied; i++) trace[i] = s.path("trace").get(i).asDouble();
        }
    }

    /**
     * Truncated walk (TMC): once the value has stayed within the tolerance of the baseline for more than
     * {@code steps} consecutive evaluated steps, the remaining players get marginal 0 without evaluation. With a
     * settled set (TMAB), settled players are removed without evaluating their marginal and get no sample. Before
     * the next unsettled player is removed, the coalition (now without those settled players) is evaluated once,
     * so that player's marginal is v(S) - v(S \ {p}) for the S the permutation really reaches: an unsettled
     * player's samples stay unbiased instead of absorbing the settled players' marginals. Every evaluated value
     * of the walk counts as a step for truncation.
     */
    static final class Truncated extends Walk {
        private final BitSet settled;
        private final Double givenBaseline;
        private final double tol;
        private final int steps;
        private final int needInit;
        private static final int REFRESH = -2, NONE = -1;
        private int initEmitted, initApplied, pos, consecutive, pending = NONE;
        private double full, empty = Double.NaN, baseline, prev;
        private boolean done, stale;
        private BitSet current;

        Truncated(int n, int[] order, long unit, long seed, Sink sink, BitSet settled, Double givenBaseline,
                  double tol, int steps) {
            super(n, order, unit, seed, sink);
            this.settled = settled;
            this.givenBaseline = givenBaseline;
            this.tol = tol;
            this.steps = steps;
            this.needInit = givenBaseline == null ? 2 : 1;
        }

        @Override boolean done() { return done; }

        private boolean isSettled(int p) { return settled != null && settled.get(p); }

        @Override int emit(List<Coalition> out, int max) {
            if (done || max <= 0) return 0;
            if (initApplied < needInit) {
                int added = 0;
                while (initEmitted < needInit && added < max) {
                    BitSet b = new BitSet(n);
                    if (initEmitted == 0) b.set(0, n);
                    out.add(new Coalition(b, unit, seed));
                    initEmitted++;
                    added++;
                }
                return added;
            }
            if (pending != NONE) return 0;
            if (current == null) current = withoutPrefix(pos);
            while (true) {
                while (pos < n && isSettled(order[pos])) { current.clear(order[pos++]); stale = true; }
                if (pos == n) { done = true; return 0; }
                if (stale) {                       // prev is the value before the settled players left
                    pending = REFRESH;
                    out.add(new Coalition((BitSet) current.clone(), unit, seed));
                    return 1;
                }
                int p = order[pos++];
                current.clear(p);
                pending = p;
                if (current.isEmpty() && !Double.isNaN(empty)) {
                    step(empty);          // v(empty) is already known: no evaluation
                    if (done) return 0;
                    continue;
                }
                out.add(new Coalition((BitSet) current.clone(), unit, seed));
                return 1;
            }
        }

        @Override void apply(double v) {
            if (initApplied < needInit) {
                if (initApplied == 0) { full = v; prev = v; }
                else empty = v;
                initApplied++;
                if (initApplied == needInit) baseline = givenBaseline == null ? empty : givenBaseline;
                return;
            }
            step(v);
        }

        private void step(double v) {
            if (pending == REFRESH) stale = false;
            else sink.add(pending, prev - v);
            pending = NONE;
            prev = v;
            consecutive = Math.abs(v - baseline) <= tol ? consecutive + 1 : 0;
            if (consecutive > steps) {
                for (int j = pos; j < n; j++) if (!isSettled(order[j])) sink.add(order[j], 0.0);
                pos = n;
                done = true;
            } else if (pos == n) done = true;
        }

        @Override ObjectNode state() {
            ObjectNode o = node();
            o.put("initApplied", initApplied);
            o.put("full", full);
            if (!Double.isNaN(empty)) o.put("empty", empty);
            o.put("baseline", baseline);
            o.put("pos", pos);
            o.put("prev", prev);
            o.put("consecutive", consecutive);
            o.put("done", done);
            o.put("stale", stale);
            return o;
        }

        @Override void restore(JsonNode s) {
            initApplied = initEmitted = s.path("initApplied").asInt();
            full = s.path("full").asDouble();
            empty = s.has("empty") ? s.get("empty").asDouble() : Double.NaN;
            baseline = s.path("baseline").asDouble();
            pos = s.path("pos").asInt();
            prev = s.path("prev").asDouble();
            consecutive = s.path("consecutive").asInt();
            done = s.path("done").asBoolean();
            stale = s.path("stale").asBoolean();
            current = null;
            pending = NONE;
        }
    }
}
