package dev.nshap.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.backend.NeuronId;
import dev.nshap.cluster.Cluster;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.ModelInit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The four commands end to end on a small random-init checkpoint, and their refusals of bad input. */
class ImpairCliTest {
    @TempDir static Path dir;
    static Path model, a, b, ca, cb, bad;
    static String sha;

    @BeforeAll static void setUp() throws Exception {
        model = dir.resolve("model");
        GPT2Config c = new GPT2Config(2, 2, 32, 64, GPT2Config.GPT2_VOCAB, 1e-5, "gelu_new");
        Checkpoint.write(model, ModelInit.random(c, 3), "F32", Map.of("nshap_init", "test"));
        sha = Checkpoint.load(model).weightsSha256();
        a = dir.resolve("athlete.jsonl");
        b = dir.resolve("artist.jsonl");
        Files.writeString(a, """
                {"id":"a1","topic":"athlete","prompt":"Michael Jordan played the sport of","answer":" basketball"}
                {"id":"a2","topic":"athlete","prompt":"Serena Williams played the sport of","answer":" tennis"}
                {"id":"a3","topic":"athlete","prompt":"Lionel Messi played the sport of","answer":" football"}
                {"id":"a4","topic":"athlete","prompt":"Tiger Woods played the sport of","answer":" golf"}
                """);
        Files.writeString(b, """
                {"id":"b1","topic":"artist","prompt":"The Starry Night was painted by","answer":" Vincent"}
                {"id":"b2","topic":"artist","prompt":"The Mona Lisa was painted by","answer":" Leonardo"}
                {"id":"b3","topic":"artist","prompt":"Guernica was painted by","answer":" Pablo"}
                """);
        ca = dir.resolve("athlete.json");
        cb = dir.resolve("artist.json");
        cluster("athlete", 3, c, sha).write(ca);
        cluster("artist", 11, c, sha).write(cb);
        bad = dir.resolve("bad.json");
        cluster("athlete", 3, new GPT2Config(3, 2, 32, 64, GPT2Config.GPT2_VOCAB, 1e-5, "gelu_new"), sha).write(bad);
    }

    static Cluster cluster(String topic, int seed, GPT2Config c, String sha) {
        List<Cluster.Member> ms = new ArrayList<>();
        for (int i = 0; i < 6; i++) ms.add(new Cluster.Member(new NeuronId(i % 2, (seed * 7 + i * 13) % c.nInner()), 1.0 / (i + 1), 0.01, 0, 0));
        return new Cluster(topic, "accuracy", new Cluster.ModelIdentity("test", sha, c.nLayer(), c.nInner()), ms, null);
    }

