package dev.nshap.impair;

import dev.nshap.NshapException;
import dev.nshap.backend.HookPoint;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.*;

class RandomClustersTest {
    Target real() {
        Map<Integer, int[]> m = new TreeMap<>();
        m.put(0, new int[]{1, 2, 3});
        m.put(2, new int[]{10});
        m.put(5, new int[]{0, 4, 8, 12, 16, 20, 24});
        return new Target("real", HookPoint.Kind.MLP_POST, m);
    }

    @Test void everyRandomClusterHasExactlyThePerLayerCountsAndAvoidsTheRealNeurons() {
        int width = 32;
        Target r = real();
        List<Target> rs = RandomClusters.sample(r, width, 50, 123);
        assertEquals(50, rs.size());
        Set<String> distinct = new HashSet<>();
        for (Target t : rs) {
            assertEquals(r.units().keySet(), t.units().keySet());
            StringBuilder key = new StringBuilder();
            for (var e : t.units().entrySet()) {
                int[] u = e.getValue();
                assertEquals(r.units().get(e.getKey()).length, u.length, "layer " + e.getKey());
                Set<Integer> seen = new HashSet<>();
                for (int x : u) {
                    assertTrue(x >= 0 && x < width);
                    assertTrue(seen.add(x), "duplicate unit");
                    for (int y : r.units().get(e.getKey())) assertNotEquals(y, x, "random cluster reuses a real neuron");
                }
                key.append(java.util.Arrays.toString(u));
            }
            distinct.add(key.toString());
        }
        assertTrue(distinct.size() > 40, "random clusters should differ from each other");
        // same seed -> same clusters
        List<Target> again = RandomClusters.sample(r, width, 50, 123);
        for (int i = 0; i < 50; i++)
            for (int l : r.units().keySet()) assertArrayEquals(rs.get(i).units().get(l), again.get(i).units().get(l));
    }

    @Test void drawsAreRoughlyUniformOverTheFreeUnits() {
        Map<Integer, int[]> m = new TreeMap<>();
        m.put(0, new int[]{0, 1});
        List<Target> rs = RandomClusters.sample(new Target("r", HookPoint.Kind.MLP_POST, m), 10, 4000, 5);
        int[] hits = new int[10];
        for (Target t : rs) for (int u : t.units().get(0)) hits[u]++;
        assertEquals(0, hits[0]);
        assertEquals(0, hits[1]);
        // each of the 8 free units is drawn with probability 2/8: expected 1000 of 4000, sd ~27
        for (int u = 2; u < 10; u++) assertEquals(1000, hits[u], 150, "unit " + u);
    }

    @Test void refusesLayersTooFullForADisjointDraw() {
        Map<Integer, int[]> m = new TreeMap<>();
        m.put(0, new int[]{0, 1, 2});
        assertThrows(NshapException.class, () -> RandomClusters.sample(new Target("r", HookPoint.Kind.MLP_POST, m), 5, 1, 1));
        Map<Integer, int[]> all = new TreeMap<>();
        all.put(0, null);
        assertThrows(NshapException.class, () -> RandomClusters.sample(new Target("r", HookPoint.Kind.MLP_POST, all), 5, 1, 1));
    }
}
