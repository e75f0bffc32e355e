package dev.nshap.shapley;

import dev.nshap.io.Csv;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.io.AtomicFiles;
import dev.nshap.io.Json;

import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Result files: PREFIX.json (configuration, provenance, per-player estimates sorted by rank, and the exact
 * sufficient statistics that {@code nshap shapley merge} combines) and PREFIX.csv (one row per player sorted by
 * rank; empty cells where a value is undefined, which pandas reads as NaN).
 */
public final class ShapleyOutput {
    public static final String FORMAT = "nshap-shapley-result-1";

    private ShapleyOutput() {}

    /** Names and extra columns as the result files carry them (the game, or a merged shard file). */
    public record Labels(List<String> names, List<String> extraColumns, List<List<String>> extraValues) {
        static Labels of(Game g) {
            List<String> names = new ArrayList<>();
            List<List<String>> extra = new ArrayList<>();
            for (int i = 0; i < g.players(); i++) {
                names.add(g.playerName(i));
                extra.add(g.extraValues(i));
            }
            return new Labels(names, g.extraColumns(), extra);
        }
    }

    public static void write(ShapleyResult r, Game g, Path json, Path csv) {
        write(r, Labels.of(g), json, csv, g.provenance());
    }

    static void write(ShapleyResult r, Labels labels, Path json, Path csv, Map<String, Object> extraProvenance) {
        // build both fully before writing either, so a failure leaves no new half pair behind
        String jsonText = Json.write(toJson(r, labels, extraProvenance));
        String csvText = toCsv(r, labels);
        AtomicFiles.writeString(json, jsonText);
        AtomicFiles.writeString(csv, csvText);
    }

    static ObjectNode toJson(ShapleyResult r, Labels labels, Map<String, Object> extraProvenance) {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("format", FORMAT);
        Map<String, Object> prov = new LinkedHashMap<>();
        prov.put("tool", "nshap 0.1.0");
        prov.put("created", Instant.now().toString());
        prov.put("java", System.getProperty("java.version"));
        prov.put("os", System.getProperty("os.name") + " " + System.getProperty("os.arch"));
        prov.putAll(extraProvenance);
        o.set("provenance", Json.MAPPER.valueToTree(prov));
        o.set("config", Json.MAPPER.valueToTree(snakeKeys(r.config().describe())));
        o.set("game", Json.MAPPER.valueToTree(r.game()));
        o.put("game_fingerprint", r.gameFingerprint());
        o.put("players", r.estimates().size());
        o.put("estimator", r.config().estimator().id());
        o.put("evaluations", r.evaluations());
        o.put("units", r.units());
        o.put("stop_reason", r.stopReason());
        o.put("elapsed_seconds", r.elapsedSeconds());
        Metrics.Errors e = r.errors();
        if (e != null) {
            ObjectNode en = o.putObject("error");
            num(en, "mse", e.mse());
            num(en, "max_abs_error", e.maxAbs());
            num(en, "spearman", e.spearman());
            num(en, "precision_at_k", e.precisionAtK());
            en.put("k", e.k());
        }
        ArrayNode ps = o.putArray("results");
        for (PlayerEstimate p : r.byRank()) {
            ObjectNode pn = ps.addObject();
            pn.put("rank", p.rank());
            pn.put("player", p.player());
            pn.put("name", labels.names().get(p.player()));
            for (int c = 0; c < labels.extraColumns().size(); c++)
                pn.put(labels.extraColumns().get(c), labels.extraValues().get(p.player()).get(c));
            num(pn, "mean", p.mean());
            num(pn, "stderr", p.stderr());
            pn.put("samples", p.samples());
            num(pn, "ci_low", p.ciLow());
            num(pn, "ci_high", p.ciHigh());
            pn.put("settled", p.settled());
            if (bandit(r)) {
                num(pn, "bandit_low", p.banditLow());
                num(pn, "bandit_high", p.banditHigh());
                pn.put("status", p.status());
            }
            if (r.exact() != null) num(pn, "exact", r.exact()[p.player()]);
        }
        o.put("intervals", "ci_low..ci_high: Student t at confidence " + r.config().confidence()
                + (bandit(r) ? "; bandit_low..bandit_high: the bandit's " + r.config().bound() + " bound, all players and times"
                + " at once with probability 1 - delta = " + (1 - r.config().delta()) + " (what settles players)" : ""));
        if (r.topK() != null) {
            Map<String, Object> t = snakeKeys(r.topK());
            if (t.get("screen") instanceof Map<?, ?> sc) {
                @SuppressWarnings("unchecked") Map<String, Object> scm = (Map<String, Object>) sc;
                t.put("screen", snakeKeys(scm));
            }
            o.set("top_k", Json.MAPPER.valueToTree(t));
        }
        if (r.stats() != null) o.set("statistics", r.stats().toJson());
        return o;
    }

