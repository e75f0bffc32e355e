package dev.nshap.backend;

import dev.nshap.NshapException;
import dev.nshap.model.GPT2Config;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One MLP neuron, {@code blocks.L.mlp.hook_post[N]}. {@link #parseGroup} also reads the group spellings results
 * print for a player of several neurons: a range {@code blocks.L.mlp.hook_post[A:B]} (neurons A..B-1) and ids joined
 * by '+'.
 */
public record NeuronId(int layer, int index) implements Comparable<NeuronId> {
    private static final Pattern P = Pattern.compile("blocks\\.(\\d+)\\.mlp\\.hook_post\\[(\\d+)]");
    private static final Pattern RANGE = Pattern.compile("blocks\\.(\\d+)\\.mlp\\.hook_post\\[(\\d+):(\\d+)]");

    public static NeuronId parse(String s) {
        Matcher m = P.matcher(s.trim());
        if (!m.matches()) throw new NshapException("bad neuron id '" + s + "' (expected blocks.L.mlp.hook_post[N])");
        return new NeuronId(number(m.group(1), "layer", s), number(m.group(2), "neuron index", s));
    }

    /** True for a range {@code [A:B]} or a '+' list: a spelling {@link #parseGroup} reads and {@link #parse} does not. */
    public static boolean isGroup(String s) {
        String t = s.trim();
        return RANGE.matcher(t).matches() || t.contains("+");
    }

    /** The neurons of one id, one range {@code blocks.L.mlp.hook_post[A:B]}, or ids joined by '+', in that order. */
    public static List<NeuronId> parseGroup(String s) {
        String t = s.trim();
        List<NeuronId> out = new ArrayList<>();
        Matcher m = RANGE.matcher(t);
        if (m.matches()) {
            int l = number(m.group(1), "layer", s), a = number(m.group(2), "neuron index", s), b = number(m.group(3), "neuron index", s);
            if (b <= a) throw new NshapException("bad neuron range '" + s + "' (need A < B in [A:B]; B is excluded)");
            for (int k = a; k < b; k++) out.add(new NeuronId(l, k));
            return out;
        }
        for (String part : t.split("\\+", -1)) {
            try {
                out.add(parse(part));
            } catch (NshapException e) {
                throw new NshapException("bad neuron id or group '" + s + "' (expected blocks.L.mlp.hook_post[N], [A:B] or ids joined by '+')");
            }
        }
        return out;
    }

    /**
     * A layer or index written in decimal digits, refused (not crashed on, not wrapped) when it cannot be an int.
     * Shared by every parser of TransformerLens names.
     */
    public static int number(String digits, String what, String whole) {
        // at most 10 digits fit an int; parse as long so 99999999999 is "too large", not a NumberFormatException
        if (digits.length() > 18 || Long.parseLong(digits) > Integer.MAX_VALUE)
            throw new NshapException("'" + whole + "': " + what + " " + digits + " is too large");
        return Integer.parseInt(digits);
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
