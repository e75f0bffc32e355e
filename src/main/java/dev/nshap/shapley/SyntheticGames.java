package dev.nshap.shapley;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Games with known Shapley values, for validating estimators. JSON forms:
 * <pre>
 * {"type": "unanimity", "players": 5, "terms": [{"coalition": [0, 2], "weight": 1.5}, ...]}
 * {"type": "voting", "quota": 51, "weights": [30, 20, 10, ...]}      (non-negative integer weights)
 * {"type": "additive", "weights": [0.5, -1, ...]}
 * </pre>
 * Each may carry "names": [...] for the players.
 */
public final class SyntheticGames {
    private SyntheticGames() {}

    public static Game load(Path file) {
        JsonNode o = Json.readTree(file);
        try {
            return parse(o);
        } catch (NshapException e) {
            throw new NshapException(file + ": " + e.getMessage());
        }
    }

    public static Game parse(JsonNode o) {
        if (!o.isObject()) throw new NshapException("a game must be a JSON object");
        String type = o.path("type").asText("");
        Synthetic g = switch (type) {
            case "unanimity" -> Unanimity.parse(o);
            case "voting" -> Voting.parse(o);
            case "additive" -> Additive.parse(o);
            default -> throw new NshapException("unknown game type '" + type + "' (expected unanimity, voting or additive)");
        };
        JsonNode names = o.get("names");
        if (names != null) {
            if (!names.isArray() || names.size() != g.players())
                throw new NshapException("\"names\" must list " + g.players() + " names");
            g.names = new String[g.players()];
            for (int i = 0; i < g.players(); i++) g.names[i] = names.get(i).asText();
        }
        return g;
    }

    /** Common parts: names, provenance (type, size, hash of the canonical JSON). */
    public abstract static class Synthetic implements Game {
        String[] names;

        public abstract ObjectNode toJson();

        abstract double value(BitSet s);

        @Override public double[] values(List<Coalition> cs) {
            double[] v = new double[cs.size()];
            for (int i = 0; i < v.length; i++) v[i] = value(cs.get(i).members());
            return v;
        }

        @Override public String playerName(int i) { return names == null ? Integer.toString(i) : names[i]; }

        @Override public Map<String, Object> describe() {
            Map<String, Object> m = new LinkedHashMap<>();
            ObjectNode j = toJson();
            m.put("type", j.get("type").asText());
            m.put("players", players());
            m.put("sha256", ShapleyRunner.sha256(j.toString()));
            return m;
        }

        static int players(JsonNode o) {
            JsonNode p = o.get("players");
            if (p == null || !p.isIntegralNumber() || !p.canConvertToLong() || p.asLong() < 1)
                throw new NshapException("\"players\" must be a positive integer");
            return checkPlayers(p.asLong());
        }

        static int checkPlayers(long n) {
            if (n > ShapleyRunner.MAX_PLAYERS)
                throw new NshapException(n + " players is more than nshap can hold statistics for (at most " + ShapleyRunner.MAX_PLAYERS + ")");
            return (int) n;
        }

        static double[] numbers(JsonNode o, String key) {
            JsonNode a = o.get(key);
            if (a == null || !a.isArray() || a.isEmpty())
                throw new NshapException("\"" + key + "\" must be a non-empty array of numbers");
            checkPlayers(a.size());
            double[] x = new double[a.size()];
            for (int i = 0; i < x.length; i++) {
                if (!a.get(i).isNumber() || !Double.isFinite(a.get(i).asDouble()))
                    throw new NshapException("\"" + key + "\"[" + i + "] is not a finite number");
                x[i] = a.get(i).asDouble();
            }
            return x;
        }
    }

    /** v(S) = sum of the weights of the terms T contained in S; phi_i = sum over T containing i of w_T / |T|. */
    public static final class Unanimity extends Synthetic {
        final int n;
        final int[][] terms;
        final double[] weights;

        public Unanimity(int n, int[][] terms, double[] weights) {
            this.n = n;
            this.terms = terms;
            this.weights = weights;
        }

