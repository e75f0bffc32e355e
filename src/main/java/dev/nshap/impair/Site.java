package dev.nshap.impair;

import dev.nshap.NshapException;
import dev.nshap.backend.HookPoint;
import dev.nshap.model.GPT2Config;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Where an impairment applies: {@code blocks.*.mlp.hook_post} (every layer), {@code blocks.3.hook_mlp_out}
 * (one layer), or the bare hook name ({@code mlp.hook_post} = every layer).
 *
 * @param layer the one layer, or -1 for every layer
 */
public record Site(HookPoint.Kind kind, int layer) {
    private static final Pattern P = Pattern.compile("(?:blocks\\.(\\*|\\d+)\\.)?(mlp\\.hook_pre|mlp\\.hook_post|hook_mlp_out|hook_resid_mid)");

    public static Site parse(String s) {
        Matcher m = P.matcher(s == null ? "" : s.trim());
        if (!m.matches())
            throw new NshapException("unknown --site '" + s + "' (expected blocks.*.mlp.hook_pre|mlp.hook_post|hook_mlp_out|hook_resid_mid, * or a layer number)");
        String l = m.group(1);
        return new Site(HookPoint.Kind.ofSuffix(m.group(2)), l == null || l.equals("*") ? -1 : dev.nshap.backend.NeuronId.number(l, "layer", s));
    }

    public boolean neuronSite() { return kind == HookPoint.Kind.MLP_POST || kind == HookPoint.Kind.MLP_PRE; }

    public boolean covers(int l) { return layer < 0 || layer == l; }

    public Site checkFor(GPT2Config c) {
        if (layer >= c.nLayer())
            throw new NshapException("--site " + this + ": the model has layers 0.." + (c.nLayer() - 1));
        return this;
    }

    @Override public String toString() { return "blocks." + (layer < 0 ? "*" : Integer.toString(layer)) + "." + kind.suffix; }
}
