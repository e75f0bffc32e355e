package dev.nshap.shapley;

import org.apache.commons.rng.UniformRandomProvider;
import org.apache.commons.rng.sampling.PermutationSampler;
import org.apache.commons.rng.simple.RandomSource;
import org.apache.commons.statistics.distribution.HypergeometricDistribution;
import org.apache.commons.statistics.distribution.NormalDistribution;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The (epsilon, delta)-PAC top-k rule of TMAB, and the screen that restricts the bandit to a few players.
 *
 * <p>Bound (default, {@code --bound bernstein}). Player i's bandit interval after c samples is mean +- (sqrt(2 var L / c) + 7 R L / (3 (c - 1))) with
 * L = ln(2 m c (c + 1) / delta), m the number of players played: empirical Bernstein at delta / (m c (c+1)), so a
 * union over the players and over every sample count (sum over c of 1/(c(c+1)) = 1) makes all intervals hold at
 * once, at every time, with probability 1 - delta. Checking between any rounds, stopping whenever, is covered.
 *
 * <p>Rule. theta is the midpoint between the k-th and (k+1)-th largest means. A player is IN when its interval
 * lies above theta, OUT when below, AMBIGUOUS when it straddles theta but is at most epsilon/2 wide, else OPEN.
 * Only OPEN players are sampled; the run stops when none is left. The returned set is the top k by mean (IN
 * players are always among them, OUT never). If all intervals hold, every returned player's value is at least
 * the true k-th largest value minus epsilon: a returned player is worth >= theta - epsilon/2; either k players are
 * worth more than theta + epsilon/2 (then all are IN and are exactly the returned set), or the k-th value is at
 * most theta + epsilon/2.
 */
public final class TopK {
    private TopK() {}

    public static final String IN = "in", OUT = "out", AMBIGUOUS = "ambiguous", OPEN = "open", SCREENED = "screened";

    /**
     * Anytime half-width of player i's bandit interval (infinite below two samples): empirical Bernstein, or with
     * {@code normal} the Gaussian approximation z(delta') * stderr at the same per-(player, count) level delta' --
     * no range term, so it settles far sooner on heavy-tailed marginals, but its level holds only as far as the
     * central limit theorem does at that sample count. The normal bound's z depends on the count alone, so
     * {@code zAt} keeps it per count for a pass over all players (one inverse CDF per distinct count, not per player).
     */
    static double halfWidth(SufficientStats st, int i, double delta, int played, double range, boolean normal,
                            Map<Long, Double> zAt) {
        long c = st.count(i);
        // the normal approximation needs a few samples: a heavy-tailed marginal often shows one value at first
        if (c < (normal ? NORMAL_MIN_SAMPLES : 2)) return Double.POSITIVE_INFINITY;
        double d = delta / (played * c * (c + 1.0));
        if (normal) return zAt.computeIfAbsent(c, q -> Z.inverseSurvivalProbability(d / 2)) * st.standardError(i);
        double l = Math.log(2 / d);
        return Math.sqrt(2 * st.variance(i) * l / c) + 7 * range * l / (3.0 * (c - 1));
    }

    private static final NormalDistribution Z = NormalDistribution.of(0, 1);
    static final int NORMAL_MIN_SAMPLES = 10;

    public static final String BERNSTEIN = "bernstein", NORMAL = "normal";

    /** Epsilon in effect: the given one, or 1% of the spread of the played players' means. */
    static double epsilon(SufficientStats st, BitSet played, double given) {
        if (given > 0) return given;
        double lo = Double.POSITIVE_INFINITY, hi = Double.NEGATIVE_INFINITY;
        for (int i = played.nextSetBit(0); i >= 0; i = played.nextSetBit(i + 1)) {
            if (st.count(i) == 0) continue;
            lo = Math.min(lo, st.mean(i));
            hi = Math.max(hi, st.mean(i));
        }
        return hi > lo ? 0.01 * (hi - lo) : 0;
    }

    /** The k-th / (k+1)-th boundary among the played players' means. */
    static double threshold(SufficientStats st, BitSet played, int k) {
        double[] m = new double[played.cardinality()];
        int j = 0;
        for (int i = played.nextSetBit(0); i >= 0; i = played.nextSetBit(i + 1))
            m[j++] = Double.isNaN(st.mean(i)) ? Double.NEGATIVE_INFINITY : st.mean(i);
        double next = Metrics.kthLargest(m, k + 1), least = Double.POSITIVE_INFINITY;
        int above = 0;
        for (double x : m) if (x > next) { above++; least = Math.min(least, x); }
        // k values above the (k+1)-th: the k-th is the least of them; fewer: the k-th ties with it
        return 0.5 * ((above == k ? least : next) + next);
    }

