package dev.nshap.shapley;

/**
 * Regression-adjusted Monte Carlo on permutation walks.
 *
 * <p>Surrogate. f(S) = v(N) - sum over j not in S of a_j is additive, so its Shapley values are a_j exactly. The
 * residual game r = v - f has r(N) = 0, and phi_i(v) = a_i + phi_i(r) for any a: the estimate is unbiased whatever
 * the surrogate, and its variance falls as f fits v.
 *
 * <p>Sampler. phi_i(r) = (r(N) - r(empty))/n + sum over sizes s = 1..n-1 of
 * E[r(A) [i in A] / s - r(A) [i not in A] / (n - s)], A a uniform coalition of size s. One removal walk visits one
 * uniform coalition of every size, and every one of them enters every player's estimate, so a walk of n + 1
 * evaluations gives each player one unbiased sample: with t_i the step at which i leaves,
 * z_i = sum_{t < t_i} r_t / (n - t) - sum_{t >= t_i} r_t / t (t = players removed, 1..n-1), two prefix sums.
 * That is why the surrogate is paired with this sampler and not with plain permutation sampling: along one walk the
 * marginal of f is the constant a_i, so subtracting it leaves the permutation estimate's variance unchanged,
 * whereas here every evaluation is weighed for every player and the surrogate removes what f explains from all of
 * them. Cost: O(n) per walk of n + 1 evaluations (O(1) per evaluation); memory: the walk's n + 1 values.
 *
 * <p>The surrogate is fixed (a file: AtP or any first-order estimate) or fitted: the additive model whose values
 * are the current estimates, frozen for a round so each round's samples stay unbiased. Before the first round ends
 * there is nothing to fit, and a walk contributes its plain permutation marginals (also unbiased).
 */
final class RegressionAdjusted {
    private RegressionAdjusted() {}

    /**
     * Per-player samples of one walk: x[p] = a[p] + (r_0 - r_n)/n + z_p. {@code trace[t]} is v after removing the
     * first t players of {@code order}.
     */
    static double[] samples(int[] order, double[] trace, double[] a) {
        int n = order.length;
        double[] r = new double[n + 1];
        double cum = 0;
        for (int t = 0; t <= n; t++) {
            r[t] = trace[t] - trace[0] + cum;
            if (t < n) cum += a[order[t]];
        }
        double c = (r[0] - r[n]) / n;
        // suffix[q] = sum_{t=q+1}^{n-1} r_t / t : the player at position q is absent from coalitions t >= q+1
        double[] suffix = new double[n];
        double acc = 0;
        for (int q = n - 1; q >= 0; q--) {
            suffix[q] = acc;
            if (q >= 1) acc += r[q] / q;
        }
        double[] x = new double[n];
        double prefix = 0;                        // sum_{t=1}^{q} r_t / (n - t)
        for (int q = 0; q < n; q++) {
            if (q >= 1) prefix += r[q] / (n - q);
            int p = order[q];
            x[p] = a[p] + c + prefix - suffix[q];
        }
        return x;
    }

    /** The walk's plain permutation marginals (the pilot round of the fitted surrogate). */
    static double[] marginals(int[] order, double[] trace) {
        double[] x = new double[order.length];
        for (int q = 0; q < order.length; q++) x[order[q]] = trace[q] - trace[q + 1];
        return x;
    }
}