    static boolean bandit(ShapleyResult r) { return r.config().estimator() == Estimator.TMAB && r.stats() != null; }
    /**
     * One vocabulary across result kinds (docs/results.md): snake_case, as the CSV, clusters, impairment and
     * specificity results already were. {@code topK} -> {@code top_k}.
     */
    static Map<String, Object> snakeKeys(Map<String, Object> m) {
        Map<String, Object> out = new LinkedHashMap<>();
        m.forEach((k, v) -> out.put(snake(k), v));
        return out;
    }

    static String snake(String camel) {
        return camel.replaceAll("([a-z0-9])([A-Z])", "$1_$2").toLowerCase(Locale.ROOT);
    }

    /** A field by its name, or by the camelCase name results had before the vocabulary was unified. */
    static JsonNode field(JsonNode o, String snakeName) {
        JsonNode v = o.get(snakeName);
        if (v != null) return v;
        StringBuilder camel = new StringBuilder();
        for (String part : snakeName.split("_"))
            camel.append(camel.length() == 0 ? part : Character.toUpperCase(part.charAt(0)) + part.substring(1));
        v = o.get(camel.toString());
        return v != null ? v : com.fasterxml.jackson.databind.node.MissingNode.getInstance();
    }

    private static void num(ObjectNode o, String k, double v) {
        if (Double.isFinite(v)) o.put(k, v); else o.putNull(k);
    }

    static String toCsv(ShapleyResult r, Labels labels) {
        StringBuilder sb = new StringBuilder("rank,player,name");
        for (String c : labels.extraColumns()) sb.append(',').append(Csv.cell(c));
        sb.append(",mean,stderr,samples,ci_low,ci_high,settled");
        if (bandit(r)) sb.append(",bandit_low,bandit_high,status");
        if (r.exact() != null) sb.append(",exact");
        sb.append('\n');
        for (PlayerEstimate p : r.byRank()) {
            sb.append(p.rank()).append(',').append(p.player()).append(',').append(Csv.cell(labels.names().get(p.player())));
            for (String v : labels.extraValues().get(p.player())) sb.append(',').append(Csv.cell(v));
            sb.append(',').append(d(p.mean())).append(',').append(d(p.stderr())).append(',').append(p.samples())
                    .append(',').append(d(p.ciLow())).append(',').append(d(p.ciHigh())).append(',').append(p.settled());
            if (bandit(r)) sb.append(',').append(d(p.banditLow())).append(',').append(d(p.banditHigh())).append(',').append(p.status());
            if (r.exact() != null) sb.append(',').append(d(r.exact()[p.player()]));
            sb.append('\n');
        }
        return sb.toString();
    }

    private static String d(double v) { return Double.isFinite(v) ? Double.toString(v) : ""; }


    // ---------------------------------------------------------------- merge

