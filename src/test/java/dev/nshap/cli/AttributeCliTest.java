package dev.nshap.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static dev.nshap.cli.BadInputCliTest.cli;
import static dev.nshap.cli.BadInputCliTest.refused;
import static org.junit.jupiter.api.Assertions.*;

/** nshap attribute end to end: refusals, the result's shape, and clusters export reading it. */
class AttributeCliTest {
    @Test void attributeWritesAShapleyShapedResultThatClustersExportAccepts(@TempDir Path dir) throws Exception {
        GPT2Config cfg = TestModels.tinyConfig(GPT2Config.GPT2_VOCAB);
        Path model = dir.resolve("model");
        Checkpoint.write(model, TestModels.random(cfg, 3, 0.5f), "F32", Map.of());
        Path data = Files.writeString(dir.resolve("athlete.jsonl"), """
                {"id":"a1","topic":"athlete","prompt":"He played for the national","answer":" team","foil":" museum"}
                {"id":"a2","topic":"athlete","prompt":"She won a gold","answer":" medal","foil":" painting"}
                """);
        String[] base = {"attribute", "--model", model.toString(), "--dataset", data.toString(), "--players", "blocks.1.mlp.hook_post"};

        BadInputCliTest.Run acc = cli(concat(base, "--method", "atp", "--metric", "accuracy", "--out", dir.resolve("acc").toString()));
        refused(acc, "needs a differentiable metric: loss or logit-diff");
        assertFalse(Files.exists(dir.resolve("acc.json")));
        refused(cli(concat(base, "--method", "ig", "--metric", "accuracy", "--out", dir.resolve("acc").toString())), "loss or logit-diff");
        refused(cli(concat(base, "--method", "nope", "--out", dir.resolve("x").toString())), "unknown --method 'nope'");

        Path prefix = dir.resolve("atp");
        BadInputCliTest.Run r = cli(concat(base, "--method", "atp", "--metric", "logit-diff", "--out", prefix.toString()));
        assertEquals(0, r.code(), r.err());
        JsonNode o = Json.readTree(Path.of(prefix + ".json"));
        assertEquals("nshap-shapley-result-1", o.path("format").asText());
        assertEquals("atp", o.path("estimator").asText());
        assertFalse(o.path("attribution").path("shapley").asBoolean(true));
        assertEquals(cfg.nInner(), o.path("results").size());
        JsonNode first = o.path("results").get(0);
        assertTrue(first.path("stderr").isNull() && first.path("ci_low").isNull());
        double prev = Double.POSITIVE_INFINITY;
        for (JsonNode p : o.path("results")) {
            assertTrue(p.path("mean").asDouble() <= prev, "sorted by value");
            prev = p.path("mean").asDouble();
        }
        assertEquals(cfg.nInner() + 1, Files.readAllLines(Path.of(prefix + ".csv")).size());

        Path cluster = dir.resolve("c.json");
        BadInputCliTest.Run ex = cli("clusters", "export", "--from", prefix + ".json", "--top-k", "3", "--out", cluster.toString());
        assertEquals(0, ex.code(), ex.err());
        JsonNode c = Json.readTree(cluster);
        assertEquals(3, c.path("neurons").size());
        for (int i = 0; i < 3; i++)
            assertEquals(o.path("results").get(i).path("name").asText(), c.path("neurons").get(i).path("id").asText());
        assertTrue(c.path("provenance").path("attribution").asText().contains("not Shapley"));
    }

    static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
