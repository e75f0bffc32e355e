package dev.nshap.backend;

import java.util.Arrays;

/**
 * An edit of the activations at one hook point, for some units, in some sequences of the batch, at every
 * position. Giving each coalition its own set of sequences is how one batch evaluates many coalitions.
 *
 * @param units     unit indices at the hook (neurons for {@code mlp.hook_post}); null = every unit
 * @param sequences batch indices it applies to; null = every sequence
 * @param vector    REPLACE: the replacement value for each unit; ADD: the direction added; indexed by unit
 *                  (length = hook width)
 * @param amount    SCALE: the factor; NOISE / NEGATIVE_NOISE: the intensity; ADD: the coefficient
 * @param seed      NOISE / NEGATIVE_NOISE: noise at (position t, unit u) is {@link CounterRng#gaussian}(seed, t, u),
 *                  the same whatever the batch, so batched and separate runs agree
 * @param from      the positions it applies to: {@code t >= from} (0 = every position), {@link #LAST} = each
 *                  sequence's last position only, or {@link #only}(t) = position t only. Only ADD may restrict
 *                  positions.
 */
public record Intervention(HookPoint hook, Op op, int[] units, int[] sequences, float[] vector, float amount, long seed,
                           int from) {

    /** {@link #from} value: only the last position of each sequence (its own length - 1). */
    public static final int LAST = -1;

    /** The {@link #from} value that selects position t alone (t >= 0). */
    public static int only(int t) {
        if (t < 0) throw new IllegalArgumentException("position " + t);
        return -2 - t;
    }

    /** Every position: the form of every op but ADD. */
    public Intervention(HookPoint hook, Op op, int[] units, int[] sequences, float[] vector, float amount, long seed) {
        this(hook, op, units, sequences, vector, amount, seed, 0);
    }

    /** A unit listed twice would be scaled or noised twice on one backend and once on another: refuse it. */
    public Intervention {
        if (from != 0 && op != Op.ADD)
            throw new dev.nshap.NshapException("intervention at " + hook + ": only ADD can be limited to some positions");
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
        NEGATIVE_NOISE,
        /** Add {@code amount} x {@code vector[u]} (steering), at the positions chosen by {@code from}. */
        ADD
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

    /**
     * Adds coefficient x direction[u] at the units (null = all) of the sequences (null = all), at positions
     * {@code t >= from}, or at the last position only when {@code from == LAST}.
     */
    public static Intervention add(HookPoint h, int[] units, int[] seqs, float[] direction, float coefficient, int from) {
        return new Intervention(h, Op.ADD, units, seqs, direction, coefficient, 0L, from);
    }

    /** The same edit for other sequences of the batch. */
    public Intervention withSequences(int[] seqs) {
        return new Intervention(hook, op, units, seqs, vector, amount, seed, from);
    }

    /** Whether it acts at position t of a sequence of length len. */
    public boolean atPosition(int t, int len) {
        return t >= firstPosition(len) && t < endPosition(len);
    }

    /** The first position it acts at in a sequence of length len. */
    public int firstPosition(int len) {
        return from == LAST ? len - 1 : from < LAST ? -2 - from : from;
    }

    /** One past the last position it acts at (never beyond len). */
    public int endPosition(int len) {
        return from < LAST ? Math.min(len, -1 - from) : len;
    }

    public boolean appliesTo(int sequence) {
        if (sequences == null) return true;
        for (int s : sequences) if (s == sequence) return true;
        return false;
    }

    @Override public String toString() {
        return op + "@" + hook + (units == null ? "[all]" : "[" + units.length + " units]")
                + (sequences == null ? "" : " seqs=" + Arrays.toString(sequences)) + (op == Op.SCALE || op == Op.NOISE
                || op == Op.NEGATIVE_NOISE || op == Op.ADD ? " amount=" + amount : "")
                + (from == 0 ? "" : from == LAST ? " last" : from < LAST ? " at=" + (-2 - from) : " from=" + from);
    }
}