    /**
     * Each player's status (SCREENED for players outside {@code played}). A played player with fewer than 2 samples
     * is OPEN; the others are classified against the boundary among themselves, once more than k of them have 2.
     * Players a widening screen has just added therefore do not reopen everyone else: their samples can only raise
     * the boundary (more players, higher order statistics), which keeps every OUT verdict, and IN verdicts are
     * checked again after every round.
     */
    static String[] classify(SufficientStats st, BitSet played, int k, double delta, double range, double eps,
                             boolean normal) {
        int n = st.players();
        String[] s = new String[n];
        for (int i = 0; i < n; i++) s[i] = played.get(i) ? OPEN : SCREENED;
        BitSet ready = ready(st, played);
        if (ready.cardinality() <= k) return s;
        double theta = threshold(st, ready, k);
        int m = played.cardinality();
        Map<Long, Double> zAt = new HashMap<>();
        for (int i = ready.nextSetBit(0); i >= 0; i = ready.nextSetBit(i + 1)) {
            double cb = halfWidth(st, i, delta, m, range, normal, zAt), lo = st.mean(i) - cb, hi = st.mean(i) + cb;
            if (lo > theta) s[i] = IN;
            else if (hi < theta) s[i] = OUT;
            else if (2 * cb <= eps / 2) s[i] = AMBIGUOUS;
        }
        return s;
    }

    /** The played players with at least two samples: those classified, and those the boundary is taken over. */
    static BitSet ready(SufficientStats st, BitSet played) {
        BitSet ready = new BitSet(st.players());
        for (int i = played.nextSetBit(0); i >= 0; i = played.nextSetBit(i + 1)) if (st.count(i) >= 2) ready.set(i);
        return ready;
    }

    /** Fewest samples before the focus may park a player: below it a running mean says little. */
    static final int FOCUS_MIN_SAMPLES = 3;
    /**
     * The focus's z, per player and not shared by a union bound: it only orders the sampling. 2 rather than 3: at
     * n = 36,864 with noise, z = 3 parked a zero-valued player only after 8-9 samples, so most of the run was still
     * spent on everyone (precision@100 >= 0.9 after 505k evaluations, 246k with z = 2; docs/shapley.md).
     */
    static final double FOCUS_Z = 2;

    /**
     * The OPEN players the next round leaves out without settling them ({@code --focus}). A player with at least
     * {@link #FOCUS_MIN_SAMPLES} samples is parked while mean +- FOCUS_Z * sqrt(max(var_i, floor) / c) lies clear
     * of the boundary, the floor being {@link #candidateVariance}: a plausible interval, not the bandit's. The bandit's union bound over tens of
     * thousands of players keeps every interval wide for many samples, so without a focus all of them are walked
     * until the first settle, and the few near the boundary, the only ones whose order is still in doubt, get no
     * more samples than the rest. A player whose samples have all been equal is never parked: it has shown no
     * spread yet, which on a noiseless game is what a unanimity term's marginal looks like until its partners come
     * in (at n = 1,000 parking such players kept true top-10 players out for 10-15 times the evaluations).
     *
     * <p>A parked player stays OPEN: the certificate is the bandit's alone, and parking never settles anybody.
     * Parked players are checked again after every round (the boundary moves as the candidates' means do), and
     * when the focus would park every OPEN player it parks none, so the run still ends with everyone settled.
     */
    static BitSet parked(SufficientStats st, BitSet played, String[] status, int k) {
        BitSet ready = ready(st, played), out = new BitSet(st.players());
        if (ready.cardinality() <= k) return out;
        double theta = threshold(st, ready, k);
        double floor = candidateVariance(st, ready, k);
        boolean anyLeft = false;
        for (int i = played.nextSetBit(0); i >= 0; i = played.nextSetBit(i + 1)) {
            if (!OPEN.equals(status[i])) continue;
            long c = st.count(i);
            if (c >= FOCUS_MIN_SAMPLES && st.variance(i) > 0 && Math.abs(st.mean(i) - theta) > FOCUS_Z * Math.sqrt(Math.max(st.variance(i), floor) / c))
                out.set(i);
            else anyLeft = true;
        }
        if (!anyLeft) out.clear();
        return out;
    }

