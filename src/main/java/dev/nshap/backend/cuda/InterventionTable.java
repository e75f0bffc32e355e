package dev.nshap.backend.cuda;

import dev.nshap.backend.Intervention;

import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The interventions at one hook point, for the sequences of one launch, as the flat arrays the kernels read
 * (cuda/gelu_intervene.cuh): per sequence the ids of the ops that apply to it, in request order; per op its type,
 * amount, seed, first position, whether only that position, a unit bitset and a vector (REPLACE's values, ADD's direction). A batch of many coalitions (each intervention naming its
 * own sequences) becomes one table and one launch.
 */
public final class InterventionTable {
    public static final int OP_INTS = 8;

    public final int[] seqOpStart;
    public final int[] opList;
    public final int[] ops;
    public final int[] masks;
    public final float[] vecs;

    private InterventionTable(int[] seqOpStart, int[] opList, int[] ops, int[] masks, float[] vecs) {
        this.seqOpStart = seqOpStart;
        this.opList = opList;
        this.ops = ops;
        this.masks = masks;
        this.vecs = vecs;
    }

    public int opCount() { return ops.length / OP_INTS; }

    /** As {@link #build(List, int, int, int, int[])} for interventions that act at every position. */
    public static InterventionTable build(List<Intervention> ivs, int width, int firstSeq, int nSeq) {
        return build(ivs, width, firstSeq, nSeq, null);
    }

    /**
     * @param ivs      interventions at this hook, in request order (already validated)
     * @param width    units at the hook
     * @param firstSeq the request index of the launch's sequence 0
     * @param nSeq     sequences in the launch (request indices firstSeq .. firstSeq + nSeq)
     * @param seqLen   the launch's sequence lengths; needed only by last-position-only ADD, which becomes one op per
     *                 sequence starting at its last position (the kernel sees positions, not lengths)
     * @return null when nothing applies to these sequences
     */
    public static InterventionTable build(List<Intervention> ivs, int width, int firstSeq, int nSeq, int[] seqLen) {
        int words = (width + 31) >>> 5;
        int[][] perSeq = new int[nSeq][];
        int[] perSeqCount = new int[nSeq];
        int[] ops = new int[ivs.size() * OP_INTS];
        int nOps = 0, maskWords = 0, vecFloats = 0;
        int[] masks = new int[0];
        float[] vecs = new float[0];
        // Ops with equal vectors (mean ablation: every coalition replaces with the same means) share one copy.
        Map<float[], Integer> vecAt = new IdentityHashMap<>();
        Map<VecKey, Integer> vecAtByValue = new HashMap<>();
        int[] mine = new int[nSeq];
        for (Intervention iv : ivs) {
            int m = 0;
            if (iv.sequences() == null) {
                for (int s = 0; s < nSeq; s++) mine[m++] = s;
            } else {
                for (int g : iv.sequences()) {
                    int s = g - firstSeq;
                    if (s >= 0 && s < nSeq) mine[m++] = s;
                }
            }
            if (m == 0) continue;
            int maskOff = -1;
            if (iv.units() != null) {
                maskOff = maskWords;
                if (masks.length < maskWords + words) masks = Arrays.copyOf(masks, Math.max(2 * masks.length, maskWords + words));
                for (int u : iv.units()) masks[maskOff + (u >>> 5)] |= 1 << (u & 31);
                maskWords += words;
            }
            int vecOff = 0;
            if (iv.vector() != null) {
                Integer at = vecAt.get(iv.vector());
                if (at == null) at = vecAtByValue.get(new VecKey(iv.vector()));
                if (at == null) {
                    at = vecFloats;
                    if (vecs.length < vecFloats + width) vecs = Arrays.copyOf(vecs, Math.max(2 * vecs.length, vecFloats + width));
                    System.arraycopy(iv.vector(), 0, vecs, at, width);
                    vecFloats += width;
                    vecAtByValue.put(new VecKey(iv.vector()), at);
                }
                vecAt.put(iv.vector(), at);
                vecOff = at;
            }
            int type = switch (iv.op()) {
                case ZERO -> CudaKernels.OP_ZERO;
                case REPLACE -> CudaKernels.OP_REPLACE;
                case SCALE -> CudaKernels.OP_SCALE;
                case NOISE -> CudaKernels.OP_NOISE;
                case NEGATIVE_NOISE -> CudaKernels.OP_NEGATIVE_NOISE;
                case ADD -> CudaKernels.OP_ADD;
            };
            boolean perSequence = iv.from() == Intervention.LAST;
            if (perSequence && seqLen == null) throw new IllegalArgumentException("last-position ADD needs the sequence lengths");
            for (int i = 0; i < (perSequence ? m : 1); i++) {
                if (ops.length < (nOps + 1) * OP_INTS) ops = Arrays.copyOf(ops, 2 * ops.length);
                int o = nOps * OP_INTS;
                ops[o] = type;
                ops[o + 1] = maskOff;
                ops[o + 2] = vecOff;
                ops[o + 3] = Float.floatToRawIntBits(iv.amount());
                ops[o + 4] = (int) iv.seed();
                ops[o + 5] = (int) (iv.seed() >>> 32);
                boolean one = iv.from() < Intervention.LAST;
                ops[o + 6] = perSequence ? seqLen[mine[i]] - 1 : one ? iv.firstPosition(Integer.MAX_VALUE) : iv.from(); // first position
                ops[o + 7] = one ? 1 : 0;                                                                           // that one only
                if (perSequence) add(perSeq, perSeqCount, mine[i], nOps);
                else for (int j = 0; j < m; j++) add(perSeq, perSeqCount, mine[j], nOps);
                nOps++;
            }
        }
        if (nOps == 0) return null;
        int[] start = new int[nSeq + 1];
        for (int s = 0; s < nSeq; s++) start[s + 1] = start[s] + perSeqCount[s];
        int[] list = new int[start[nSeq]];
        for (int s = 0; s < nSeq; s++) if (perSeqCount[s] > 0) System.arraycopy(perSeq[s], 0, list, start[s], perSeqCount[s]);
        return new InterventionTable(start, list, Arrays.copyOf(ops, nOps * OP_INTS), Arrays.copyOf(masks, maskWords),
                Arrays.copyOf(vecs, vecFloats));
    }

    /** A vector compared by value. */
    private record VecKey(float[] v) {
        @Override public boolean equals(Object o) { return o instanceof VecKey k && Arrays.equals(v, k.v); }
        @Override public int hashCode() { return Arrays.hashCode(v); }
    }

    /** Ints the table occupies on the device, each of its five arrays rounded up to 16 bytes. */
    public long deviceInts() {
        return pad(seqOpStart.length) + pad(opList.length) + pad(ops.length) + pad(masks.length) + pad(vecs.length);
    }

    static int pad(int ints) { return (ints + 3) & ~3; }

    private static void add(int[][] perSeq, int[] count, int s, int op) {
        int[] a = perSeq[s];
        if (a == null) a = perSeq[s] = new int[2];
        else if (count[s] == a.length) a = perSeq[s] = Arrays.copyOf(a, 2 * a.length);
        a[count[s]++] = op;
    }
}
