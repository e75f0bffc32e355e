package dev.nshap.backend;

import dev.nshap.model.GPT2Config;

/** A GPT-2 forward pass. The CPU backend is the reference every other backend is tested against. */
public interface Backend extends AutoCloseable {
    String name();

    GPT2Config config();

    ForwardResult forward(ForwardRequest request);

    /**
     * True when the backend itself runs the layers before the first intervention once per distinct prompt of a
     * request: callers then send whole prompts, not a clean prefix residual ({@link ForwardRequest#startLayer}).
     */
    default boolean sharesPrefixes() { return false; }

    /** Tokens per forward request: the caller's figure, or the backend's own plan (a device memory planner). */
    default int tokenBudget(int requested) { return requested; }

    @Override default void close() {}
}
