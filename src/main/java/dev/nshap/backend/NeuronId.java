package dev.nshap.backend;

import dev.nshap.NshapException;
import dev.nshap.model.GPT2Config;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** One MLP neuron, {@code blocks.L.mlp.hook_post[N]}. */
public record NeuronId(int layer, int index) implements Comparable<NeuronId> {
    private static final Pattern P = Pattern.compile("blocks\\.(\\d+)\\.mlp\\.hook_post\\[(\\d+)]");

    public static NeuronId parse(String s) {
        Matcher m = P.matcher(s.trim());
        if (!m.matches()) throw new NshapException("bad neuron id '" + s + "' (expected blocks.L.mlp.hook_post[N])");
        return new NeuronId(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)));
    }

    public NeuronId checkFor(GPT2Config c) {
        if (layer < 0 || layer >= c.nLayer() || index < 0 || index >= c.nInner())
            throw new NshapException("unknown neuron " + this + ": the model has layers 0.." + (c.nLayer() - 1)
                    + " with neurons 0.." + (c.nInner() - 1));
        return this;
    }

    @Override public String toString() { return "blocks." + layer + ".mlp.hook_post[" + index + "]"; }

    @Override public int compareTo(NeuronId o) {
        return layer != o.layer ? Integer.compare(layer, o.layer) : Integer.compare(index, o.index);
    }
}
