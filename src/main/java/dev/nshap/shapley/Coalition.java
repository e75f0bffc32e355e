package dev.nshap.shapley;

import java.util.BitSet;

/**
 * One coalition to evaluate: the players kept, and the permutation it belongs to.
 *
 * <p>Estimators batch coalitions from several permutations into one {@link Game#values} call, so the
 * permutation travels with each coalition instead of through a "begin permutation" callback. A game that draws
 * a fresh data subsample per permutation (as Neuron Shapley does) must derive it from {@link #seed()} alone;
 * coalitions of the same permutation (and of both halves of an antithetic pair) share the seed. Values must be a
 * pure function of (members, seed): that is what makes results independent of the batch size and of resuming.
 *
 * @param members the players kept (never modified by the game)
 * @param unit    the sampling unit (permutation, or antithetic pair) index; -1 for exact enumeration
 * @param seed    the unit's seed, derived from the run seed and the unit index
 */
public record Coalition(BitSet members, long unit, long seed) {
}
