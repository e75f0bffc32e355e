package dev.nshap.backend.cuda;

import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The host side of the coalition tables: runs without a GPU. */
class InterventionTableTest {
    final HookPoint hp = HookPoint.mlpPost(1);

    @Test void perSequenceOpListsInRequestOrder() {
        List<Intervention> ivs = List.of(
                Intervention.zero(hp, new int[]{0, 33, 63}, new int[]{4, 6}),
                Intervention.scale(hp, null, null, 2f),
                Intervention.noise(hp, new int[]{1}, new int[]{9}, 0.5f, 0x1234_5678_9ABC_DEF0L), // outside the launch
                Intervention.replace(hp, new int[]{2}, new int[]{6}, new float[64]));
        InterventionTable t = InterventionTable.build(ivs, 64, 4, 3); // request sequences 4, 5, 6
        assertEquals(3, t.opCount()); // the noise names no sequence of this launch
        assertArrayEquals(new int[]{0, 2, 3, 6}, t.seqOpStart);
        assertArrayEquals(new int[]{0, 1, 1, 0, 1, 2}, t.opList);
        assertEquals(CudaKernels.OP_ZERO, t.ops[0]);
        assertEquals(0, t.ops[1]);                        // mask at word 0
        assertArrayEquals(new int[]{1, 1 << 1 | 1 << 31}, new int[]{t.masks[0], t.masks[1]});
        assertEquals(CudaKernels.OP_SCALE, t.ops[8]);
        assertEquals(-1, t.ops[9]);                       // every unit
        assertEquals(2f, Float.intBitsToFloat(t.ops[11]));
        assertEquals(CudaKernels.OP_REPLACE, t.ops[16]);
        assertEquals(2, t.ops[17]);                       // second mask
        assertEquals(1 << 2, t.masks[2]);
        assertEquals(64, t.vecs.length);
    }

    @Test void seedSplitsIntoTwoWords() {
        long seed = 0x8000_0001_FFFF_FFFEL;
        InterventionTable t = InterventionTable.build(List.of(Intervention.negativeNoise(hp, null, null, 1f, seed)), 64, 0, 2);
        assertEquals(seed, (t.ops[4] & 0xFFFFFFFFL) | ((long) t.ops[5] << 32));
        assertEquals(CudaKernels.OP_NEGATIVE_NOISE, t.ops[0]);
    }

    @Test void nothingAppliesGivesNoTable() {
        assertNull(InterventionTable.build(List.of(Intervention.zero(hp, null, new int[]{0})), 64, 1, 5));
    }

    @Test void equalReplacementVectorsAreStoredOnce() {
        float[] mean = new float[64], other = new float[64];
        for (int u = 0; u < 64; u++) { mean[u] = u * 0.5f; other[u] = -u; }
        List<Intervention> ivs = new java.util.ArrayList<>();
        for (int k = 0; k < 16; k++) // 16 coalitions: the same means (half by reference, half by value), one other vector
            ivs.add(Intervention.replace(hp, new int[]{k}, new int[]{k}, k % 2 == 0 ? mean : mean.clone()));
        ivs.add(Intervention.replace(hp, new int[]{3}, new int[]{2}, other));
        InterventionTable t = InterventionTable.build(ivs, 64, 0, 16);
        assertEquals(17, t.opCount());
        assertEquals(2 * 64, t.vecs.length, "one copy of the shared means, one of the other vector");
        for (int k = 0; k < 16; k++) assertEquals(0, t.ops[k * InterventionTable.OP_INTS + 2], "coalition " + k + " reads the shared copy");
        assertEquals(64, t.ops[16 * InterventionTable.OP_INTS + 2]);
        for (int u = 0; u < 64; u++) { assertEquals(mean[u], t.vecs[u]); assertEquals(other[u], t.vecs[64 + u]); }
    }
}
