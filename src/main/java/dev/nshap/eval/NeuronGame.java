package dev.nshap.eval;

import dev.nshap.NshapException;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.NeuronId;
import dev.nshap.shapley.Coalition;
import dev.nshap.shapley.Game;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Neuron Shapley on GPT-2: the players are MLP neurons (or groups of them); a coalition keeps its members and
 * ablates every other neuron in play (zero, or the clean mean over the dataset); neurons not in play are never
 * touched. The value is the metric's mean over the prompts, signed so that higher means the model does its job:
 * accuracy and logit-diff as they are, loss and KL negated.
 * <p>
 * All coalitions of one {@link #values} call go to the evaluator in one call, so coalitions x prompts share
 * batches; layers before the first layer in play are computed once per prompt and reused. With a subsample size
 * M, each coalition is scored on M prompts drawn from its permutation's seed alone, so coalitions of one
 * permutation share their prompts and the value is a pure function of (members, seed).
 */
public final class NeuronGame implements Game {

    public enum Ablation {
        ZERO, MEAN;

        public static Ablation parse(String s) {
            return switch (s.trim().toLowerCase(Locale.ROOT)) {
                case "zero" -> ZERO;
                case "mean" -> MEAN;
                default -> throw new NshapException("unknown ablation '" + s + "' (zero|mean)");
            };
        }

        @Override public String toString() { return name().toLowerCase(Locale.ROOT); }
    }

    private final Evaluator ev;
    private final NeuronPlayers players;
    private final Metric metric;
    private final Ablation ablation;
    private final int subsample;
    private final Map<String, Object> identity;
    private final int nLayer, firstLayer;
    private final int[] layers;
    /** Per player: per layer slot, its neuron indices there. */
    private final int[][][] unitsOf;
    /** Mean ablation: the clean mean activation per layer slot. */
    private final float[][] means;
    private final double sign;
    private long coalitionsEvaluated;

    /**
     * @param subsample prompts per permutation (0: every prompt for every coalition)
     * @param identity  what else defines the game (model, dataset): goes into {@link #describe()}
     */
    public NeuronGame(Evaluator ev, NeuronPlayers players, Metric metric, Ablation ablation, int subsample,
                      Map<String, Object> identity) {
        if (subsample < 0) throw new NshapException("--subsample must be >= 0");
        this.ev = ev;
        this.players = players;
        this.metric = metric;
        this.ablation = ablation;
        this.subsample = subsample >= ev.data().size() ? 0 : subsample;
        this.identity = identity == null ? Map.of() : identity;
        this.nLayer = ev.backend().config().nLayer();
        this.layers = players.layers();
        this.firstLayer = layers[0];
        int[] slot = new int[nLayer];
        Arrays.fill(slot, -1);
        for (int i = 0; i < layers.length; i++) slot[layers[i]] = i;
        unitsOf = new int[players.size()][layers.length][];
        for (int p = 0; p < players.size(); p++) {
            int[] count = new int[layers.length];
            for (NeuronId n : players.get(p).neurons()) count[slot[n.layer()]]++;
            for (int s = 0; s < layers.length; s++) unitsOf[p][s] = new int[count[s]];
            Arrays.fill(count, 0);
            for (NeuronId n : players.get(p).neurons()) {
                int s = slot[n.layer()];
                unitsOf[p][s][count[s]++] = n.index();
            }
        }
        if (ablation == Ablation.MEAN) {
            List<HookPoint> hooks = new ArrayList<>();
            for (int l : layers) hooks.add(HookPoint.mlpPost(l));
            means = ev.meanActivations(hooks).toArray(new float[0][]);
        } else means = new float[layers.length][];
        sign = metric.higherIsBetter ? 1 : -1;
    }

    public NeuronPlayers neuronPlayers() { return players; }
    public Evaluator evaluator() { return ev; }
    public Metric metric() { return metric; }
    public long coalitionsEvaluated() { return coalitionsEvaluated; }
    public Ablation ablation() { return ablation; }
    /** What an ablated neuron of {@code layer} is set to: the clean mean there (mean ablation), or null for zero. */
    public float[] ablationMean(int layer) {
        for (int s = 0; s < layers.length; s++) if (layers[s] == layer) return means[s];
        throw new IllegalArgumentException("layer " + layer + " is not in play");
    }

    @Override public int players() { return players.size(); }

    @Override public String playerName(int i) { return players.get(i).name(); }

    @Override public List<String> extraColumns() {
        return players.hasGroups() ? List.of("layer", "index", "neurons") : List.of("layer", "index");
    }

    @Override public List<String> extraValues(int i) {
        NeuronPlayers.Player p = players.get(i);
        String l = Integer.toString(p.layer()), x = Integer.toString(p.index());
        return players.hasGroups() ? List.of(l, x, Integer.toString(p.neurons().length)) : List.of(l, x);
    }

    @Override public Map<String, Object> describe() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("game", "gpt2-neurons");
        m.putAll(identity);
        m.put("players", players.spec());
        m.put("player_count", players.size());
        m.put("neurons_in_play", players.neuronCount());
        m.put("layers_in_play", Arrays.stream(layers).boxed().toList());
        m.put("metric", metric.cliName);
        m.put("value", metric.higherIsBetter ? "mean " + metric.cliName + " over the prompts"
                : "NEGATED mean " + metric.cliName + " over the prompts (higher = better)");
        m.put("ablation", ablation.toString());
        m.put("subsample", subsample);
        m.put("prompts", ev.data().size());
        return m;
    }

    private Double vAll, vNone;

    /** v(all) and v(none) on every prompt, and what the run cost. */
    @Override public Map<String, Object> provenance() {
        if (vAll == null) vAll = valueOfAll();
        if (vNone == null) vNone = valueOfNone();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("v_all", vAll);
        m.put("v_none", vNone);
        m.put("value_sign", metric.higherIsBetter ? "value = mean " + metric.cliName
                : "value = -mean " + metric.cliName + " (negated so that higher = better)");
        m.put("backend", ev.backend().name());
        m.put("coalitions_evaluated", coalitionsEvaluated);
        m.put("forward_passes", ev.forwardPasses());
        m.put("sequences_run", ev.sequencesRun());
        m.put("prefix_reused_layers", firstLayer);
        return m;
    }

    /** The ablations a coalition implies: one intervention per layer in play, over every ablated neuron there. */
    public Condition condition(BitSet members) {
        int[] count = new int[layers.length];
        for (int p = 0; p < players.size(); p++)
            if (!members.get(p)) for (int s = 0; s < layers.length; s++) count[s] += unitsOf[p][s].length;
        int[][] ablated = new int[layers.length][];
        for (int s = 0; s < layers.length; s++) ablated[s] = new int[count[s]];
        Arrays.fill(count, 0);
        for (int p = 0; p < players.size(); p++) {
            if (members.get(p)) continue;
            for (int s = 0; s < layers.length; s++) {
                System.arraycopy(unitsOf[p][s], 0, ablated[s], count[s], unitsOf[p][s].length);
                count[s] += unitsOf[p][s].length;
            }
        }
        return new Condition() {
            @Override public List<Intervention> interventions(int[] seqs, int[] prompts) {
                List<Intervention> out = new ArrayList<>(layers.length);
                for (int s = 0; s < layers.length; s++) {
                    if (ablated[s].length == 0) continue;
                    HookPoint hp = HookPoint.mlpPost(layers[s]);
                    out.add(ablation == Ablation.ZERO ? Intervention.zero(hp, ablated[s], seqs)
                            : Intervention.replace(hp, ablated[s], seqs, means[s]));
                }
                return out;
            }
            // Constant over coalitions so that every call reuses the same cached prefix.
            @Override public int firstLayer() { return firstLayer; }
        };
    }

    /** The prompts a permutation with this seed is scored on (all of them without subsampling), ascending. */
    public int[] promptsFor(long seed) {
        int n = ev.data().size();
        if (subsample == 0) return ev.allPrompts();
        int[] idx = new int[n];
        for (int i = 0; i < n; i++) idx[i] = i;
        SplittableRandom r = new SplittableRandom(seed ^ 0x5DEECE66DL);
        for (int i = 0; i < subsample; i++) {
            int j = i + r.nextInt(n - i);
            int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
        }
        int[] out = Arrays.copyOf(idx, subsample);
        Arrays.sort(out);
        return out;
    }

    @Override public double[] values(List<Coalition> coalitions) {
        if (coalitions.isEmpty()) return new double[0];
        List<Condition> conds = new ArrayList<>(coalitions.size());
        int[][] prompts = new int[coalitions.size()][];
        Map<Long, int[]> bySeed = new HashMap<>();
        for (int i = 0; i < coalitions.size(); i++) {
            Coalition c = coalitions.get(i);
            conds.add(condition(c.members()));
            prompts[i] = subsample == 0 ? ev.allPrompts() : bySeed.computeIfAbsent(c.seed(), this::promptsFor);
        }
        double[][] per = ev.evaluate(conds, prompts, metric);
        double[] v = new double[per.length];
        for (int i = 0; i < per.length; i++) v[i] = sign * mean(per[i]);
        coalitionsEvaluated += coalitions.size();
        return v;
    }

    /** Value of keeping every neuron in play, on every prompt. */
    public double valueOfAll() {
        BitSet all = new BitSet();
        all.set(0, players.size());
        return sign * mean(ev.evaluate(List.of(condition(all)), ev.allPrompts(), metric)[0]);
    }

    /** Value of ablating every neuron in play, on every prompt. */
    public double valueOfNone() {
        return sign * mean(ev.evaluate(List.of(condition(new BitSet())), ev.allPrompts(), metric)[0]);
    }

    private static double mean(double[] xs) {
        double s = 0;
        for (double x : xs) s += x;
        return s / xs.length;
    }
}