    @Test void impairWritesCurvesWithBaselinesAndCharts() throws Exception {
        Path out = dir.resolve("results/imp");
        assertEquals(0, Main.run("impair", "--model", model.toString(), "--cluster", ca.toString(), "--site", "blocks.*.mlp.hook_post",
                "--mode", "noise", "--levels", "0:1:0.5", "--datasets", a + "," + b, "--metric", "accuracy,loss",
                "--seeds", "2", "--baseline", "3", "--out", out.toString()));
        JsonNode r = Json.readTree(out.resolve("impairment.json"));
        assertEquals("nshap-impairment-1", r.get("format").asText());
        assertEquals(6, r.get("config").get("units").asInt());
        assertEquals(3, r.get("config").get("units_per_layer").get("0").asInt());
        assertTrue(r.get("config").get("model").get("random_init").asBoolean());
        assertEquals(4, r.get("curves").size());
        JsonNode rc = r.get("config").get("random_clusters");
        assertEquals(3, rc.size());
        assertEquals(3, rc.get(0).get("units").get("0").size());
        assertEquals(3, rc.get(0).get("units").get("1").size());
        for (JsonNode c : r.get("curves")) {
            assertEquals(3, c.get("points").size());
            JsonNode p0 = c.get("points").get(0);
            assertEquals(0.0, p0.get("level").asDouble());
            // level 0 is the clean model, for the real cluster and every random one
            assertEquals(c.get("clean").get("mean").asDouble(), p0.get("mean").asDouble(), 1e-5);
            assertEquals(c.get("clean").get("mean").asDouble(), p0.get("baseline_mean").asDouble(), 1e-5);
            assertEquals(0.0, p0.get("baseline_sd").asDouble(), 1e-5);
            assertTrue(c.get("points").get(2).has("baseline_high"));
        }
        assertEquals(1 + 12, Files.readAllLines(out.resolve("impairment.csv")).size());
        for (String f : new String[]{"impairment-accuracy.png", "impairment-accuracy.svg", "impairment-loss.png", "impairment-loss.svg"})
            assertTrue(Files.size(out.resolve(f)) > 1000, f);
        // nshap plot re-renders the same result elsewhere
        assertEquals(0, Main.run("plot", out.resolve("impairment.json").toString(), "--out", dir.resolve("replot/x").toString(), "--width", "400", "--height", "300"));
        assertEquals(400, javax.imageio.ImageIO.read(dir.resolve("replot/x-loss.png").toFile()).getWidth());
        // the all-units dial and scale mode
        Path all = dir.resolve("results/all");
        assertEquals(0, Main.run("impair", "--model", model.toString(), "--all-units", "--site", "blocks.*.hook_resid_mid",
                "--mode", "scale", "--levels", "1,0.5,0", "--datasets", a.toString(), "--metric", "loss", "--out", all.toString(), "--no-plot"));
        JsonNode ra = Json.readTree(all.resolve("impairment.json"));
        assertEquals(2 * 32, ra.get("config").get("units").asInt());
        assertEquals(1, ra.get("config").get("seeds").asInt());
        JsonNode pts = ra.get("curves").get(0).get("points");
        assertEquals(ra.get("curves").get(0).get("clean").get("mean").asDouble(), pts.get(0).get("mean").asDouble(), 1e-6);
        assertFalse(Files.exists(all.resolve("impairment-loss.png")));
    }

    @Test void specificityWritesTheMatrixAndHeatMap() throws Exception {
        Path out = dir.resolve("results/spec");
        assertEquals(0, Main.run("specificity", "--model", model.toString(), "--clusters", ca + "," + cb, "--datasets", a + "," + b,
                "--mode", "scale", "--metric", "loss", "--baseline", "4", "--out", out.toString()));
        JsonNode r = Json.readTree(out.resolve("specificity.json"));
        assertEquals("nshap-specificity-1", r.get("format").asText());
        assertEquals(0.0, r.get("config").get("level").asDouble());
        assertEquals(2, r.get("matrix").get("effect").size());
        assertEquals(4, r.get("cells").size());
        assertEquals("athlete", r.get("clusters").get(0).get("own_dataset").asText());
        assertEquals("artist", r.get("clusters").get(1).get("own_dataset").asText());
        for (JsonNode c : r.get("cells")) {
            assertEquals(4, c.get("baseline_clusters").asInt());
            if (c.hasNonNull("z")) // z is what it says it is
                assertEquals((c.get("effect").asDouble() - c.get("baseline_mean").asDouble()) / c.get("baseline_sd").asDouble(), c.get("z").asDouble(), 1e-9);
        }
        assertEquals(5, Files.readAllLines(out.resolve("specificity.csv")).size());
        assertTrue(Files.size(out.resolve("specificity.png")) > 1000);
        assertTrue(Files.size(out.resolve("specificity.svg")) > 1000);
        // auc over levels
        assertEquals(0, Main.run("specificity", "--model", model.toString(), "--clusters", ca + "," + cb, "--datasets", a + "," + b,
                "--mode", "noise", "--levels", "0,1", "--effect", "auc", "--seeds", "1", "--baseline", "2", "--out", dir.resolve("results/auc").toString(), "--no-plot"));
        assertEquals("auc", Json.readTree(dir.resolve("results/auc/specificity.json")).get("config").get("effect").asText());
    }

