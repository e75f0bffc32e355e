package dev.nshap.shapley;

import java.util.List;

/**
 * Where the coalitions of a run are evaluated. The default is the game itself, in this process
 * ({@code game::values}); {@code dev.nshap.scale} spreads them over the members of a cluster. Whatever evaluates
 * them, a value must be a pure function of (members, seed) (see {@link Coalition}), so the engine cannot change a
 * number: the runner still takes every adaptive decision itself, between rounds.
 */
@FunctionalInterface
public interface Evaluators extends AutoCloseable {

    /** The value of each coalition, in order. */
    double[] values(List<Coalition> coalitions);

    /**
     * Coalitions the runner should gather per call, given its batch size: an engine with W workers asks for W
     * batches so that each worker gets one.
     */
    default int gather(int batch) { return batch; }

    @Override default void close() { }
}
