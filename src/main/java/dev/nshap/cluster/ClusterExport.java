package dev.nshap.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.backend.NeuronId;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;

import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Turns a {@code nshap shapley} result of the GPT-2 neuron game into a cluster: the neurons chosen by one rule
 * (top k overall, the top fraction of each layer, or every neuron with value at least V), with their values and
 * confidence intervals, the model's identity and where the numbers came from. A group player gives each of its
 * neurons the group's value.
 */
public final class ClusterExport {
    private ClusterExport() {}

    /** Exactly one of topK (&gt; 0), perLayerFraction (in (0, 1]), minValue (non-null). */
    public record Rule(int topK, double perLayerFraction, Double minValue) {
        public Rule {
            int given = (topK > 0 ? 1 : 0) + (perLayerFraction > 0 ? 1 : 0) + (minValue != null ? 1 : 0);
            if (given != 1) throw new NshapException("choose exactly one of --top-k, --per-layer-fraction, --min-value");
            if (topK < 0) throw new NshapException("--top-k must be positive");
            if (perLayerFraction < 0 || perLayerFraction > 1)
                throw new NshapException("--per-layer-fraction must lie in (0, 1]");
            if (minValue != null && !Double.isFinite(minValue)) throw new NshapException("--min-value must be finite");
        }

        public Map<String, Object> describe() {
            Map<String, Object> m = new LinkedHashMap<>();
            if (topK > 0) m.put("top_k", topK);
            if (perLayerFraction > 0) m.put("per_layer_fraction", perLayerFraction);
            if (minValue != null) m.put("min_value", minValue);
            return m;
        }
    }

    private record Row(String name, List<NeuronId> neurons, int layer, double value, double stderr, double lo, double hi,
                       int rank, boolean settled, long samples) {}

