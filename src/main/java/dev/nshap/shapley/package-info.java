/**
 * Shapley value estimators for any cooperative {@link dev.nshap.shapley.Game}.
 *
 * <p>Plugging in a game (the GPT-2 topic game does this): implement {@code Game} (players, batched values, optional
 * names, extra columns, provenance, exact values), build a {@link dev.nshap.shapley.ShapleyConfig} and call
 * {@code new ShapleyRunner(game, config).run()}; the runner does batching, progress on stderr, checkpoints,
 * resume, shards and the PREFIX.json / PREFIX.csv outputs. A game that subsamples its data per permutation
 * derives the subsample from {@link dev.nshap.shapley.Coalition#seed()}; one batch mixes permutations.
 *
 * <p>Walks. Every sampling estimator walks a permutation from the full coalition, removing players in order;
 * player p's marginal is v(S) - v(S \ {p}). {@code permutation} walks every step (n+1 evaluations);
 * {@code antithetic} walks the permutation and its reverse and counts the pair's mean as one sample (so the
 * standard error accounts for the pairing); {@code tmc} starts with v(N) and the baseline (v(empty) unless a
 * baseline is given) and, once |v - baseline| <= tolerance for more than {@code truncationSteps} consecutive
 * evaluated steps, gives the remaining players marginal 0; {@code tmab} is tmc whose walks skip settled players
 * (re-evaluating the coalition before the next unsettled player, so its marginal stays unbiased) and which
 * re-settles players between rounds by an anytime (epsilon, delta)-PAC top-k rule ({@link dev.nshap.shapley.TopK}).
 * {@code regression} and {@code kernelshap} use every evaluated coalition for every player
 * ({@link dev.nshap.shapley.RegressionAdjusted}, {@link dev.nshap.shapley.KernelShap}).
 *
 * <p>Sufficient statistics are summed exactly ({@link dev.nshap.shapley.SufficientStats}), so batch size,
 * resuming and sharding never change a number.
 */
package dev.nshap.shapley;
