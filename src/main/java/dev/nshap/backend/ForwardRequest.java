package dev.nshap.backend;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * One batched forward pass: sequences of possibly different lengths, the positions whose next-token
 * distribution is wanted, interventions, and hook points to cache.
 */
public final class ForwardRequest {
    /** Token ids per sequence. */
    public final List<int[]> tokens = new ArrayList<>();
    /** Per sequence, the positions to compute logits at (ascending); null or empty = none. */
    public final List<int[]> scorePositions = new ArrayList<>();
    /** Per sequence, optional target token per scored position: the result then carries its log-prob and the top-1. */
    public final List<int[]> targets = new ArrayList<>();
    public final List<Intervention> interventions = new ArrayList<>();
    public final Set<HookPoint> cache = new LinkedHashSet<>();
    /** When false the backend returns only the target summaries (cheaper on a GPU: no [n, V] copy back). */
    public boolean wantLogits = true;
    /**
     * Prefix reuse: start at this layer, from {@link #startResidual} (per sequence, {@code blocks.L.hook_resid_pre}
     * as [T*C]) instead of the embeddings. Layers before it are the same for every coalition.
     */
    public int startLayer = 0;
    public List<float[]> startResidual = null;

    public ForwardRequest add(int[] toks, int[] scorePos, int[] target) {
        tokens.add(toks);
        scorePositions.add(scorePos);
        targets.add(target);
        return this;
    }

    /** Adds a sequence scored at its last position. */
    public ForwardRequest addLast(int[] toks) {
        return add(toks, new int[]{toks.length - 1}, null);
    }

    public int size() { return tokens.size(); }
}
