package dev.nshap.shapley;

/**
 * One player's result. {@code ciLow..ciHigh} is the Student-t interval at the configured confidence for every
 * sampling estimator (the point itself for exact enumeration). TMAB adds the bandit's own anytime bound
 * {@code banditLow..banditHigh} (empirical Bernstein, union bound over players and sample counts), which is what
 * settles players; NaN for the other estimators. {@code status}: TMAB's verdict on the player (in, out, ambiguous,
 * open, screened; see {@link TopK}), else empty.
 */
public record PlayerEstimate(int player, double mean, double stderr, long samples, double ciLow, double ciHigh,
                             boolean settled, int rank, double banditLow, double banditHigh, String status) {

    public PlayerEstimate(int player, double mean, double stderr, long samples, double ciLow, double ciHigh,
                          boolean settled, int rank) {
        this(player, mean, stderr, samples, ciLow, ciHigh, settled, rank, Double.NaN, Double.NaN, "");
    }
}