    public static Cluster export(Path resultFile, Rule rule) {
        JsonNode o = Json.readTree(resultFile);
        String w = resultFile.toString();
        if (!o.isObject() || !o.path("format").asText().startsWith("nshap-shapley-result"))
            throw new NshapException(w + ": not a nshap shapley result (no \"format\": \"nshap-shapley-result-1\")");
        JsonNode game = o.path("game");
        if (!"gpt2-neurons".equals(game.path("game").asText()))
            throw new NshapException(w + ": not a GPT-2 neuron run (game is '" + game.path("game").asText("?")
                    + "'); clusters come from 'nshap shapley --model ... --dataset ...'");
        if (!game.path("n_layer").canConvertToInt() || !game.path("d_mlp").canConvertToInt())
            throw new NshapException(w + ": the run does not record the model's n_layer and d_mlp");
        int nLayer = game.get("n_layer").asInt(), dMlp = game.get("d_mlp").asInt();
        JsonNode results = o.path("results");
        if (!results.isArray() || results.isEmpty()) throw new NshapException(w + ": the run has no \"results\"");
        List<Row> rows = new ArrayList<>();
        boolean grouped = false;
        int i = 0;
        for (JsonNode r : results) {
            i++;
            String name = r.path("name").asText(null);
            if (name == null) throw new NshapException(w + ": result " + i + " has no \"name\"");
            List<NeuronId> ns = neuronsOf(name, w);
            for (NeuronId n : ns)
                if (n.layer() >= nLayer || n.index() >= dMlp)
                    throw new NshapException(w + ": neuron " + n + " lies outside the run's model (" + nLayer + " x " + dMlp + ")");
            grouped |= ns.size() > 1;
            int layer = ns.get(0).layer();
            for (NeuronId n : ns) if (n.layer() != layer) layer = -1;
            double v = num(r, "mean");
            if (!Double.isFinite(v)) throw new NshapException(w + ": player " + name + " has no value (\"mean\")");
            rows.add(new Row(name, ns, layer, v, num(r, "stderr"), num(r, "ci_low", "ciLow"), num(r, "ci_high", "ciHigh"),
                    r.path("rank").asInt(i), r.path("settled").asBoolean(false), r.path("samples").asLong(-1)));
        }
        rows.sort(Comparator.comparingDouble((Row r) -> -r.value).thenComparing(r -> r.neurons.get(0)));

        List<Row> chosen = new ArrayList<>();
        if (rule.topK() > 0) {
            chosen.addAll(rows.subList(0, Math.min(rule.topK(), rows.size())));
        } else if (rule.minValue() != null) {
            for (Row r : rows) if (r.value >= rule.minValue()) chosen.add(r);
        } else {
            if (grouped) for (Row r : rows) if (r.layer < 0)
                throw new NshapException(w + ": group " + r.name + " spans layers; --per-layer-fraction needs one layer per player");
            Map<Integer, List<Row>> byLayer = new TreeMap<>();
            for (Row r : rows) byLayer.computeIfAbsent(r.layer, k -> new ArrayList<>()).add(r);
            for (List<Row> l : byLayer.values())
                chosen.addAll(l.subList(0, (int) Math.ceil(rule.perLayerFraction() * l.size() - 1e-9)));
            chosen.sort(Comparator.comparingDouble((Row r) -> -r.value).thenComparing(r -> r.neurons.get(0)));
        }
        if (chosen.isEmpty()) throw new NshapException(w + ": the rule " + rule.describe() + " selects no neurons");
        // A chosen player without an interval (one sample, a run too short) would export noise as a cluster.
        int undefined = 0;
        Row example = null;
        for (Row r : chosen)
            if (!Double.isFinite(r.stderr) || !Double.isFinite(r.lo) || !Double.isFinite(r.hi)) {
                undefined++;
                if (example == null) example = r;
            }
        // attribute results (atp/ig/loo) are deterministic: no interval is the expected state, not a short run
        boolean attribution = o.path("attribution").isObject();
        if (undefined > 0 && !attribution)
            throw new NshapException(w + ": " + undefined + " of the " + chosen.size() + " players chosen have no standard error or"
                    + " interval (e.g. " + example.name + ", " + example.samples + " sample" + (example.samples == 1 ? "" : "s")
                    + "): the run was too short to rank them; rerun it with a larger --budget");
        int unsettled = 0;
        for (Row r : chosen) if (!r.settled) unsettled++;

        List<Cluster.Member> members = new ArrayList<>();
        for (Row r : chosen)
            for (NeuronId n : r.neurons) members.add(new Cluster.Member(n, r.value, r.stderr, r.lo, r.hi));

        ObjectNode prov = Json.MAPPER.createObjectNode();
        prov.put("source", resultFile.toString());
        prov.put("source_sha256", Checkpoint.sha256(resultFile));
        prov.put("exported", Instant.now().toString());
        prov.set("rule", Json.MAPPER.valueToTree(rule.describe()));
        prov.put("players_selected", chosen.size());
        prov.put("players_in_run", rows.size());
        // TMAB settles a player once its interval clears the top-k threshold; other estimators settle none
        if ("tmab".equals(o.path("estimator").asText())) prov.put("players_unsettled", unsettled);
        if (attribution) prov.put("attribution", o.path("attribution").path("method").asText("?")
                + ": not Shapley values; members carry no interval");
        if (grouped) prov.put("groups_expanded", "each neuron of a group player carries the group's value");
        for (String k : new String[]{"estimator", "evaluations", "units", "stop_reason", "game_fingerprint", "elapsed_seconds"}) {
            String old = switch (k) { case "stop_reason" -> "stopReason"; case "game_fingerprint" -> "gameFingerprint";
                case "elapsed_seconds" -> "elapsedSeconds"; default -> k; };   // results written before the rename
            if (o.has(k)) prov.set(k, o.get(k)); else if (o.has(old)) prov.set(k, o.get(old));
        }
        prov.set("game", game);
        if (o.has("config")) prov.set("config", o.get("config"));
        if (o.has("provenance")) prov.set("run", o.get("provenance"));

        Cluster.ModelIdentity id = new Cluster.ModelIdentity(game.path("model").asText(""),
                game.path("weights_sha256").asText(""), nLayer, dMlp);
        return new Cluster(game.path("topic").asText(""), game.path("metric").asText(""), id, List.copyOf(members), prov);
    }

    /** A number under its name or an older one (results written before the field names were unified). */
    private static double num(JsonNode r, String... names) {
        for (String k : names) {
            JsonNode v = r.get(k);
            if (v != null && v.isNumber()) return v.asDouble();
        }
        return Double.NaN;
    }

    /** The neurons of a player name: one id, a layer range {@code [a:b]}, or ids joined by '+'. */
    static List<NeuronId> neuronsOf(String name, String where) {
        try {
            return NeuronId.parseGroup(name);
        } catch (NshapException e) {
            throw new NshapException(where + ": player '" + name + "' is not a neuron id or group");
        }
    }
}
