package dev.nshap.shapley;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.backend.CounterRng;
import org.apache.commons.rng.UniformRandomProvider;
import org.apache.commons.rng.simple.RandomSource;

import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A sum-of-unanimity game built for estimator benchmarks at n = 3,072 and 36,864: v(S) = sum of w_T over the
 * terms T contained in S (+ optional noise), evaluated through a player -> terms index so that a coalition costs
 * O(changed players) instead of O(all terms).
 *
 * <p>Two evaluation paths, both giving the same number for the same (members, seed): a coalition that differs in
 * few players from the last one of its unit (a permutation walk removes one player per step) updates that unit's
 * per-term missing counts; any other coalition is computed from its smaller side (members, or non-members:
 * v = total - weight of the terms they touch). Weights are fixed point (multiples of 2^-32, summed in a long) so
 * that the two paths agree bit for bit and a value is a pure function of the coalition, as {@link Game} requires.
 *
 * <p>Noise (the "subsampled prompt set" variant): every evaluation adds gaussian noise of standard deviation
 * {@code noise}, a pure function of (members, unit seed) through a Zobrist hash of the members (updated per
 * changed player), so each evaluation draws fresh noise and repeated evaluation of a coalition in one unit does
 * not. The exact values are those of the noiseless game, which is the noisy game's expectation.
 */
public final class IndexedUnanimity extends SyntheticGames.Synthetic {
    static final double SCALE = 0x1.0p32;
    private static final int CACHED_UNITS = 256;

    final int n;
    final int[][] terms;
    final long[] w;                  // fixed point
    final double noise;
    private final int[] start, index;   // CSR: terms of player p are index[start[p]..start[p+1])
    private final long total;
    private final long[] zobrist;
    private final long zobristAll;
    // scratch for the from-scratch path
    private final int[] stamp, cnt;
    private int curStamp;

    private static final class State {
        BitSet members;
        int[] missing;
        long value, hash;
    }

    // per unit up to two walks (an antithetic pair walks its permutation both ways under one unit)
    private final Map<Long, State[]> cache = new LinkedHashMap<>(16, 0.75f, true) {
        @Override protected boolean removeEldestEntry(Map.Entry<Long, State[]> e) { return size() > CACHED_UNITS; }
    };

    public IndexedUnanimity(int n, int[][] terms, double[] weights, double noise) {
        this.n = n;
        this.terms = terms;
        this.noise = noise;
        w = new long[terms.length];
        long t = 0;
        int[] deg = new int[n + 1];
        for (int j = 0; j < terms.length; j++) {
            w[j] = Math.round(weights[j] * SCALE);
            t += w[j];
            for (int p : terms[j]) deg[p + 1]++;
        }
        total = t;
        start = new int[n + 1];
        for (int p = 0; p < n; p++) start[p + 1] = start[p] + deg[p + 1];
        index = new int[start[n]];
        int[] fill = start.clone();
        for (int j = 0; j < terms.length; j++) for (int p : terms[j]) index[fill[p]++] = j;
        zobrist = new long[n];
        long all = 0;
        for (int p = 0; p < n; p++) { zobrist[p] = CounterRng.mix64(0x7A0B15L + p * 0x9E3779B97F4A7C15L); all ^= zobrist[p]; }
        zobristAll = all;
        stamp = new int[terms.length];
        cnt = new int[terms.length];
    }

    @Override public int players() { return n; }

    public int terms() { return terms.length; }

    @Override double value(BitSet s) {
        return noiseless(s) / SCALE;
    }

    /** The noiseless value in fixed point, from the smaller side of the coalition. */
    private long noiseless(BitSet s) {
        int size = s.cardinality();
        if (++curStamp == Integer.MAX_VALUE) { java.util.Arrays.fill(stamp, 0); curStamp = 1; }
        long v = 0;
        if (size <= n / 2) {
            for (int p = s.nextSetBit(0); p >= 0; p = s.nextSetBit(p + 1))
                for (int q = start[p]; q < start[p + 1]; q++) {
                    int j = index[q];
                    if (stamp[j] != curStamp) { stamp[j] = curStamp; cnt[j] = 0; }
                    if (++cnt[j] == terms[j].length) v += w[j];
                }
        } else {
            v = total;
            for (int p = s.nextClearBit(0); p < n; p = s.nextClearBit(p + 1))
                for (int q = start[p]; q < start[p + 1]; q++) {
                    int j = index[q];
                    if (stamp[j] != curStamp) { stamp[j] = curStamp; v -= w[j]; }
                }
        }
        return v;
    }

    private long hash(BitSet s) {
        long h = 0;
        if (s.cardinality() <= n / 2) {
            for (int p = s.nextSetBit(0); p >= 0; p = s.nextSetBit(p + 1)) h ^= zobrist[p];
        } else {
            h = zobristAll;
            for (int p = s.nextClearBit(0); p < n; p = s.nextClearBit(p + 1)) h ^= zobrist[p];
        }
        return h;
    }

    private double withNoise(long v, long hash, long seed) {
        double x = v / SCALE;
        if (noise == 0) return x;
        long key = CounterRng.mix64(hash ^ CounterRng.mix64(seed + 0x51ED27L));
        double u1 = ((CounterRng.mix64(key) >>> 11) + 1) * 0x1.0p-53, u2 = (CounterRng.mix64(~key) >>> 11) * 0x1.0p-53;
        return x + noise * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }

    @Override public synchronized double[] values(List<Coalition> cs) {
        double[] out = new double[cs.size()];
        for (int c = 0; c < out.length; c++) {
            Coalition co = cs.get(c);
            BitSet s = co.members();
            State[] states = cache.get(co.unit());
            State st = null;
            BitSet diff = null;
            int size = s.cardinality(), best = Math.min(size, n - size) + 1;
            if (states != null && size != n)
                for (State cand : states) {
                    if (cand == null) continue;
                    BitSet d = (BitSet) cand.members.clone();
                    d.xor(s);
                    // From scratch walks the smaller side of the coalition, so moving a cached state costs no more
                    // while at most that many players differ (and at equal cost moving wins: the state follows the
                    // walk). TMAB's walks skip settled players, so its successive coalitions can differ by thousands
                    // and still be far cheaper to reach than to rebuild.
                    int dc = d.cardinality();
                    if (dc < best) { diff = d; st = cand; best = dc; }
                }
            if (diff != null) {
                for (int p = diff.nextSetBit(0); p >= 0; p = diff.nextSetBit(p + 1)) {
                    boolean removed = !s.get(p);
                    st.hash ^= zobrist[p];
                    for (int q = start[p]; q < start[p + 1]; q++) {
                        int j = index[q];
                        if (removed) { if (st.missing[j]++ == 0) st.value -= w[j]; }
                        else if (--st.missing[j] == 0) st.value += w[j];
                    }
                }
                st.members = s;
                out[c] = withNoise(st.value, st.hash, co.seed());
            } else if (s.cardinality() == n) {
                // a walk starts at the full coalition: all terms present, nothing missing
                State fresh = new State();
                fresh.members = s;
                fresh.missing = new int[terms.length];
                fresh.value = total;
                fresh.hash = zobristAll;
                if (states == null) cache.put(co.unit(), new State[]{fresh, null});
                else { states[1] = states[0]; states[0] = fresh; }
                out[c] = withNoise(total, zobristAll, co.seed());
            } else {
                out[c] = withNoise(noiseless(s), hash(s), co.seed());
            }
        }
        return out;
    }

    @Override public double[] exactValues() {
        double[] phi = new double[n];
        for (int j = 0; j < terms.length; j++)
            for (int p : terms[j]) phi[p] += (w[j] / SCALE) / terms[j].length;
        return phi;
    }

    @Override public ObjectNode toJson() {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("type", "unanimity");
        o.put("players", n);
        o.put("noise", noise);
        ArrayNode ts = o.putArray("terms");
        for (int j = 0; j < terms.length; j++) {
            ObjectNode term = ts.addObject();
            ArrayNode c = term.putArray("coalition");
            for (int p : terms[j]) c.add(p);
            term.put("weight", w[j] / SCALE);
        }
        return o;
    }

    @Override public Map<String, Object> describe() {
        // hashing the JSON of 36,864 terms per run is wasteful: the generator's parameters define the game
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", "indexed-unanimity");
        m.put("players", n);
        m.put("terms", terms.length);
        m.put("noise", noise);
        long h = 0;
        for (int j = 0; j < terms.length; j++) {
            h = CounterRng.mix64(h ^ w[j]);
            for (int p : terms[j]) h = CounterRng.mix64(h ^ p);
        }
        m.put("hash", Long.toHexString(h));
        return m;
    }

    /**
     * The benchmark game: {@code termsPerPlayer * n} terms, each of order 1..4 (probabilities {@code orderWeights},
     * members uniform), weights Pareto(alpha = 1.5, minimum 1) -- heavy tailed, infinite variance -- with a random
     * sign (positive with probability 0.8).
     */
    public static IndexedUnanimity heavyTailed(int n, double termsPerPlayer, double[] orderWeights, double noise,
                                               long seed) {
        UniformRandomProvider rng = RandomSource.XO_RO_SHI_RO_128_PP.create(seed);
        int m = (int) Math.round(termsPerPlayer * n);
        int[][] terms = new int[m][];
        double[] ws = new double[m];
        double sum = 0;
        for (double x : orderWeights) sum += x;
        for (int j = 0; j < m; j++) {
            double u = rng.nextDouble() * sum;
            int k = 1;
            for (int o = 0; o < orderWeights.length - 1 && u >= orderWeights[o]; o++) { u -= orderWeights[o]; k++; }
            BitSet b = new BitSet(n);
            while (b.cardinality() < k) b.set(rng.nextInt(n));
            terms[j] = b.stream().toArray();
            double pareto = Math.pow(1 - rng.nextDouble(), -1 / 1.5);
            ws[j] = Math.min(pareto, 1e4) * (rng.nextDouble() < 0.8 ? 1 : -1);
        }
        return new IndexedUnanimity(n, terms, ws, noise);
    }

    /** Same terms, another noise level. */
    public IndexedUnanimity withNoise(double sd) {
        double[] ws = new double[w.length];
        for (int j = 0; j < w.length; j++) ws[j] = w[j] / SCALE;
        return new IndexedUnanimity(n, terms, ws, sd);
    }
}
