package dev.nshap.shapley;

import java.util.List;
import java.util.Map;

/**
 * A finished (or merged) run. {@code estimates} is indexed by player; {@code byRank()} sorts them.
 *
 * @param stats sufficient statistics (null for exact enumeration)
 * @param exact exact values when the game knows them, else null
 * @param topK  TMAB: the certified top-k, the ambiguous players and the screen's bound (see {@link TopK}), else null
 */
public record ShapleyResult(ShapleyConfig config, Map<String, Object> game, String gameFingerprint,
                            List<PlayerEstimate> estimates, long evaluations, long units, long rounds,
                            String stopReason, double elapsedSeconds, SufficientStats stats, double[] exact,
                            Map<String, Object> topK) {

    public double[] means() {
        double[] m = new double[estimates.size()];
        for (PlayerEstimate e : estimates) m[e.player()] = e.mean();
        return m;
    }

    public List<PlayerEstimate> byRank() {
        return estimates.stream().sorted(java.util.Comparator.comparingInt(PlayerEstimate::rank)).toList();
    }

    /** MSE, max abs error, Spearman and precision@k against the exact values, or null when they are unknown. */
    public Metrics.Errors errors() {
        return exact == null ? null : Metrics.errors(means(), exact, config.topK());
    }
}
