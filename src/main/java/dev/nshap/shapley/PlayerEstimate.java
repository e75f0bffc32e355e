package dev.nshap.shapley;

/**
 * One player's result. {@code ciLow..ciHigh} is a Student-t interval at the configured confidence for the
 * plain estimators, the empirical-Bernstein interval for TMAB, and the point itself for exact enumeration.
 */
public record PlayerEstimate(int player, double mean, double stderr, long samples, double ciLow, double ciHigh,
                             boolean settled, int rank) {
}
