package dev.nshap.shapley;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Comparator;
import java.util.stream.IntStream;

/** Error of estimated Shapley values against exact ones. */
public final class Metrics {
    private Metrics() {}

    public record Errors(double mse, double maxAbs, double spearman, double precisionAtK, int k) {}

    public static Errors errors(double[] est, double[] exact, int k) {
        return new Errors(mse(est, exact), maxAbs(est, exact), spearman(est, exact), precisionAtK(est, exact, k),
                Math.min(k, est.length));
    }

    public static double mse(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
        return s / a.length;
    }

    public static double maxAbs(double[] a, double[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }

    /** Pearson correlation of average ranks (ties share their mean rank); NaN if either side is constant. */
    public static double spearman(double[] a, double[] b) {
        double[] ra = ranks(a), rb = ranks(b);
        int n = a.length;
        double ma = 0, mb = 0;
        for (int i = 0; i < n; i++) { ma += ra[i]; mb += rb[i]; }
        ma /= n;
        mb /= n;
        double sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < n; i++) {
            sab += (ra[i] - ma) * (rb[i] - mb);
            saa += (ra[i] - ma) * (ra[i] - ma);
            sbb += (rb[i] - mb) * (rb[i] - mb);
        }
        return saa == 0 || sbb == 0 ? Double.NaN : sab / Math.sqrt(saa * sbb);
    }

    static double[] ranks(double[] x) {
        Integer[] idx = IntStream.range(0, x.length).boxed().toArray(Integer[]::new);
        Arrays.sort(idx, Comparator.comparingDouble(i -> x[i]));
        double[] r = new double[x.length];
        for (int i = 0; i < x.length; ) {
            int j = i;
            while (j + 1 < x.length && x[idx[j + 1]] == x[idx[i]]) j++;
            double avg = (i + j) / 2.0 + 1;
            for (int t = i; t <= j; t++) r[idx[t]] = avg;
            i = j + 1;
        }
        return r;
    }

    /**
     * Fraction of the estimated top-k whose exact value reaches the k-th largest exact value; counting against
     * that threshold rather than a tie-broken list keeps tied exact values (symmetric players) from being
     * counted as misses.
     */
    public static double precisionAtK(double[] est, double[] exact, int k) {
        int n = est.length;
        k = Math.min(k, n);
        int[] top = topK(est, k);
        double kth = exact[topK(exact, k)[k - 1]];
        double tolerance = 1e-12 * Math.max(1, Math.abs(kth));
        int hit = 0;
        for (int i : top) if (exact[i] >= kth - tolerance) hit++;
        return (double) hit / k;
    }

    /** Indices of the k largest values, largest first, ties by lower index; NaN sorts last. */
    public static int[] topK(double[] x, int k) {
        int n = x.length;
        k = Math.min(k, n);
        if (k > 64) {
            // the k-th largest by selection, then only the k winners are ordered (TMAB calls this every round)
            double[] c = new double[n];
            for (int i = 0; i < n; i++) c[i] = Double.isNaN(x[i]) ? Double.NEGATIVE_INFINITY : x[i];
            double kth = kthLargest(c.clone(), k);
            List<Integer> win = new ArrayList<>(k + 16);
            for (int i = 0; i < n; i++) if (c[i] >= kth) win.add(i);
            return win.stream().sorted((i, j) -> before(x, i, j) ? -1 : before(x, j, i) ? 1 : 0)
                    .limit(k).mapToInt(Integer::intValue).toArray();
        }
        // small k (the usual top-k): insertion into a sorted prefix, O(n k) without boxing
        int[] top = new int[k];
        int size = 0;
        for (int i = 0; i < n; i++) {
            if (size == k && !before(x, i, top[k - 1])) continue;
            int j = size < k ? size++ : k - 1;
            while (j > 0 && before(x, i, top[j - 1])) { top[j] = top[j - 1]; j--; }
            top[j] = i;
        }
        return top;
    }

    /**
     * The k-th largest of a (1-based; NaN must already be mapped to -inf), reordering a: quickselect with a
     * three-way partition, expected O(n) even when most values are equal (a game's many zero-valued players).
     * A sort costs O(n log n), and at n = 36,864 TMAB's focus makes rounds cheap enough for that to dominate.
     */
    static double kthLargest(double[] a, int k) {
        int lo = 0, hi = a.length - 1, want = a.length - k;   // index of the answer in ascending order
        while (lo < hi) {
            double p = median3(a[lo], a[(lo + hi) >>> 1], a[hi]);
            int lt = lo, i = lo, gt = hi;
            while (i <= gt) {
                if (a[i] < p) { double t = a[lt]; a[lt++] = a[i]; a[i++] = t; }
                else if (a[i] > p) { double t = a[gt]; a[gt--] = a[i]; a[i] = t; }
                else i++;
            }
            if (want < lt) hi = lt - 1;
            else if (want > gt) lo = gt + 1;
            else return p;
        }
        return a[want];
    }

    private static double median3(double a, double b, double c) {
        return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
    }

    /** Whether i ranks before j: larger value first, NaN last, ties by lower index. */
    private static boolean before(double[] x, int i, int j) {
        double a = Double.isNaN(x[i]) ? Double.NEGATIVE_INFINITY : x[i];
        double b = Double.isNaN(x[j]) ? Double.NEGATIVE_INFINITY : x[j];
        return a > b || (a == b && i < j);
    }
}
