package dev.nshap.impair;

import dev.nshap.NshapException;
import dev.nshap.backend.HookPoint;
import dev.nshap.cluster.Cluster;
import dev.nshap.model.GPT2Config;

import java.util.Map;
import java.util.TreeMap;

/**
 * The units an impairment touches: per layer, unit indices at one hook kind (null = every unit of that layer).
 */
public record Target(String name, HookPoint.Kind kind, Map<Integer, int[]> units) {

    public static Target ofCluster(String name, Cluster c, Site site) {
        if (!site.neuronSite())
            throw new NshapException("--site " + site + ": a cluster's neurons live at mlp.hook_post (or mlp.hook_pre, same indices); use --all-units for "
                    + site.kind().suffix);
        Map<Integer, int[]> m = new TreeMap<>();
        c.byLayer().forEach((l, xs) -> { if (site.covers(l)) m.put(l, xs); });
        if (m.isEmpty()) throw new NshapException("cluster " + name + " has no neurons in layer " + site.layer());
        return new Target(name, site.kind(), m);
    }

    public static Target allUnits(Site site, GPT2Config cfg) {
        Map<Integer, int[]> m = new TreeMap<>();
        for (int l = 0; l < cfg.nLayer(); l++) if (site.covers(l)) m.put(l, null);
        return new Target("all-units", site.kind(), m);
    }

    public int size(GPT2Config cfg) {
        int n = 0;
        for (int[] u : units.values()) n += u == null ? kind.width(cfg) : u.length;
        return n;
    }

    /** Per layer, how many units (for matching random clusters). */
    public Map<Integer, Integer> counts(GPT2Config cfg) {
        Map<Integer, Integer> m = new TreeMap<>();
        units.forEach((l, u) -> m.put(l, u == null ? kind.width(cfg) : u.length));
        return m;
    }

    public int firstLayer() {
        int f = Integer.MAX_VALUE;
        for (int l : units.keySet()) f = Math.min(f, l);
        return f;
    }
}
