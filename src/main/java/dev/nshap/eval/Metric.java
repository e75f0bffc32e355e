package dev.nshap.eval;

import dev.nshap.NshapException;

import java.util.Locale;

/**
 * What a prompt scores under a condition. {@link #higherIsBetter} tells a game which sign makes
 * "the model does its job" large: games use accuracy and logit-diff as they are, loss and KL negated.
 */
public enum Metric {
    /** 1 when every answer token is the top-1 prediction under teacher forcing, else 0. */
    ACCURACY("accuracy", true, false),
    /** Mean negative log-likelihood of the answer tokens. */
    LOSS("loss", false, false),
    /** logit(answer's first token) - logit(foil's first token) at the first answer position. */
    LOGIT_DIFF("logit-diff", true, true),
    /** Mean KL(clean || condition) of the next-token distributions at the answer positions. */
    KL("kl", false, true);

    public final String cliName;
    public final boolean higherIsBetter;
    /** Needs the full [positions x V] logits back from the backend. */
    public final boolean needsLogits;

    Metric(String cliName, boolean higherIsBetter, boolean needsLogits) {
        this.cliName = cliName;
        this.higherIsBetter = higherIsBetter;
        this.needsLogits = needsLogits;
    }

    public static Metric parse(String s) {
        for (Metric m : values()) if (m.cliName.equals(s.trim().toLowerCase(Locale.ROOT))) return m;
        throw new NshapException("unknown metric '" + s + "' (accuracy|loss|logit-diff|kl)");
    }

    @Override public String toString() { return cliName; }
}