    /**
     * The median variance of the 2k players of highest mean: the spread a contender's marginals show. A player's
     * own three or four samples can understate its spread by chance; a player that could be in the top k is taken
     * to vary at least as much as those that are.
     */
    static double candidateVariance(SufficientStats st, BitSet ready, int k) {
        int r = ready.cardinality(), c = Math.min(2 * k, r);
        double[] m = new double[r];
        int j = 0;
        for (int i = ready.nextSetBit(0); i >= 0; i = ready.nextSetBit(i + 1)) m[j++] = st.mean(i);
        double cut = Metrics.kthLargest(m, c);
        double[] var = new double[r];
        j = 0;
        for (int i = ready.nextSetBit(0); i >= 0; i = ready.nextSetBit(i + 1)) if (st.mean(i) >= cut) var[j++] = st.variance(i);
        var = Arrays.copyOf(var, j);
        Arrays.sort(var);
        return var[j / 2];
    }

    static BitSet settled(String[] status) {
        BitSet b = new BitSet(status.length);
        for (int i = 0; i < status.length; i++) if (!OPEN.equals(status[i])) b.set(i);
        return b;
    }

    // ---------------------------------------------------------------- screen

    /**
     * The players a screen plays: the top M by a_j, and a uniform sample of R of the rest (seeded). By a, not |a|:
     * the bandit looks for the k highest values, so a player the surrogate puts far below zero is as unlikely a
     * candidate as one it puts at zero (the first version took |a| and spent half of M on such players).
     */
    public record Screen(BitSet played, BitSet top, BitSet sample, int restSize) {}

    public static Screen screen(double[] a, int top, int sample, long seed) {
        int n = a.length;
        BitSet t = new BitSet(n);
        for (int i : Metrics.topK(a, Math.min(top, n))) t.set(i);
        int[] rest = new int[n - t.cardinality()];
        int j = 0;
        for (int i = 0; i < n; i++) if (!t.get(i)) rest[j++] = i;
        UniformRandomProvider rng = RandomSource.XO_RO_SHI_RO_128_PP.create(new long[]{seed ^ 0x5C12EE4L, 0x3A61L});
        PermutationSampler.shuffle(rng, rest);
        BitSet s = new BitSet(n);
        for (int q = 0; q < Math.min(sample, rest.length); q++) s.set(rest[q]);
        BitSet played = (BitSet) t.clone();
        played.or(s);
        return new Screen(played, t, s, rest.length);
    }

    /** Expected true top-k players left among the unplayed ones that the calibrated widening aims to stay under. */
    public static final double WIDEN_TARGET = 0.5;

    /** The calibrated widening's decision: the players to play from now on, and what the model expects is still missed. */
    public record Widening(int[] add, double expectedMissed, double slope, double intercept, double sigma) {}

    /**
     * The screen's calibrated widening, after a round. The uniformly sampled players say how well a ranks the rest:
     * fit phi = alpha + beta a (least squares over every played player's running mean), take the residual spread
     * sigma from the sampled players alone (they stand for the unplayed ones, and their residuals include their
     * estimates' own noise, which only widens more), and give each unplayed player j the probability
     * p_j = P(alpha + beta a_j + sigma Z > tau) of beating the running k-th value tau. The unplayed players of highest
     * p_j are added until the sum over the rest, the expected number of true top-k players still missed, is at most
     * {@code target}. A good surrogate (small sigma) adds few or none; a poor one adds nearly everyone at the first
     * round, so the run becomes plain TMAB having spent one screened round. A model, not a bound: the hypergeometric
     * {@link #missedBound} stays the rigorous statement. Null while some played player has fewer than 2 samples.
     */
    public static Widening widen(double[] a, SufficientStats st, BitSet played, BitSet sample, int k, double target) {
        int n = a.length;
        int m = 0;
        for (int i = played.nextSetBit(0); i >= 0; i = played.nextSetBit(i + 1)) {
            if (st.count(i) < 2) return null;
            m++;
        }
        if (m <= k || played.cardinality() == n) return new Widening(new int[0], 0, 0, 0, 0);
        double tau = threshold(st, played, k);
        double sa = 0, sp = 0, saa = 0, sap = 0;
        for (int i = played.nextSetBit(0); i >= 0; i = played.nextSetBit(i + 1)) {
            double x = a[i], y = st.mean(i);
            sa += x; sp += y; saa += x * x; sap += x * y;
        }
        double va = saa - sa * sa / m, beta = va > 0 ? (sap - sa * sp / m) / va : 0, alpha = (sp - beta * sa) / m;
        BitSet sampledPlayed = (BitSet) sample.clone();
        sampledPlayed.and(played);
        // too few sampled players to say anything about the rest: every played one's residual instead
        double sigma = residualSd(a, st, sampledPlayed.cardinality() >= 2 ? sampledPlayed : played, alpha, beta);
        NormalDistribution z = NormalDistribution.of(0, 1);
        double[] p = new double[n];
        List<Integer> order = new ArrayList<>();
        for (int i = played.nextClearBit(0); i < n; i = played.nextClearBit(i + 1)) {
            double mu = alpha + beta * a[i];
            p[i] = sigma > 0 ? z.survivalProbability((tau - mu) / sigma) : (mu > tau ? 1 : 0);
            order.add(i);
        }
        order.sort((x, y) -> p[x] != p[y] ? Double.compare(p[y], p[x]) : Integer.compare(x, y));
        // rest[q]: the expected misses if only the first q of the order are added, summed from the small end
        int u = order.size();
        double[] rest = new double[u + 1];
        for (int q = u - 1; q >= 0; q--) rest[q] = rest[q + 1] + p[order.get(q)];
        int add = 0;
        while (add < u && rest[add] > target) add++;
        return new Widening(order.subList(0, add).stream().mapToInt(Integer::intValue).toArray(), rest[add], beta, alpha, sigma);
    }

