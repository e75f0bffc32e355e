package dev.nshap.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.backend.NeuronId;
import dev.nshap.io.Json;
import dev.nshap.model.GPT2Config;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * A neuron cluster: the neurons a model relies on for a topic, as exported from a Shapley run.
 * File format (schema_version 1):
 * <pre>
 * {"schema_version":1, "topic":"athlete", "metric":"accuracy",
 *  "model":{"name":"...","weights_sha256":"...","n_layer":12,"d_mlp":3072},
 *  "neurons":[{"id":"blocks.3.mlp.hook_post[17]","layer":3,"index":17,"value":0.12,"stderr":0.01,"ci_low":0.1,"ci_high":0.14}],
 *  "provenance":{...}}
 * </pre>
 */
public record Cluster(String topic, String metric, ModelIdentity model, List<Member> neurons, JsonNode provenance) {
    public static final int SCHEMA_VERSION = 1;

    public record ModelIdentity(String name, String weightsSha256, int nLayer, int dMlp) {}

    public record Member(NeuronId id, double value, double stderr, double ciLow, double ciHigh) {}

    /** Neuron indices per layer (layers without members are absent), ascending. */
    public Map<Integer, int[]> byLayer() {
        Map<Integer, List<Integer>> m = new TreeMap<>();
        for (Member n : neurons) m.computeIfAbsent(n.id().layer(), k -> new ArrayList<>()).add(n.id().index());
        Map<Integer, int[]> out = new TreeMap<>();
        m.forEach((l, xs) -> out.put(l, xs.stream().mapToInt(Integer::intValue).sorted().toArray()));
        return out;
    }

    /** Refuses a cluster that does not fit this model: other layer count, MLP width, or (when known) other weights. */
    public Cluster checkFits(GPT2Config cfg, String weightsSha256, Path where) {
        if (model.nLayer() != cfg.nLayer() || model.dMlp() != cfg.nInner())
            throw new NshapException(where + ": the cluster is for a model with " + model.nLayer() + " layers x " + model.dMlp()
                    + " neurons; this model has " + cfg.nLayer() + " x " + cfg.nInner());
        for (Member n : neurons) n.id().checkFor(cfg);
        if (weightsSha256 != null && model.weightsSha256() != null && !model.weightsSha256().isEmpty()
                && !model.weightsSha256().equals(weightsSha256))
            throw new NshapException(where + ": the cluster was computed on other weights (sha256 " + abbrev(model.weightsSha256())
                    + ", this model " + abbrev(weightsSha256) + "); pass --allow-other-weights to use it anyway");
        return this;
    }

    private static String abbrev(String s) { return s.length() > 12 ? s.substring(0, 12) : s; }

    public ObjectNode toJson() {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("schema_version", SCHEMA_VERSION);
        o.put("topic", topic);
        o.put("metric", metric);
        ObjectNode m = o.putObject("model");
        m.put("name", model.name());
        m.put("weights_sha256", model.weightsSha256());
        m.put("n_layer", model.nLayer());
        m.put("d_mlp", model.dMlp());
        ArrayNode arr = o.putArray("neurons");
        for (Member n : neurons) {
            ObjectNode e = arr.addObject();
            e.put("id", n.id().toString());
            e.put("layer", n.id().layer());
            e.put("index", n.id().index());
            e.put("value", n.value());
            e.put("stderr", n.stderr());
            e.put("ci_low", n.ciLow());
            e.put("ci_high", n.ciHigh());
        }
        o.set("provenance", provenance == null ? Json.MAPPER.createObjectNode() : provenance);
        return o;
    }

    public void write(Path file) { Json.writeFile(file, toJson()); }

    /** A number under its name, or under an older name (files written before the field names were unified). */
    private static double field(JsonNode e, String... names) {
        for (String n : names) if (e.has(n) && e.get(n).isNumber()) return e.get(n).asDouble();
        return Double.NaN;
    }

    public static Cluster read(Path file) {
        JsonNode o = Json.readTree(file);
        String w = file.toString();
        if (!o.isObject()) throw new NshapException(w + ": a cluster file is a JSON object");
        JsonNode v = o.get("schema_version");
        if (v == null || !v.canConvertToInt())
            throw new NshapException(w + ": not a cluster file (no schema_version)");
        if (v.asInt() != SCHEMA_VERSION)
            throw new NshapException(w + ": cluster schema_version " + v.asInt() + " is not supported (expected " + SCHEMA_VERSION + ")");
        JsonNode m = o.get("model");
        if (m == null || !m.isObject()) throw new NshapException(w + ": cluster has no \"model\"");
        if (!m.path("n_layer").canConvertToInt() || !m.path("d_mlp").canConvertToInt())
            throw new NshapException(w + ": cluster model needs integer n_layer and d_mlp");
        ModelIdentity id = new ModelIdentity(m.path("name").asText(""), m.path("weights_sha256").asText(""),
                m.get("n_layer").asInt(), m.get("d_mlp").asInt());
        JsonNode arr = o.get("neurons");
        if (arr == null || !arr.isArray()) throw new NshapException(w + ": cluster has no \"neurons\" array");
        if (arr.isEmpty()) throw new NshapException(w + ": the cluster has no neurons");
        List<Member> ns = new ArrayList<>();
        Set<NeuronId> seen = new HashSet<>();
        int i = 0;
        for (JsonNode e : arr) {
            i++;
            if (!e.hasNonNull("id")) throw new NshapException(w + ": neuron " + i + " has no \"id\"");
            // a group id ([A:B], a+b) stands for each of its neurons, each carrying the group's numbers
            List<NeuronId> group;
            try {
                group = NeuronId.parseGroup(e.get("id").asText());
            } catch (NshapException ex) {
                throw new NshapException(w + ": neuron " + i + ": " + ex.getMessage());
            }
            for (NeuronId nid : group) {
                if (nid.layer() >= id.nLayer() || nid.index() >= id.dMlp())
                    throw new NshapException(w + ": neuron " + nid + " lies outside the cluster's own model (" + id.nLayer() + " x " + id.dMlp() + ")");
                if (!seen.add(nid)) throw new NshapException(w + ": neuron " + nid + " is listed twice");
                ns.add(new Member(nid, field(e, "value"), field(e, "stderr"), field(e, "ci_low", "ciLow"), field(e, "ci_high", "ciHigh")));
            }
        }
        return new Cluster(o.path("topic").asText(""), o.path("metric").asText(""), id, List.copyOf(ns), o.get("provenance"));
    }
}
