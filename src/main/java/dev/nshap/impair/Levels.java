package dev.nshap.impair;

import dev.nshap.NshapException;

import java.util.ArrayList;
import java.util.List;

/** Impairment levels: {@code start:stop:step} (stop included) or a comma list. */
public final class Levels {
    private Levels() {}

    public static double[] parse(String s) {
        if (s == null || s.isBlank()) throw new NshapException("--levels: empty");
        String t = s.trim();
        List<Double> out = new ArrayList<>();
        if (t.contains(":")) {
            String[] p = t.split(":", -1);
            if (p.length != 3) throw new NshapException("--levels '" + s + "': expected start:stop:step or a comma list");
            double a = num(p[0], s), b = num(p[1], s), st = num(p[2], s);
            if (!(st > 0)) throw new NshapException("--levels '" + s + "': the step must be positive");
            if (b < a) throw new NshapException("--levels '" + s + "': stop is below start");
            // count steps with a tolerance so 0:2:0.1 ends at 2 and not at 1.9 or 2.0000000001
            long n = (long) Math.floor((b - a) / st + 1e-9);
            if (n > 100_000) throw new NshapException("--levels '" + s + "': more than 100000 levels");
            for (long i = 0; i <= n; i++) out.add(round(a + i * st));
        } else {
            for (String x : t.split(",")) out.add(num(x, s));
        }
        double[] v = out.stream().mapToDouble(Double::doubleValue).toArray();
        for (int i = 0; i < v.length; i++)
            for (int j = 0; j < i; j++)
                if (v[i] == v[j]) throw new NshapException("--levels '" + s + "': level " + v[i] + " is listed twice");
        return v;
    }

    private static double num(String x, String whole) {
        try {
            double d = Double.parseDouble(x.trim());
            if (!Double.isFinite(d)) throw new NumberFormatException();
            return d;
        } catch (NumberFormatException e) {
            throw new NshapException("--levels '" + whole + "': '" + x.trim() + "' is not a number");
        }
    }

    /** Drops the float dust of start + i*step (0.30000000000000004 -> 0.3). */
    static double round(double x) {
        return Math.round(x * 1e9) / 1e9;
    }
}