        static Unanimity parse(JsonNode o) {
            int n = players(o);
            JsonNode ts = o.get("terms");
            if (ts == null || !ts.isArray() || ts.isEmpty()) throw new NshapException("\"terms\" must be a non-empty array");
            int[][] terms = new int[ts.size()][];
            double[] w = new double[ts.size()];
            for (int t = 0; t < terms.length; t++) {
                JsonNode term = ts.get(t), c = term.get("coalition"), wt = term.get("weight");
                if (c == null || !c.isArray() || c.isEmpty())
                    throw new NshapException("terms[" + t + "].coalition must be a non-empty array of players");
                if (wt == null || !wt.isNumber() || !Double.isFinite(wt.asDouble()))
                    throw new NshapException("terms[" + t + "].weight must be a finite number");
                BitSet seen = new BitSet(n);
                terms[t] = new int[c.size()];
                for (int j = 0; j < c.size(); j++) {
                    if (!c.get(j).canConvertToInt() || !c.get(j).isIntegralNumber())
                        throw new NshapException("terms[" + t + "].coalition[" + j + "] is not a player index");
                    int p = c.get(j).asInt();
                    if (p < 0 || p >= n)
                        throw new NshapException("terms[" + t + "].coalition[" + j + "] = " + p + " is outside 0.." + (n - 1));
                    if (seen.get(p)) throw new NshapException("terms[" + t + "].coalition lists player " + p + " twice");
                    seen.set(p);
                    terms[t][j] = p;
                }
                w[t] = wt.asDouble();
            }
            return new Unanimity(n, terms, w);
        }

        @Override public int players() { return n; }

        @Override double value(BitSet s) {
            double v = 0;
            outer:
            for (int t = 0; t < terms.length; t++) {
                for (int p : terms[t]) if (!s.get(p)) continue outer;
                v += weights[t];
            }
            return v;
        }

        @Override public double[] exactValues() {
            double[] phi = new double[n];
            for (int t = 0; t < terms.length; t++)
                for (int p : terms[t]) phi[p] += weights[t] / terms[t].length;
            return phi;
        }

        @Override public ObjectNode toJson() {
            ObjectNode o = JsonNodeFactory.instance.objectNode();
            o.put("type", "unanimity");
            o.put("players", n);
            ArrayNode ts = o.putArray("terms");
            for (int t = 0; t < terms.length; t++) {
                ObjectNode term = ts.addObject();
                ArrayNode c = term.putArray("coalition");
                for (int p : terms[t]) c.add(p);
                term.put("weight", weights[t]);
            }
            return o;
        }
    }

    /**
     * Weighted voting: v(S) = 1 when the weights in S reach the quota. Exact values by dynamic programming over
     * (coalition size, weight), once per distinct weight: phi_i = (1/n) sum_s P(a random s-subset of the others
     * has weight in [q - w_i, q)).
     */
    public static final class Voting extends Synthetic {
        /** About ten seconds of dynamic programming. */
        static final double MAX_DP_WORK = 4e9;
        final long[] weights;
        final double quota;
        private double[] exact;

        public Voting(double quota, long[] weights) {
            this.quota = quota;
            this.weights = weights;
        }

        static Voting parse(JsonNode o) {
            JsonNode q = o.get("quota");
            if (q == null || !q.isNumber() || !Double.isFinite(q.asDouble()))
                throw new NshapException("\"quota\" must be a finite number");
            double[] w = numbers(o, "weights");
            long[] lw = new long[w.length];
            for (int i = 0; i < w.length; i++) {
                if (w[i] < 0 || w[i] != Math.rint(w[i]) || w[i] > 1e9)
                    throw new NshapException("\"weights\"[" + i + "] = " + w[i] + " is not a non-negative integer (<= 1e9)");
                lw[i] = (long) w[i];
            }
            if (o.has("players") && players(o) != w.length)
                throw new NshapException("\"players\" is " + o.get("players").asInt() + " but there are " + w.length + " weights");
            return new Voting(q.asDouble(), lw);
        }

        @Override public int players() { return weights.length; }

