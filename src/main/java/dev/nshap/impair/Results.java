package dev.nshap.impair;

import dev.nshap.io.Csv;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.io.AtomicFiles;
import dev.nshap.io.Json;

import java.nio.file.Path;
import java.time.Instant;
import java.util.List;

/** JSON + CSV of impairment sweeps and specificity matrices (formats nshap-impairment-1, nshap-specificity-1). */
public final class Results {
    public static final String IMPAIRMENT = "nshap-impairment-1";
    public static final String SPECIFICITY = "nshap-specificity-1";

    private Results() {}

    /** One dataset x metric curve: the real target (index 0) against its random matches (1..). */
    public static ObjectNode curve(TokenizedDataset data, Sweep.Values v) {
        ObjectNode c = Json.MAPPER.createObjectNode();
        c.put("dataset", data.dataset.name());
        c.put("topic", data.dataset.topic());
        c.put("metric", v.metric().cliName);
        c.put("higher_is_better", v.metric().higherIsBetter);
        c.put("prompts", v.prompts());
        Stats clean = Stats.of(v.clean());
        ObjectNode cl = c.putObject("clean");
        num(cl, "mean", clean.mean());
        num(cl, "ci_low", clean.ciLow());
        num(cl, "ci_high", clean.ciHigh());
        int r = v.impaired().length - 1;
        c.put("baseline_clusters", r);
        ArrayNode pts = c.putArray("points");
        for (int l = 0; l < v.levels().length; l++) {
            ObjectNode p = pts.addObject();
            p.put("level", v.levels()[l]);
            Stats s = Stats.of(v.impaired()[0][l]);
            num(p, "mean", s.mean());
            num(p, "ci_low", s.ciLow());
            num(p, "ci_high", s.ciHigh());
            Stats h = Stats.of(v.harm(0, l));
            num(p, "harm", h.mean());
            num(p, "harm_ci_low", h.ciLow());
            num(p, "harm_ci_high", h.ciHigh());
            if (r > 0) {
                double[] b = new double[r];
                for (int k = 0; k < r; k++) b[k] = v.meanAt(k + 1, l);
                Stats bs = Stats.of(b);
                num(p, "baseline_mean", bs.mean());
                num(p, "baseline_sd", bs.sd());
                num(p, "baseline_low", bs.mean() - 1.96 * bs.sd());
                num(p, "baseline_high", bs.mean() + 1.96 * bs.sd());
            }
        }
        return c;
    }

    public static String curvesCsv(ArrayNode curves) {
        StringBuilder sb = new StringBuilder("dataset,topic,metric,level,mean,ci_low,ci_high,harm,harm_ci_low,harm_ci_high,"
                + "baseline_mean,baseline_sd,baseline_low,baseline_high,clean_mean,prompts,"
                + "matched_harm,matched_harm_ci_low,matched_harm_ci_high,ratio,ratio_ci_low,ratio_ci_high\n");
        for (var c : curves)
            for (var p : c.get("points")) {
                sb.append(Csv.cell(c.get("dataset").asText())).append(',').append(Csv.cell(c.get("topic").asText())).append(',')
                        .append(c.get("metric").asText());
                for (String k : new String[]{"level", "mean", "ci_low", "ci_high", "harm", "harm_ci_low", "harm_ci_high",
                        "baseline_mean", "baseline_sd", "baseline_low", "baseline_high"})
                    sb.append(',').append(p.hasNonNull(k) ? p.get(k).asText() : "");
                sb.append(',').append(c.path("clean").hasNonNull("mean") ? c.get("clean").get("mean").asText() : "")
                        .append(',').append(c.get("prompts").asInt());
                for (String k : new String[]{"matched_harm", "matched_harm_ci_low", "matched_harm_ci_high", "ratio", "ratio_ci_low", "ratio_ci_high"})
                    sb.append(',').append(p.hasNonNull(k) ? p.get(k).asText() : "");
                sb.append('\n');
            }
        return sb.toString();
    }

    public static ObjectNode cellJson(Specificity.Cell c) {
        ObjectNode o = Json.MAPPER.createObjectNode();
        num(o, "effect", c.effect());
        num(o, "ci_low", c.ciLow());
        num(o, "ci_high", c.ciHigh());
        num(o, "baseline_mean", c.baseMean());
        num(o, "baseline_sd", c.baseSd());
        o.put("baseline_clusters", c.baseCount());
        num(o, "z", c.z());
        return o;
    }

    public static String specificityCsv(List<String> clusters, List<String> clusterTopics, List<String> datasets,
                                        List<String> datasetTopics, int[] own, Specificity.Cell[][] cells) {
        StringBuilder sb = new StringBuilder("cluster,cluster_topic,dataset,dataset_topic,own,effect,ci_low,ci_high,baseline_mean,baseline_sd,z\n");
        for (int i = 0; i < clusters.size(); i++)
            for (int j = 0; j < datasets.size(); j++) {
                Specificity.Cell c = cells[i][j];
                sb.append(Csv.cell(clusters.get(i))).append(',').append(Csv.cell(clusterTopics.get(i))).append(',')
                        .append(Csv.cell(datasets.get(j))).append(',').append(Csv.cell(datasetTopics.get(j))).append(',')
                        .append(own[i] == j).append(',').append(d(c.effect())).append(',').append(d(c.ciLow())).append(',')
                        .append(d(c.ciHigh())).append(',').append(d(c.baseMean())).append(',').append(d(c.baseSd()))
                        .append(',').append(d(c.z())).append('\n');
            }
        return sb.toString();
    }

    /** The units of each target, per layer (so a baseline's random clusters can be inspected or re-run). */
    public static ArrayNode targets(List<Target> ts) {
        ArrayNode a = Json.MAPPER.createArrayNode();
        for (Target t : ts) {
            ObjectNode o = a.addObject();
            o.put("name", t.name());
            ObjectNode per = o.putObject("units");
            t.units().forEach((l, u) -> {
                ArrayNode x = per.putArray(Integer.toString(l));
                if (u != null) for (int v : u) x.add(v);
            });
        }
        return a;
    }

    public static ObjectNode provenance(double wallSeconds, long forwardPasses) {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("tool", "nshap 0.1.0");
        o.put("created", Instant.now().toString());
        o.put("java", System.getProperty("java.version"));
        o.put("os", System.getProperty("os.name") + " " + System.getProperty("os.arch"));
        o.put("cpus", Runtime.getRuntime().availableProcessors());
        o.put("wall_seconds", Math.round(wallSeconds * 1000) / 1000.0);
        o.put("forward_passes", forwardPasses);
        return o;
    }

    /** Writes JSON and CSV, both built before either is written. */
    public static void write(Path json, ObjectNode o, Path csv, String csvText) {
        String text = Json.write(o);
        AtomicFiles.writeString(json, text);
        AtomicFiles.writeString(csv, csvText);
    }

    public static void num(ObjectNode o, String k, double v) {
        if (Double.isFinite(v)) o.put(k, v); else o.putNull(k);
    }

    static String d(double v) { return Double.isFinite(v) ? Double.toString(v) : ""; }

}