    /**
     * The residual spread of phi = alpha + beta a over the players in {@code over}: the point estimate, not an upper
     * confidence bound. Widening late costs more than widening little (players added in a later round need as many
     * samples as everyone, a round or more behind), and the upper 90% bound made the n = 300 benchmark of
     * docs/shapley.md 1.5x costlier at correlation 0.7 for no fewer misses.
     */
    private static double residualSd(double[] a, SufficientStats st, BitSet over, double alpha, double beta) {
        double rss = 0;
        int r = 0;
        for (int i = over.nextSetBit(0); i >= 0; i = over.nextSetBit(i + 1)) {
            double e = st.mean(i) - alpha - beta * a[i];
            rss += e * e;
            r++;
        }
        return Math.sqrt(rss / Math.max(1, r - 1));
    }

    /**
     * Upper bound, at confidence 1 - delta, on how many true top-k players are among the never-played ones. The
     * rest (all but the top M) holds some number K of true top-k players; the uniform sample of R drew x of them
     * (x = sampled players that ended in the returned top k, which a true top-k player in the sample always does
     * when the bandit is right, since the played set contains it). K_up = the largest K with
     * P(Hypergeometric(rest, K, R) <= x) > delta; the missed ones number K - x <= K_up - x.
     */
    public static int missedBound(int restSize, int sampleSize, int sampledInTopK, int k, double delta) {
        int unplayed = restSize - sampleSize;
        if (unplayed <= 0) return 0;
        int kMax = Math.min(restSize, sampledInTopK + Math.min(k, unplayed));
        int up = sampledInTopK;
        for (int K = sampledInTopK; K <= kMax; K++) {
            double p = HypergeometricDistribution.of(restSize, K, sampleSize).cumulativeProbability(sampledInTopK);
            if (p > delta) up = K; else break;
        }
        return Math.min(k, up - sampledInTopK);
    }

    /** The returned set, its certified part and the ambiguous players, for the result file. */
    public record Certificate(List<Integer> returned, List<Integer> certified, List<Integer> ambiguous,
                              List<Integer> open, double epsilon, double threshold) {}

    static Certificate certificate(double[] mean, String[] status, BitSet played, int k, double eps, double theta) {
        double[] m = mean.clone();
        for (int i = 0; i < m.length; i++) if (!played.get(i)) m[i] = Double.NaN;
        List<Integer> ret = new ArrayList<>(), cert = new ArrayList<>(), amb = new ArrayList<>(), open = new ArrayList<>();
        for (int i : Metrics.topK(m, k)) ret.add(i);
        for (int i = 0; i < status.length; i++) {
            if (IN.equals(status[i])) cert.add(i);
            else if (AMBIGUOUS.equals(status[i])) amb.add(i);
            else if (OPEN.equals(status[i])) open.add(i);
        }
        return new Certificate(ret, cert, amb, open, eps, theta);
    }
}