        @Override double value(BitSet s) {
            long sum = 0;
            for (int i = s.nextSetBit(0); i >= 0; i = s.nextSetBit(i + 1)) sum += weights[i];
            return sum >= quota ? 1 : 0;
        }

        @Override public synchronized double[] exactValues() {
            if (exact != null) return exact.clone();
            int n = weights.length;
            double qd = Math.ceil(quota);
            double[] phi = new double[n];
            if (qd <= 0) return exact = phi;              // every coalition wins: all marginals are 0
            long distinct = Arrays.stream(weights).distinct().count();
            if (qd > 50_000_000L / Math.max(1, n) || distinct * (double) n * n * qd / 2 > MAX_DP_WORK)
                return null;                               // minutes of work: report the values as unknown

            int q = (int) qd;
            Map<Long, Double> byWeight = new LinkedHashMap<>();
            for (int i = 0; i < n; i++) {
                long wi = weights[i];
                Double known = byWeight.get(wi);
                if (known == null) {
                    known = pivotal(i, q, n);
                    byWeight.put(wi, known);
                }
                phi[i] = known;
            }
            exact = phi;
            return phi.clone();
        }

        /** (1/n) sum_s P(W(S) in [q - w_i, q)) over uniform s-subsets S of the other players. */
        private double pivotal(int i, int q, int n) {
            // dp[s][x] = P(weight = x) for a uniform s-subset of the m players processed so far; x == q means ">= q"
            double[][] dp = new double[n][q + 1];
            dp[0][0] = 1;
            int m = 0;
            for (int j = 0; j < n; j++) {
                if (j == i) continue;
                int wj = (int) Math.min(weights[j], q);
                for (int s = Math.min(m + 1, n - 1); s >= 0; s--) {
                    double keep = (double) (m + 1 - s) / (m + 1), take = (double) s / (m + 1);
                    double[] row = dp[s];
                    for (int x = 0; x <= q; x++) row[x] *= keep;
                    if (s == 0) continue;
                    double[] prev = dp[s - 1];     // still the old row: s runs downwards
                    for (int y = 0; y <= q; y++) {
                        if (prev[y] == 0) continue;
                        row[Math.min(q, y + wj)] += prev[y] * take;
                    }
                }
                m++;
            }
            long lo = Math.max(0, q - weights[i]);
            double acc = 0;
            for (int s = 0; s < n; s++)
                for (long x = lo; x < q; x++) acc += dp[s][(int) x];
            return acc / n;
        }

        @Override public ObjectNode toJson() {
            ObjectNode o = JsonNodeFactory.instance.objectNode();
            o.put("type", "voting");
            o.put("quota", quota);
            ArrayNode w = o.putArray("weights");
            for (long x : weights) w.add(x);
            return o;
        }
    }

    /** v(S) = sum of w_i over S; phi_i = w_i. */
    public static final class Additive extends Synthetic {
        final double[] weights;

        public Additive(double[] weights) { this.weights = weights; }

        static Additive parse(JsonNode o) {
            double[] w = numbers(o, "weights");
            if (o.has("players") && players(o) != w.length)
                throw new NshapException("\"players\" is " + o.get("players").asInt() + " but there are " + w.length + " weights");
            return new Additive(w);
        }

        @Override public int players() { return weights.length; }

        @Override double value(BitSet s) {
            double v = 0;
            for (int i = s.nextSetBit(0); i >= 0; i = s.nextSetBit(i + 1)) v += weights[i];
            return v;
        }

        @Override public double[] exactValues() { return weights.clone(); }

        @Override public ObjectNode toJson() {
            ObjectNode o = JsonNodeFactory.instance.objectNode();
            o.put("type", "additive");
            ArrayNode w = o.putArray("weights");
            for (double x : weights) w.add(x);
            return o;
        }
    }

    // ---------------------------------------------------------------- random games (tests, estimator evaluation)

