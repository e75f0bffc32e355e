package dev.nshap.shapley;

import java.util.List;
import java.util.Map;

/**
 * A cooperative game: a number of players and a batched value function. Estimators hand out coalitions in
 * batches because a model-backed game evaluates a whole batch in one forward pass.
 */
public interface Game {

    int players();

    /**
     * The value of each coalition, in order. The batch mixes coalitions of several permutations; see
     * {@link Coalition} for why each carries its permutation's seed.
     */
    double[] values(List<Coalition> coalitions);

    /** Name of a player in outputs (the GPT-2 game returns {@code blocks.L.mlp.hook_post[N]}). */
    default String playerName(int i) { return Integer.toString(i); }

    /** Extra per-player output columns (the GPT-2 game adds layer, index). */
    default List<String> extraColumns() { return List.of(); }

    default List<String> extraValues(int player) { return List.of(); }

    /** Provenance: everything that defines the game. Its JSON is hashed into checkpoints to refuse mismatches. */
    default Map<String, Object> describe() { return Map.of(); }

    /**
     * Facts about the run that do not define the game (e.g. measured v(all) and v(none)): written into the result's
     * provenance, never hashed into the fingerprint.
     */
    default Map<String, Object> provenance() { return Map.of(); }

    /** Exact Shapley values when known in closed form, else null; used for error reporting only. */
    default double[] exactValues() { return null; }
}
