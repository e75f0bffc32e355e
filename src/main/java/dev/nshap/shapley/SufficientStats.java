package dev.nshap.shapley;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;

import java.math.BigDecimal;
import java.math.MathContext;

/**
 * Per-player count, sum and sum of squares of the samples, summed EXACTLY (BigDecimal holds any sum of doubles
 * without rounding). Exact sums do not depend on the order of addition, so a run that is batched differently,
 * resumed from a checkpoint, or split into shards and merged gives bit-identical statistics. Each square is the
 * double x*x, rounded once per sample, which is itself a pure function of the sample.
 */
public final class SufficientStats {
    private static final MathContext MC = new MathContext(40);
    private final int n;
    private final long[] count;
    private final BigDecimal[] sum, sumSq;
    private double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
    // cached doubles derived from the exact sums; recomputed on demand
    private final double[] meanCache, varCache;
    private final boolean[] dirty;

    public SufficientStats(int n) {
        this.n = n;
        count = new long[n];
        sum = new BigDecimal[n];
        sumSq = new BigDecimal[n];
        java.util.Arrays.fill(sum, BigDecimal.ZERO);
        java.util.Arrays.fill(sumSq, BigDecimal.ZERO);
        meanCache = new double[n];
        varCache = new double[n];
        dirty = new boolean[n];
        java.util.Arrays.fill(dirty, true);
    }

    public int players() { return n; }

    public void add(int player, double x) {
        if (!Double.isFinite(x))
            throw new NshapException("the game returned a non-finite marginal contribution for player " + player);
        count[player]++;
        if (x != 0) {
            sum[player] = sum[player].add(new BigDecimal(x));
            sumSq[player] = sumSq[player].add(new BigDecimal(x * x));
        }
        if (x < min) min = x;
        if (x > max) max = x;
        dirty[player] = true;
    }

    public void addAll(SufficientStats o) {
        if (o.n != n) throw new NshapException("cannot merge statistics of " + o.n + " and " + n + " players");
        for (int i = 0; i < n; i++) {
            count[i] += o.count[i];
            sum[i] = sum[i].add(o.sum[i]);
            sumSq[i] = sumSq[i].add(o.sumSq[i]);
            dirty[i] = true;
        }
        min = Math.min(min, o.min);
        max = Math.max(max, o.max);
    }

    public long count(int i) { return count[i]; }

    public double mean(int i) { refresh(i); return meanCache[i]; }

    /** Unbiased sample variance (NaN below 2 samples). */
    public double variance(int i) { refresh(i); return varCache[i]; }

    public double standardError(int i) {
        return count[i] < 2 ? Double.NaN : Math.sqrt(variance(i) / count[i]);
    }

    /** Observed range of all samples so far (0 when fewer than one). */
    public double observedRange() { return max >= min ? max - min : 0; }

    private void refresh(int i) {
        if (!dirty[i]) return;
        long c = count[i];
        meanCache[i] = c == 0 ? Double.NaN : sum[i].divide(BigDecimal.valueOf(c), MC).doubleValue();
        if (c < 2) varCache[i] = Double.NaN;
        else {
            // (c * sumSq - sum^2) / (c (c-1)), exact up to the final division
            BigDecimal num = sumSq[i].multiply(BigDecimal.valueOf(c)).subtract(sum[i].multiply(sum[i]));
            double v = num.divide(BigDecimal.valueOf(c).multiply(BigDecimal.valueOf(c - 1)), MC)
                    .doubleValue();
            varCache[i] = Math.max(0, v);
        }
        dirty[i] = false;
    }

    public boolean sameAs(SufficientStats o) {
        if (o.n != n) return false;
        for (int i = 0; i < n; i++)
            if (count[i] != o.count[i] || sum[i].compareTo(o.sum[i]) != 0 || sumSq[i].compareTo(o.sumSq[i]) != 0)
                return false;
        return Double.compare(min, o.min) == 0 && Double.compare(max, o.max) == 0;
    }

    /** Exact sums as decimal strings, so checkpoints and shard files lose nothing. */
    public ObjectNode toJson() {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        ArrayNode c = o.putArray("count"), s = o.putArray("sum"), q = o.putArray("sumSq");
        for (int i = 0; i < n; i++) {
            c.add(count[i]);
            s.add(sum[i].toString());
            q.add(sumSq[i].toString());
        }
        if (max >= min) {
            o.put("min", min);
            o.put("max", max);
        }
        return o;
    }

    public static SufficientStats fromJson(JsonNode o, int n, String where) {
        JsonNode c = o.path("count"), s = o.path("sum"), q = o.path("sumSq");
        if (!c.isArray() || !s.isArray() || !q.isArray() || c.size() != n || s.size() != n || q.size() != n)
            throw new NshapException(where + ": statistics must hold count, sum and sumSq arrays of " + n + " players");
        SufficientStats st = new SufficientStats(n);
        try {
            for (int i = 0; i < n; i++) {
                if (!c.get(i).canConvertToLong() || c.get(i).asLong() < 0)
                    throw new NshapException(where + ": bad count for player " + i);
                st.count[i] = c.get(i).asLong();
                st.sum[i] = new BigDecimal(s.get(i).asText());
                st.sumSq[i] = new BigDecimal(q.get(i).asText());
            }
        } catch (NumberFormatException e) {
            throw new NshapException(where + ": statistics hold a value that is not a number");
        }
        if (o.has("min") && o.has("max")) {
            st.min = o.get("min").asDouble();
            st.max = o.get("max").asDouble();
        }
        return st;
    }
}
