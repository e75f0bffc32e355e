package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.eval.Attribution;
import dev.nshap.eval.Metric;
import dev.nshap.eval.NeuronGame;
import dev.nshap.io.AtomicFiles;
import dev.nshap.io.Csv;
import dev.nshap.io.Json;
import dev.nshap.shapley.ShapleyOutput;
import dev.nshap.shapley.ShapleyRunner;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.time.Instant;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "attribute", mixinStandardHelpOptions = true,
        description = {"Cheap per-neuron attributions of the GPT-2 neuron game (same players, dataset, metric and ablation"
                + " as 'nshap shapley'): atp (attribution patching, one forward+backward per batch), ig (integrated"
                + " gradients, --steps), loo (exact leave-one-out).",
                "Writes PREFIX.json / PREFIX.csv in the shape of a shapley result, flagged as NOT Shapley values, without intervals."})
public final class AttributeCommand implements Callable<Integer> {

    @Option(names = "--method", required = true, description = "atp | ig | loo")
    String method;

    @Option(names = "--steps", defaultValue = "32", description = "ig: midpoint steps from the ablated to the clean model (default: ${DEFAULT-VALUE})")
    int steps;

    @Option(names = "--out", required = true, paramLabel = "PREFIX", description = "writes PREFIX.json and PREFIX.csv")
    Path out;

    @Mixin NeuronGameOptions neurons;

    @Mixin ModelOptions model;

    @Override public Integer call() {
        Attribution.Method m = Attribution.Method.parse(method);
        if (!neurons.selected()) throw new NshapException("attribute needs --dataset FILE (the GPT-2 neuron game)");
        if (neurons.subsample != 0) throw new NshapException("--subsample does not apply to attribute: every prompt is scored");
        // refuse before loading the model
        Attribution.checkDifferentiable(m, Metric.parse(neurons.metric), NeuronGame.Ablation.parse(neurons.ablation));
        if (m == Attribution.Method.IG && steps < 1) throw new NshapException("--steps must be at least 1");
        Path json = Path.of(out + ".json"), csv = Path.of(out + ".csv");
        NeuronGame game = neurons.build(model);
        Attribution.Result r = Attribution.run(game, neurons.loaded.weights(), m, steps, System.err);
        write(game, r, json, csv);
        Map<String, Object> notes = r.notes();
        System.out.printf(Locale.ROOT, "%s: %d players, %d %s in %.1f s%n", m.id(), game.players(), r.evaluations(),
                m == Attribution.Method.LOO ? "coalitions" : "forward+backward passes", r.elapsedSeconds());
        if (notes.containsKey("atp_over_forward"))
            System.out.printf(Locale.ROOT, "atp %.2f s vs one clean forward of the same batches %.2f s: %.2fx%n",
                    notes.get("atp_seconds"), notes.get("clean_forward_seconds"), notes.get("atp_over_forward"));
        if (notes.containsKey("completeness_sum"))
            System.out.printf(Locale.ROOT, "completeness: sum of attributions %.6g vs v(all) - v(none) %.6g (relative error %.3g)%n",
                    notes.get("completeness_sum"), notes.get("completeness_target"), notes.get("completeness_relative_error"));
        Integer[] order = order(r.values());
        System.out.println("rank  neuron                              value");
        for (int i = 0; i < Math.min(10, order.length); i++)
            System.out.printf(Locale.ROOT, "%4d  %-34s %12.6g%n", i + 1, game.playerName(order[i]), r.values()[order[i]]);
        System.out.println("wrote " + json + " and " + csv);
        return 0;
    }

    static Integer[] order(double[] v) {
        Integer[] o = new Integer[v.length];
        for (int i = 0; i < o.length; i++) o[i] = i;
        Arrays.sort(o, Comparator.comparingDouble((Integer i) -> -v[i]).thenComparingInt(i -> i));
        return o;
    }

    /**
     * The shapley result's shape (docs/results.md) so clusters export, plot and neuron read it unchanged; "estimator"
     * names the method, "attribution" flags it as not a Shapley value, stderr and intervals are null (not applicable).
     */
    static void write(NeuronGame game, Attribution.Result r, Path json, Path csv) {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("format", ShapleyOutput.FORMAT);
        Map<String, Object> prov = new LinkedHashMap<>();
        prov.put("tool", "nshap 0.1.0");
        prov.put("created", Instant.now().toString());
        prov.put("java", System.getProperty("java.version"));
        prov.put("os", System.getProperty("os.name") + " " + System.getProperty("os.arch"));
        prov.putAll(game.provenance());
        o.set("provenance", Json.MAPPER.valueToTree(prov));
        Map<String, Object> cfg = new LinkedHashMap<>();
        cfg.put("method", r.method().id());
        if (r.method() == Attribution.Method.IG) cfg.put("steps", r.notes().get("ig_steps"));
        o.set("config", Json.MAPPER.valueToTree(cfg));
        o.set("game", Json.MAPPER.valueToTree(game.describe()));
        o.put("game_fingerprint", ShapleyRunner.fingerprint(game));
        o.put("players", game.players());
        o.put("estimator", r.method().id());
        o.put("evaluations", r.evaluations());
        o.put("units", r.evaluations());
        o.put("stop_reason", "complete");
        o.put("elapsed_seconds", r.elapsedSeconds());
        ObjectNode a = o.putObject("attribution");
        a.put("method", r.method().id());
        a.put("shapley", false);
        a.put("value", "an estimate of v(all) - v(all \\ j) (the player's leave-one-out contribution), NOT a Shapley value");
        a.put("intervals", "not applicable: a deterministic " + r.method().id() + " computation has no sampling error;"
                + " stderr, ci_low and ci_high are null");
        r.notes().forEach((k, v) -> a.set(k, Json.MAPPER.valueToTree(v)));
        List<String> extra = game.extraColumns();
        Integer[] order = order(r.values());
        ArrayNode ps = o.putArray("results");
        StringBuilder sb = new StringBuilder("rank,player,name");
        for (String c : extra) sb.append(',').append(Csv.cell(c));
        sb.append(",mean,stderr,samples,ci_low,ci_high,settled\n");
        for (int k = 0; k < order.length; k++) {
            int j = order[k];
            double v = r.values()[j];
            if (!Double.isFinite(v))
                throw new NshapException(r.method().id() + ": player " + game.playerName(j) + " got a non-finite attribution; nothing written");
            ObjectNode pn = ps.addObject();
            pn.put("rank", k + 1);
            pn.put("player", j);
            pn.put("name", game.playerName(j));
            List<String> ev = game.extraValues(j);
            for (int c = 0; c < extra.size(); c++) pn.put(extra.get(c), ev.get(c));
            pn.put("mean", v);
            pn.putNull("stderr");
            pn.put("samples", 1);
            pn.putNull("ci_low");
            pn.putNull("ci_high");
            pn.put("settled", false);
            sb.append(k + 1).append(',').append(j).append(',').append(Csv.cell(game.playerName(j)));
            for (String x : ev) sb.append(',').append(Csv.cell(x));
            sb.append(',').append(v).append(",,1,,,false\n");
        }
        String jsonText = Json.write(o);
        AtomicFiles.writeString(json, jsonText);
        AtomicFiles.writeString(csv, sb.toString());
    }
}
