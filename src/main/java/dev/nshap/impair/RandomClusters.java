package dev.nshap.impair;

import dev.nshap.NshapException;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Random clusters matched to a real one: the same number of units in each layer, drawn uniformly without
 * replacement from the units of that layer that are NOT in the real cluster (so the baseline asks "would any
 * other neurons of these layers do as much harm?").
 */
public final class RandomClusters {
    private RandomClusters() {}

    public static List<Target> sample(Target real, int width, int count, long seed) {
        List<Target> out = new ArrayList<>();
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int r = 0; r < count; r++) {
            Map<Integer, int[]> m = new TreeMap<>();
            for (Map.Entry<Integer, int[]> e : real.units().entrySet()) {
                int[] mine = e.getValue();
                if (mine == null) throw new NshapException("a random baseline needs a cluster, not --all-units");
                boolean[] taken = new boolean[width];
                for (int u : mine) taken[u] = true;
                int[] pool = new int[width - mine.length];
                int n = 0;
                for (int u = 0; u < width; u++) if (!taken[u]) pool[n++] = u;
                if (n < mine.length)
                    throw new NshapException("layer " + e.getKey() + ": the cluster holds " + mine.length + " of " + width
                            + " units, too many to draw a disjoint random cluster of the same size");
                for (int i = 0; i < mine.length; i++) { // partial Fisher-Yates
                    int j = i + rnd.nextInt(n - i);
                    int t = pool[i]; pool[i] = pool[j]; pool[j] = t;
                }
                int[] pick = Arrays.copyOf(pool, mine.length);
                Arrays.sort(pick);
                m.put(e.getKey(), pick);
            }
            out.add(new Target(real.name() + "~random" + r, real.kind(), m));
        }
        return out;
    }
}
