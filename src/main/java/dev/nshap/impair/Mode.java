package dev.nshap.impair;

import dev.nshap.NshapException;

/** How a level impairs the chosen units. */
public enum Mode {
    /** Add N(0,1) x level. */
    NOISE("noise"),
    /** Add (z - max z) x level over the chosen units at each position: never raises a unit. */
    NEGATIVE_NOISE("negative-noise"),
    /** Multiply by the level: 1 = unchanged, 0 = ablated. */
    SCALE("scale");

    public final String cliName;

    Mode(String cliName) { this.cliName = cliName; }

    public boolean random() { return this != SCALE; }

    /** The level at which the model is untouched. */
    public double neutralLevel() { return this == SCALE ? 1.0 : 0.0; }

    public static Mode parse(String s) {
        for (Mode m : values()) if (m.cliName.equals(s.trim())) return m;
        throw new NshapException("unknown --mode '" + s + "' (noise|negative-noise|scale)");
    }

    @Override public String toString() { return cliName; }
}
