package dev.nshap.backend;

import java.util.Arrays;

/**
 * An edit of the activations at one hook point, for some units, in some sequences of the batch, at every
 * position. Giving each coalition its own set of sequences is how one batch evaluates many coalitions.
 *
 * @param units     unit indices at the hook (neurons for {@code mlp.hook_post}); null = every unit
 * @param sequences batch indices it applies to; null = every sequence
 * @param vector    REPLACE only: the replacement value for each unit, indexed by unit (length = hook width)
 * @param amount    SCALE: the factor; NOISE / NEGATIVE_NOISE: the intensity
 * @param seed      NOISE / NEGATIVE_NOISE: noise at (position t, unit u) is {@link CounterRng#gaussian}(seed, t, u),
 *                  the same whatever the batch, so batched and separate runs agree
 */
public record Intervention(HookPoint hook, Op op, int[] units, int[] sequences, float[] vector, float amount, long seed) {

    /** A unit listed twice would be scaled or noised twice on one backend and once on another: refuse it. */
    public Intervention {
        if (units != null && units.length > 1) {
            java.util.BitSet seen = new java.util.BitSet();
            for (int u : units) {
                if (u < 0) throw new dev.nshap.NshapException("intervention at " + hook + ": negative unit " + u);
                if (seen.get(u)) throw new dev.nshap.NshapException("intervention at " + hook + " lists unit " + u + " twice");
                seen.set(u);
            }
        }
    }

    public enum Op {
        /** Set to 0. */
        ZERO,
        /** Set to a given vector (mean ablation). */
        REPLACE,
        /** Multiply by {@code amount}. */
        SCALE,
        /** Add N(0,1) x amount. */
        NOISE,
        /** Add (z - max z) x amount, z ~ N(0,1) over the chosen units at each position: never positive. */
        NEGATIVE_NOISE
    }

    public static Intervention zero(HookPoint h, int[] units, int[] seqs) {
        return new Intervention(h, Op.ZERO, units, seqs, null, 0f, 0L);
    }

    public static Intervention replace(HookPoint h, int[] units, int[] seqs, float[] vector) {
        return new Intervention(h, Op.REPLACE, units, seqs, vector, 0f, 0L);
    }

    public static Intervention scale(HookPoint h, int[] units, int[] seqs, float factor) {
        return new Intervention(h, Op.SCALE, units, seqs, null, factor, 0L);
    }

    public static Intervention noise(HookPoint h, int[] units, int[] seqs, float intensity, long seed) {
        return new Intervention(h, Op.NOISE, units, seqs, null, intensity, seed);
    }

    public static Intervention negativeNoise(HookPoint h, int[] units, int[] seqs, float intensity, long seed) {
        return new Intervention(h, Op.NEGATIVE_NOISE, units, seqs, null, intensity, seed);
    }

    public boolean appliesTo(int sequence) {
        if (sequences == null) return true;
        for (int s : sequences) if (s == sequence) return true;
        return false;
    }

    @Override public String toString() {
        return op + "@" + hook + (units == null ? "[all]" : "[" + units.length + " units]")
                + (sequences == null ? "" : " seqs=" + Arrays.toString(sequences)) + (op == Op.SCALE || op == Op.NOISE
                || op == Op.NEGATIVE_NOISE ? " amount=" + amount : "");
    }
}