    /**
     * A sum-of-unanimity game with {@code strong} players that each own a heavy term (a clear top-k gap) and
     * {@code terms} light random terms of 2..maxSize players drawn from the first {@code active} players; the
     * remaining players are null (as most neurons are for a given topic), so values reach 0 early on a removal walk.
     */
    public static Unanimity randomUnanimity(int n, int strong, int active, int terms, int maxSize, long seed) {
        return randomUnanimity(n, strong, 3.0, active, terms, maxSize, seed);
    }

    /** As above, strong terms weighing strongWeight..strongWeight+1. */
    public static Unanimity randomUnanimity(int n, int strong, double strongWeight, int active, int terms, int maxSize,
                                            long seed) {
        var rng = org.apache.commons.rng.simple.RandomSource.XO_RO_SHI_RO_128_PP.create(seed);
        List<int[]> ts = new ArrayList<>();
        List<Double> ws = new ArrayList<>();
        int[] perm = Walk.permutation(seed, 0, n);          // which players are strong/active: scattered
        for (int s = 0; s < strong; s++) {
            ts.add(new int[]{perm[s]});
            ws.add(strongWeight + rng.nextDouble());
        }
        for (int t = 0; t < terms; t++) {
            int size = 2 + rng.nextInt(Math.max(1, maxSize - 1));
            BitSet b = new BitSet();
            while (b.cardinality() < Math.min(size, active)) b.set(perm[rng.nextInt(active)]);
            ts.add(b.stream().toArray());
            ws.add(rng.nextDouble());
        }
        return new Unanimity(n, ts.toArray(new int[0][]), ws.stream().mapToDouble(Double::doubleValue).toArray());
    }

    /**
     * A top-k game in the shape Neuron Shapley meets: k strong players joined in a ring of pair terms (weights
     * 1..1.1, so each is worth about 1 but its marginal is 0, 1 or 2 depending on the order: noisy),
     * {@code contenders} players with single terms just below ({@code level} down to 0.9 level, no noise), and
     * the rest null. The top-k is separated by a clear gap, but only sampling enough permutations shows it.
     */
    public static Unanimity topKGame(int n, int k, int contenders, double level, long seed) {
        var rng = org.apache.commons.rng.simple.RandomSource.XO_RO_SHI_RO_128_PP.create(seed);
        int[] perm = Walk.permutation(seed, 0, n);
        List<int[]> ts = new ArrayList<>();
        List<Double> ws = new ArrayList<>();
        for (int i = 0; i < k; i++) {
            ts.add(new int[]{perm[i], perm[(i + 1) % k]});
            ws.add(1 + 0.1 * rng.nextDouble());
        }
        for (int j = 0; j < contenders; j++) {
            ts.add(new int[]{perm[k + j]});
            ws.add(level * (1 - 0.1 * j / Math.max(1, contenders)));
        }
        return new Unanimity(n, ts.toArray(new int[0][]), ws.stream().mapToDouble(Double::doubleValue).toArray());
    }

    /** A voting game: {@code heavy} players of weight 20..29 and the rest 1..5, quota at half the total weight. */
    public static Voting randomVoting(int n, int heavy, long seed) {
        return randomVoting(n, heavy, n - heavy, 0.5, seed);
    }

    /**
     * A voting game: {@code heavy} players of weight 20..29, {@code light} of weight 1..5, the rest weight 0
     * (null players); the quota is {@code quotaFraction} of the total weight (rounded up). A high quota makes the
     * value drop to 0 early on a removal walk, the situation truncated Monte Carlo exploits.
     */
    public static Voting randomVoting(int n, int heavy, int light, double quotaFraction, long seed) {
        var rng = org.apache.commons.rng.simple.RandomSource.XO_RO_SHI_RO_128_PP.create(seed);
        long[] w = new long[n];
        int[] perm = Walk.permutation(seed, 0, n);
        for (int i = 0; i < n; i++) w[perm[i]] = i < heavy ? 20 + rng.nextInt(10) : i < heavy + light ? 1 + rng.nextInt(5) : 0;
        long total = Arrays.stream(w).sum();
        return new Voting(Math.ceil(total * quotaFraction), w);
    }
}
