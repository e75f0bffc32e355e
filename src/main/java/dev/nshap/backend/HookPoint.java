package dev.nshap.backend;

import dev.nshap.NshapException;
import dev.nshap.model.GPT2Config;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A hook point, named as TransformerLens names it: {@code blocks.L.mlp.hook_post} and so on. */
public record HookPoint(int layer, Kind kind) {

    public enum Kind {
        RESID_PRE("hook_resid_pre"), ATTN_OUT("hook_attn_out"), RESID_MID("hook_resid_mid"),
        MLP_PRE("mlp.hook_pre"), MLP_POST("mlp.hook_post"), MLP_OUT("hook_mlp_out"), RESID_POST("hook_resid_post");

        public final String suffix;
        Kind(String suffix) { this.suffix = suffix; }

        public static Kind ofSuffix(String s) {
            for (Kind k : values()) if (k.suffix.equals(s)) return k;
            return null;
        }

        /** Units at this hook: 4*n_embd for the MLP's inside, n_embd for the residual stream. */
        public int width(GPT2Config c) { return this == MLP_PRE || this == MLP_POST ? c.nInner() : c.nEmbd(); }
    }

    private static final Pattern NAME = Pattern.compile("blocks\\.(\\d+)\\.(hook_resid_pre|hook_attn_out|hook_resid_mid|mlp\\.hook_pre|mlp\\.hook_post|hook_mlp_out|hook_resid_post)");

    public static HookPoint mlpPost(int layer) { return new HookPoint(layer, Kind.MLP_POST); }

    public String name() { return "blocks." + layer + "." + kind.suffix; }

    public int width(GPT2Config c) { return kind.width(c); }

    @Override public String toString() { return name(); }

    public static HookPoint parse(String s) {
        Matcher m = NAME.matcher(s.trim());
        if (!m.matches()) throw new NshapException("unknown hook point '" + s + "' (expected e.g. blocks.0.mlp.hook_post)");
        return new HookPoint(NeuronId.number(m.group(1), "layer", s), Kind.ofSuffix(m.group(2)));
    }

    /** Checks the layer exists in this model. */
    public HookPoint checkFor(GPT2Config c) {
        if (layer < 0 || layer >= c.nLayer())
            throw new NshapException("hook point " + name() + ": the model has layers 0.." + (c.nLayer() - 1));
        return this;
    }
}
