package dev.nshap.analysis;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.impair.Results;
import dev.nshap.impair.Stats;
import dev.nshap.io.Csv;
import dev.nshap.model.GPT2Config;

import java.util.List;
import java.util.Locale;

/** The steer-scan result (format nshap-steer-scan-1) as JSON and long-format CSV. */
public final class SteerScanJson {
    public static final String FORMAT = "nshap-steer-scan-1";

    private SteerScanJson() {}

    public static void fill(ObjectNode o, SteerScan.Result r, GPT2Config c, int[] layers, double[] coefs, int k, long seed) {
        List<String> comps = SteerScan.components(c);
        int n = r.bias().length, nc = coefs.length;
        ArrayNode cells = o.putArray("cells");
        for (int li = 0; li < layers.length; li++)
            for (int j = 0; j < nc; j++) {
                int cell = SteerScan.cell(li, j, nc);
                ObjectNode e = cells.addObject();
                e.put("layer", layers[li]);
                e.put("coefficient", coefs[j]);
                ObjectNode ms = e.putObject("metrics");
                for (int mi = 0; mi < r.metricNames().size(); mi++) stats(ms.putObject(r.metricNames().get(mi).cliName), r.metrics()[mi][cell]);
                double[] ld = new double[n];
                for (int p = 0; p < n; p++) ld[p] = r.logitDiff(cell, p);
                stats(e.putObject("direction_logit_diff"), ld);
                ObjectNode cs = e.putObject("components");
                for (int q = 0; q < comps.size(); q++) Results.num(cs, comps.get(q), meanOver(r.contrib()[cell], q));
            }
        ArrayNode curves = o.putArray("curves");
        for (int li = 0; li < layers.length; li++) {
            double[][] cv = new double[comps.size()][nc];
            for (int q = 0; q < comps.size(); q++)
                for (int j = 0; j < nc; j++) cv[q][j] = meanOver(r.contrib()[SteerScan.cell(li, j, nc)], q);
            int[] cl = SteerScan.clusterByShape(cv, k, seed);
            for (int q = 0; q < comps.size(); q++) {
                ObjectNode e = curves.addObject();
                e.put("layer", layers[li]);
                e.put("component", comps.get(q));
                e.put("cluster", cl[q]);
                ArrayNode v = e.putArray("values");
                for (double x : cv[q]) v.add(x);
            }
        }
        o.put("clustering", "k-means++ (commons-math3, k = " + k + ", seed " + seed + ") over each curve minus its mean, scaled to unit length; per layer");
    }

    private static double meanOver(double[][] perPrompt, int q) {
        double s = 0;
        for (double[] v : perPrompt) s += v[q];
        return s / perPrompt.length;
    }

    private static void stats(ObjectNode o, double[] v) {
        Stats s = Stats.of(v);
        Results.num(o, "mean", s.mean());
        Results.num(o, "ci_low", s.ciLow());
        Results.num(o, "ci_high", s.ciHigh());
    }

    public static String csv(JsonNode o) {
        StringBuilder sb = new StringBuilder("layer,coefficient,quantity,name,mean,ci_low,ci_high,cluster\n");
        java.util.Map<String, Integer> cluster = new java.util.HashMap<>();
        for (JsonNode cv : o.path("curves")) cluster.put(cv.get("layer").asInt() + "/" + cv.get("component").asText(), cv.get("cluster").asInt());
        for (JsonNode e : o.path("cells")) {
            String head = e.get("layer").asInt() + "," + e.get("coefficient").asDouble() + ",";
            e.get("metrics").fields().forEachRemaining(f -> sb.append(head).append("metric,").append(Csv.cell(f.getKey())).append(',')
                    .append(d(f.getValue().path("mean"))).append(',').append(d(f.getValue().path("ci_low"))).append(',')
                    .append(d(f.getValue().path("ci_high"))).append(",\n"));
            JsonNode ld = e.get("direction_logit_diff");
            sb.append(head).append("logit_diff,direction,").append(d(ld.path("mean"))).append(',').append(d(ld.path("ci_low"))).append(',')
                    .append(d(ld.path("ci_high"))).append(",\n");
            e.get("components").fields().forEachRemaining(f -> sb.append(head).append("component,").append(Csv.cell(f.getKey())).append(',')
                    .append(d(f.getValue())).append(",,,").append(cluster.getOrDefault(e.get("layer").asInt() + "/" + f.getKey(), -1)).append('\n'));
        }
        return sb.toString();
    }

    private static String d(JsonNode v) { return v.isNumber() ? Double.toString(v.asDouble()) : ""; }

    /** Per layer: the coefficient range's effect on each metric and on the direction's logit difference. */
    public static String summary(JsonNode o) {
        StringBuilder sb = new StringBuilder();
        JsonNode first = null, prev = null;
        for (JsonNode e : o.path("cells")) {
            if (first == null || e.get("layer").asInt() != first.get("layer").asInt()) {
                if (first != null) line(sb, first, prev);
                first = e;
            }
            prev = e;
        }
        if (first != null) line(sb, first, prev);
        return sb.toString().stripTrailing();
    }

    private static void line(StringBuilder sb, JsonNode a, JsonNode b) {
        sb.append(String.format(Locale.ROOT, "layer %d, coefficient %g -> %g:", a.get("layer").asInt(), a.get("coefficient").asDouble(),
                b.get("coefficient").asDouble()));
        a.get("metrics").fields().forEachRemaining(f -> sb.append(String.format(Locale.ROOT, "  %s %.4f -> %.4f", f.getKey(),
                f.getValue().path("mean").asDouble(Double.NaN), b.get("metrics").get(f.getKey()).path("mean").asDouble(Double.NaN))));
        sb.append(String.format(Locale.ROOT, "  direction logit diff %.4f -> %.4f%n", a.get("direction_logit_diff").path("mean").asDouble(Double.NaN),
                b.get("direction_logit_diff").path("mean").asDouble(Double.NaN)));
    }
}
