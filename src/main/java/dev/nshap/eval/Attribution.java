package dev.nshap.eval;

import dev.nshap.NshapException;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.NeuronId;
import dev.nshap.backend.cpu.CpuGradients;
import dev.nshap.backend.cpu.GradientResult;
import dev.nshap.backend.cpu.Objective;
import dev.nshap.model.GPT2Weights;
import dev.nshap.shapley.Coalition;
import dev.nshap.util.Progress;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Cheap per-player attributions of a {@link NeuronGame}, on the game's own players, metric, ablation and value
 * sign, each an estimate of the player's contribution v(all) - v(all \ j) (higher = more important, as Shapley
 * values are):
 * <ul>
 * <li>ATP (attribution patching): one clean forward + backward per prompt batch,
 *     a_j = sum over positions and units of j of (a_clean - a_ablated) * dv/da. The first-order estimate of
 *     v(all) - v(all \ j), i.e. the negated (a_ablated - a_clean) . grad.</li>
 * <li>IG (integrated gradients over neuron gates, zero ablation): every neuron in play is scaled by alpha and
 *     a_j = mean over N midpoints alpha_k of sum over units of j of pre_u(alpha_k) * dv/dpost_u(alpha_k), the
 *     Riemann sum of the integral of dv/dalpha_j along the diagonal; completeness: sum_j a_j -> v(all) - v(none).
 *     In one layer this is textbook IG from the ablated to the clean activations.</li>
 * <li>LOO: exact leave-one-out v(all) - v(all \ j), coalitions batched through {@link NeuronGame#values}.</li>
 * </ul>
 * None is a Shapley value: results say so, and carry no interval.
 */
public final class Attribution {

    public enum Method {
        ATP, IG, LOO;

        public static Method parse(String s) {
            return switch (s.trim().toLowerCase(Locale.ROOT)) {
                case "atp" -> ATP;
                case "ig" -> IG;
                case "loo" -> LOO;
                default -> throw new NshapException("unknown --method '" + s + "' (atp|ig|loo)");
            };
        }

        public String id() { return name().toLowerCase(Locale.ROOT); }
    }

    /** Per player its attribution; {@code evaluations}: forward(+backward) passes or coalitions, as the method counts. */
    public record Result(Method method, double[] values, long evaluations, double elapsedSeconds, Map<String, Object> notes) {}

    private Attribution() {}

    /** The gradient-based methods refuse what they cannot differentiate, in one line, before any work. */
    public static void checkDifferentiable(Method m, Metric metric, NeuronGame.Ablation ablation) {
        if (m == Method.LOO) return;
        if (metric == Metric.ACCURACY || metric == Metric.KL)
            throw new NshapException("--method " + m.id() + " needs a differentiable metric: loss or logit-diff (accuracy is"
                    + " a step function; kl has zero gradient at the clean model, its minimum); use --method loo for " + metric);
        if (m == Method.IG && ablation != NeuronGame.Ablation.ZERO)
            throw new NshapException("--method ig scales neurons towards zero: use --ablation zero (or --method atp|loo for mean ablation)");
    }

    public static Result run(NeuronGame game, GPT2Weights weights, Method m, int steps, PrintStream err) {
        checkDifferentiable(m, game.metric(), game.ablation());
        long t0 = System.nanoTime();
        Map<String, Object> notes = new LinkedHashMap<>();
        double[] v;
        long evals;
        switch (m) {
            case LOO -> {
                v = leaveOneOut(game, err);
                evals = game.players() + 1L;
            }
            case ATP -> {
                CpuGradients cg = new CpuGradients(weights);
                long a0 = System.nanoTime();
                v = gateGradients(game, cg, 1f, err);
                double atpSecs = (System.nanoTime() - a0) / 1e9;
                evals = batches(game);
                // the anchor of the cost: one clean forward of the same batches (v(all), which the result reports anyway)
                long f0 = System.nanoTime();
                game.valueOfAll();
                double fwdSecs = (System.nanoTime() - f0) / 1e9;
                notes.put("atp_seconds", atpSecs);
                notes.put("clean_forward_seconds", fwdSecs);
                notes.put("atp_over_forward", atpSecs / fwdSecs);
                notes.put("atp", "first-order estimate of v(all) - v(all \\ j): sum (a_clean - a_ablated) * dv/da at the clean model");
            }
            case IG -> {
                if (steps < 1) throw new NshapException("--steps must be at least 1");
                CpuGradients g = new CpuGradients(weights);
                v = new double[game.players()];
                Progress pr = err == null ? null : new Progress("ig steps", steps, err);
                for (int k = 0; k < steps; k++) {
                    double[] s = gateGradients(game, g, (float) ((k + 0.5) / steps), null);
                    for (int j = 0; j < v.length; j++) v[j] += s[j] / steps;
                    if (pr != null) pr.update(k + 1);
                }
                evals = (long) steps * batches(game);
                double sum = 0;
                for (double x : v) sum += x;
                double gap = game.valueOfAll() - game.valueOfNone();
                notes.put("ig_steps", steps);
                notes.put("ig_rule", "midpoint Riemann sum over alpha in (0,1), every neuron in play scaled by alpha");
                notes.put("completeness_sum", sum);
                notes.put("completeness_target", gap);
                notes.put("completeness_relative_error", Math.abs(sum - gap) / Math.max(1e-12, Math.abs(gap)));
            }
            default -> throw new IllegalStateException();
        }
        return new Result(m, v, evals, (System.nanoTime() - t0) / 1e9, notes);
    }

    /** LOO: v(all) - v(all \ j), coalitions in chunks so progress can be shown; values go through the game. */
    static double[] leaveOneOut(NeuronGame game, PrintStream err) {
        int n = game.players();
        double all = game.valueOfAll();
        double[] out = new double[n];
        int chunk = 64;
        Progress pr = err == null ? null : new Progress("leave-one-out", n, err);
        for (int from = 0; from < n; from += chunk) {
            int to = Math.min(n, from + chunk);
            List<Coalition> cs = new ArrayList<>(to - from);
            for (int j = from; j < to; j++) {
                BitSet b = new BitSet(n);
                b.set(0, n);
                b.clear(j);
                cs.add(new Coalition(b, j, 0L));
            }
            double[] v = game.values(cs);
            for (int j = from; j < to; j++) out[j] = all - v[j - from];
            if (pr != null) pr.update(to);
        }
        return out;
    }

    private static long batches(NeuronGame game) {
        TokenizedDataset d = game.evaluator().data();
        long b = 0;
        int tokens = 0, max = game.evaluator().maxTokens();
        for (int p = 0; p < d.size(); p++) {
            int len = d.sequences[p].length;
            if (p == 0 || tokens + len > max) { b++; tokens = 0; }
            tokens += len;
        }
        return b;
    }

    /**
     * With every neuron in play scaled by {@code alpha} (1: the clean model), per player: sum over prompts,
     * positions and its units of (pre - ablated) * dv/dpost, v being the game's value (mean over prompts of the
     * metric, signed). pre = post / alpha is the activation before the gate. Prompts go in batches of at most
     * the evaluator's maxTokens; per sequence, the objective's mean over the batch's scored rows is rescaled to
     * that prompt's own mean over its rows, as the game scores it.
     */
    static double[] gateGradients(NeuronGame game, CpuGradients grads, float alpha, PrintStream err) {
        Evaluator ev = game.evaluator();
        TokenizedDataset d = ev.data();
        Metric metric = game.metric();
        NeuronPlayers ps = game.neuronPlayers();
        int[] layers = ps.layers();
        int H = ev.backend().config().nInner();
        float[][] abl = new float[layers.length][];
        for (int s = 0; s < layers.length; s++) abl[s] = game.ablationMean(layers[s]);
        int[] slotOf = new int[ev.backend().config().nLayer()];
        java.util.Arrays.fill(slotOf, -1);
        for (int s = 0; s < layers.length; s++) slotOf[layers[s]] = s;
        // units in play per layer slot, for the gate
        List<int[]> inPlay = new ArrayList<>();
        {
            BitSet[] u = new BitSet[layers.length];
            for (int s = 0; s < layers.length; s++) u[s] = new BitSet(H);
            for (NeuronPlayers.Player p : ps.players()) for (NeuronId n : p.neurons()) u[slotOf[n.layer()]].set(n.index());
            for (BitSet b : u) inPlay.add(b.stream().toArray());
        }
        Set<HookPoint> hooks = new LinkedHashSet<>();
        for (int l : layers) hooks.add(HookPoint.mlpPost(l));
        double sign = metric.higherIsBetter ? 1 : -1;
        int P = d.size(), max = ev.maxTokens();
        // per layer slot: sum over prompts of (1/P) (pre - abl) * dv/dpost, summed over positions, per unit
        double[][] unitSum = new double[layers.length][H];
        Progress pr = err == null ? null : new Progress("atp prompts", P, err);
        int from = 0;
        while (from < P) {
            int to = from, tokens = 0;
            while (to < P && (to == from || tokens + d.sequences[to].length <= max)) tokens += d.sequences[to++].length;
            ForwardRequest req = new ForwardRequest();
            req.wantLogits = false;
            List<int[]> foils = new ArrayList<>();
            int[] rows = new int[to - from];
            int total = 0;
            for (int p = from; p < to; p++) {
                if (metric == Metric.LOGIT_DIFF) {
                    if (d.foils[p] < 0) throw new NshapException(d.dataset.file() + ": prompt '" + d.dataset.prompts().get(p).id()
                            + "' has no foil, which the logit-diff metric needs");
                    req.add(d.sequences[p], new int[]{d.scorePositions[p][0]}, new int[]{d.answers[p][0]});
                    foils.add(new int[]{d.foils[p]});
                    rows[p - from] = 1;
                } else {
                    req.add(d.sequences[p], d.scorePositions[p], d.answers[p]);
                    rows[p - from] = d.scorePositions[p].length;
                }
                total += rows[p - from];
            }
            if (alpha != 1f) {
                int[] seqs = new int[to - from];
                for (int i = 0; i < seqs.length; i++) seqs[i] = i;
                for (int s = 0; s < layers.length; s++)
                    req.interventions.add(Intervention.scale(HookPoint.mlpPost(layers[s]), inPlay.get(s), seqs, alpha));
            }
            Objective obj = metric == Metric.LOGIT_DIFF ? Objective.logitDiff(foils) : Objective.answerNll();
            GradientResult r = grads.backward(req, obj, hooks, null);
            for (int s = 0; s < layers.length; s++) {
                HookPoint hp = HookPoint.mlpPost(layers[s]);
                float[][] act = r.activations().get(hp), g = r.grads().get(hp);
                double[] acc = unitSum[s];
                float[] a0 = abl[s];
                for (int i = 0; i < to - from; i++) {
                    double scale = sign * total / ((double) rows[i] * P);
                    float[] x = act[i], gx = g[i];
                    int T = x.length / H;
                    for (int t = 0; t < T; t++)
                        for (int u = 0; u < H; u++) {
                            double pre = x[t * H + u] / (double) alpha;
                            acc[u] += scale * (pre - (a0 == null ? 0 : a0[u])) * gx[t * H + u];
                        }
                }
            }
            from = to;
            if (pr != null) pr.update(to);
        }
        double[] out = new double[ps.size()];
        for (int j = 0; j < ps.size(); j++)
            for (NeuronId n : ps.get(j).neurons()) out[j] += unitSum[slotOf[n.layer()]][n.index()];
        return out;
    }
}
