package dev.nshap.backend;

import dev.nshap.model.GPT2Config;

/** A GPT-2 forward pass. The CPU backend is the reference every other backend is tested against. */
public interface Backend extends AutoCloseable {
    String name();

    GPT2Config config();

    ForwardResult forward(ForwardRequest request);

    @Override default void close() {}
}