    /**
     * Combines the result files of shards 0..S-1 of one run: same configuration apart from the shard index, same
     * game. The statistics are summed exactly, so the merge equals one run over the union of the shards' units.
     */
    public static ShapleyResult merge(List<Path> files, Path outPrefix) {
        if (files.isEmpty()) throw new NshapException("merge: no shard files given");
        JsonNode first = null;
        SufficientStats stats = null;
        long evaluations = 0, units = 0, rounds = 0;
        double elapsed = 0;
        BitSet seen = new BitSet();
        int shardCount = -1;
        ShapleyConfig cfg0 = null;
        for (Path f : files) {
            JsonNode o = Json.readTree(f);
            if (!FORMAT.equals(o.path("format").asText()))
                throw new NshapException(f + ": not an nshap shapley result file");
            if (!o.has("statistics"))
                throw new NshapException(f + ": holds no sampling statistics (exact results cannot be merged)");
            ShapleyConfig c = configOf(o.path("config"), f);
            if (first == null) {
                first = o;
                cfg0 = c;
                shardCount = c.shardCount();
            } else {
                Map<String, Object> a = new LinkedHashMap<>(cfg0.resultDefining()), b = new LinkedHashMap<>(c.resultDefining());
                a.remove("shardIndex");
                b.remove("shardIndex");
                for (String k : a.keySet())
                    if (!String.valueOf(a.get(k)).equals(String.valueOf(b.get(k))))
                        throw new NshapException(f + ": shard of a different run (" + k + " is " + b.get(k) + ", "
                                + files.get(0) + " has " + a.get(k) + ")");
                if (!field(first, "game_fingerprint").asText().equals(field(o, "game_fingerprint").asText()))
                    throw new NshapException(f + ": shard of a different game than " + files.get(0));
            }
            if (seen.get(c.shardIndex()))
                throw new NshapException(f + ": shard " + c.shardIndex() + "/" + shardCount + " given twice");
            seen.set(c.shardIndex());
            SufficientStats s = SufficientStats.fromJson(o.path("statistics"), o.path("players").asInt(), f.toString());
            if (stats == null) stats = s; else stats.addAll(s);
            evaluations += o.path("evaluations").asLong();
            units += o.path("units").asLong();
            rounds = Math.max(rounds, o.path("rounds").asLong());
            elapsed += field(o, "elapsed_seconds").asDouble();
        }
        if (seen.cardinality() != shardCount)
            throw new NshapException("merge: got shards " + seen + " of " + shardCount + "; all of 0.." + (shardCount - 1)
                    + " are needed");
        int n = stats.players();
        // labels and exact values travel in the shard files
        List<String> names = new ArrayList<>(java.util.Collections.nCopies(n, ""));
        List<List<String>> extra = new ArrayList<>(java.util.Collections.nCopies(n, List.of()));
        List<String> extraCols = new ArrayList<>();
        double[] exact = null;
        var known = java.util.Set.of("rank", "player", "name", "mean", "stderr", "samples", "ci_low", "ci_high",
                "ciLow", "ciHigh", "settled", "exact", "bandit_low", "bandit_high", "status");
        JsonNode rows = first.path("results");
        if (rows.size() != n) throw new NshapException(files.get(0) + ": results do not list " + n + " players");
        rows.get(0).fieldNames().forEachRemaining(fn -> { if (!known.contains(fn)) extraCols.add(fn); });
        for (JsonNode row : rows) {
            int p = row.path("player").asInt(-1);
            if (p < 0 || p >= n) throw new NshapException(files.get(0) + ": bad player index in results");
            names.set(p, row.path("name").asText());
            List<String> ev = new ArrayList<>();
            for (String c : extraCols) ev.add(row.path(c).asText());
            extra.set(p, ev);
            if (row.has("exact") && !row.get("exact").isNull()) {
                if (exact == null) exact = new double[n];
                exact[p] = row.get("exact").asDouble();
            }
        }
        ShapleyConfig merged = cfg0.toBuilder().shard(0, 1).out(outPrefix).resume(false).build();
        ShapleyResult r = new ShapleyResult(merged, Json.MAPPER.convertValue(first.path("game"), Map.class),
                field(first, "game_fingerprint").asText(), ShapleyRunner.estimates(merged, stats, null), evaluations,
                units, rounds, "merged " + shardCount + " shards", elapsed, stats, exact, null);
        if (outPrefix != null) {
            Map<String, Object> prov = new LinkedHashMap<>();
            prov.put("merged_from", files.stream().map(Path::toString).toList());
            write(r, new Labels(names, extraCols, extra), merged.jsonPath(), merged.csvPath(), prov);
        }
        return r;
    }

    private static ShapleyConfig configOf(JsonNode c, Path f) {
        try {
            ShapleyConfig.Builder b = ShapleyConfig.builder(Estimator.parse(c.path("estimator").asText()));
            JsonNode base = field(c, "truncation_baseline");
            b.budget(c.path("budget").asLong()).permutations(c.path("permutations").asLong())
                    .seed(c.path("seed").asLong()).tolerance(c.path("tolerance").asDouble())
                    .truncationTolerance(field(c, "truncation_tolerance").asDouble())
                    .truncationBaseline(base.isNumber() ? base.asDouble() : null)
                    .truncationSteps(field(c, "truncation_steps").asInt()).delta(c.path("delta").asDouble())
                    .topK(field(c, "top_k").asInt()).range(c.path("range").asDouble()).round(c.path("round").asInt())
                    .confidence(c.path("confidence").asDouble()).epsilon(c.path("epsilon").asDouble(0))
                    .bound(c.path("bound").asText(TopK.BERNSTEIN))
                    .surrogate(c.hasNonNull("surrogate") ? Path.of(c.get("surrogate").asText()) : null)
                    .shard(field(c, "shard_index").asInt(), field(c, "shard_count").asInt());
            if (c.has("batch")) b.batch(c.get("batch").asInt());
            return b.build();
        } catch (NshapException e) {
            throw new NshapException(f + ": bad configuration: " + e.getMessage());
        }
    }

    static String fmt(double v) { return String.format(Locale.ROOT, "%.4g", v); }
}