    @Test void neuronCardsForANeuronAndACluster() throws Exception {
        Path out = dir.resolve("results/neuron");
        assertEquals(0, Main.run("neuron", "blocks.1.mlp.hook_post[5]", "--model", model.toString(), "--datasets", a + "," + b,
                "--top", "7", "--out", out.toString()));
        JsonNode r = Json.readTree(out.resolve("neuron.json"));
        assertEquals(7, r.get("promotes").size());
        assertEquals(7, r.get("suppresses_ln").size());
        assertTrue(r.get("promotes").get(0).get("score").asDouble() >= r.get("promotes").get(6).get("score").asDouble());
        assertTrue(r.get("promotes").get(0).get("score").asDouble() > r.get("suppresses").get(0).get("score").asDouble());
        assertEquals(2, r.get("datasets").size());
        assertEquals(3, r.get("datasets").get(1).get("top_prompts").size());
        assertEquals(0, Main.run("neuron", "--cluster", ca.toString(), "--model", model.toString(), "--top", "3"));
    }

    @Test void badInputIsRefusedWithExitCode2AndNothingWritten() {
        String m = model.toString();
        Path out = dir.resolve("results/never");
        String o = out.toString();
        String ds = a.toString();
        List<String[]> bads = List.of(
                new String[]{"impair", "--model", m, "--cluster", ca.toString(), "--site", "blocks.*.hook_attn", "--datasets", ds, "--out", o},
                new String[]{"impair", "--model", m, "--cluster", ca.toString(), "--levels", "0:2", "--datasets", ds, "--out", o},
                new String[]{"impair", "--model", m, "--cluster", ca.toString(), "--datasets", "", "--out", o},
                new String[]{"impair", "--model", m, "--cluster", bad.toString(), "--datasets", ds, "--out", o},
                new String[]{"impair", "--model", m, "--cluster", ca.toString(), "--all-units", "--datasets", ds, "--out", o},
                new String[]{"impair", "--model", m, "--all-units", "--baseline", "3", "--datasets", ds, "--out", o},
                new String[]{"impair", "--model", m, "--all-units", "--site", "blocks.5.mlp.hook_post", "--datasets", ds, "--out", o},
                new String[]{"impair", "--model", m, "--all-units", "--mode", "shake", "--datasets", ds, "--out", o},
                new String[]{"impair", "--model", m, "--all-units", "--mode", "negative-noise", "--levels", "-1,0", "--datasets", ds, "--out", o},
                new String[]{"impair", "--model", m, "--all-units", "--metric", "acc", "--datasets", ds, "--out", o},
                new String[]{"impair", "--model", m, "--cluster", ca.toString(), "--site", "hook_mlp_out", "--datasets", ds, "--out", o},
                new String[]{"impair", "--model", m, "--all-units", "--datasets", dir.resolve("missing.jsonl").toString(), "--out", o},
                new String[]{"specificity", "--model", m, "--clusters", ca.toString(), "--datasets", ds, "--effect", "area", "--out", o},
                new String[]{"specificity", "--model", m, "--clusters", ca.toString(), "--datasets", ds, "--metric", "accuracy,loss", "--out", o},
                new String[]{"specificity", "--model", m, "--clusters", ca.toString(), "--datasets", ds, "--baseline", "1", "--out", o},
                new String[]{"specificity", "--model", m, "--clusters", ca.toString(), "--datasets", ds, "--baseline", "0", "--out", o},
                new String[]{"neuron", "blocks.9.mlp.hook_post[1]", "--model", m},
                new String[]{"neuron", "blocks.0.mlp.hook_post[1]", "--cluster", ca.toString(), "--model", m},
                new String[]{"plot", dir.resolve("athlete.jsonl").toString()});
        for (String[] args : bads) assertEquals(2, Main.run(args), String.join(" ", args));
        assertFalse(Files.exists(out), "a refused run wrote output");
    }
}
