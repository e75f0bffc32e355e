package dev.nshap.shapley;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.NshapException;
import dev.nshap.eval.corpus.CorpusReader;
import dev.nshap.io.Json;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Per-player values from a result-shaped file (a {@code shapley} or {@code attribute} result: PREFIX.json with
 * "results": [{"name", "mean"}, ...], or PREFIX.csv with name and mean columns), matched to a game's players by
 * name. Used for the regression estimator's fixed surrogate and TMAB's screen.
 */
public final class PlayerValues {
    private PlayerValues() {}

    public static double[] load(Path file, Game g, String what) {
        if (!Files.isRegularFile(file)) throw new NshapException(what + " " + file + ": no such file");
        Map<String, Double> byName = new HashMap<>();
        String lower = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (lower.endsWith(".csv")) {
            var opts = new CorpusReader.Options(CorpusReader.Format.CSV, "mean", "name", ',', true);
            for (CorpusReader.Document d : CorpusReader.read(file, opts)) put(byName, d.label(), d.text(), file, what);
        } else {
            JsonNode rows = Json.readTree(file).path("results");
            if (!rows.isArray())
                throw new NshapException(what + " " + file + ": not a result file (no \"results\" array)");
            for (JsonNode r : rows) {
                if (!r.hasNonNull("name") || !r.hasNonNull("mean"))
                    throw new NshapException(what + " " + file + ": every result needs \"name\" and \"mean\"");
                put(byName, r.get("name").asText(), r.get("mean").asText(), file, what);
            }
        }
        double[] a = new double[g.players()];
        for (int i = 0; i < a.length; i++) {
            Double v = byName.get(g.playerName(i));
            if (v == null)
                throw new NshapException(what + " " + file + " has no value for player " + g.playerName(i)
                        + " (values are matched by name; it lists " + byName.size() + " players)");
            a[i] = v;
        }
        return a;
    }

    private static void put(Map<String, Double> m, String name, String value, Path file, String what) {
        double v;
        try { v = Double.parseDouble(value.trim()); } catch (NumberFormatException e) { v = Double.NaN; }
        if (!Double.isFinite(v))
            throw new NshapException(what + " " + file + ": player " + name + " has no finite mean ('" + value + "')");
        if (m.put(name, v) != null) throw new NshapException(what + " " + file + " lists player " + name + " twice");
    }
}
