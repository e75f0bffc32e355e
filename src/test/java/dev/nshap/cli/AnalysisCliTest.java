package dev.nshap.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.io.Json;
import dev.nshap.io.Npy;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.ModelInit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** steer scan and cache end to end on a small random-init checkpoint, and their refusals of bad input. */
class AnalysisCliTest {
    @TempDir static Path dir;
    static Path model, a, b;

    @BeforeAll static void setUp() throws Exception {
        model = dir.resolve("model");
        GPT2Config c = new GPT2Config(2, 2, 32, 64, GPT2Config.GPT2_VOCAB, 1e-5, "gelu_new");
        Checkpoint.write(model, ModelInit.random(c, 3), "F32", Map.of("nshap_init", "test"));
        a = dir.resolve("capitals.jsonl");
        b = dir.resolve("sport.jsonl");
        Files.writeString(a, """
                {"id":"c1","topic":"capital","prompt":"The capital of France is","answer":" Paris","foil":" Rome"}
                {"id":"c2","topic":"capital","prompt":"The capital of Italy is","answer":" Rome","foil":" Paris"}
                {"id":"c3","topic":"capital","prompt":"The capital of Japan is the city of","answer":" Tokyo","foil":" Paris"}
                """);
        Files.writeString(b, """
                {"id":"s1","topic":"sport","prompt":"Serena Williams played","answer":" tennis"}
                {"id":"s2","topic":"sport","prompt":"Tiger Woods played the sport of","answer":" golf"}
                """);
    }

    @Test void steerScanWritesCellsCurvesClustersAndCharts() throws Exception {
        Path out = dir.resolve("steer");
        assertEquals(0, Main.run("steer", "scan", "--model", model.toString(), "--backend", "cpu", "--dataset", a.toString(),
                "--pair", "I love", "I hate this", "--layers", "0,1", "--coefficients", "-4:4:4", "--metric", "loss,kl,logit-diff",
                "--clusters", "2", "--out", out.toString()));
        JsonNode r = Json.readTree(out.resolve("steer-scan.json"));
        assertEquals("nshap-steer-scan-1", r.get("format").asText());
        assertEquals(6, r.get("cells").size());
        assertEquals(2 * (2 + 2 * 2), r.get("curves").size());
        assertTrue(r.get("config").get("vector").get("l2_norm_per_layer").get(0).asDouble() > 0);
        for (JsonNode e : r.get("cells")) {
            double ld = e.get("direction_logit_diff").get("mean").asDouble();
            assertEquals(e.get("metrics").get("logit-diff").get("mean").asDouble(), ld, 1e-3, "the decomposition's total is the metric");
            if (e.get("coefficient").asDouble() == 0) assertEquals(0, e.get("metrics").get("kl").get("mean").asDouble(), 1e-6);
        }
        for (JsonNode cv : r.get("curves")) assertTrue(cv.get("cluster").asInt() >= 0 && cv.get("cluster").asInt() < 2);
        assertTrue(r.get("provenance").get("forward_passes").asLong() > 0);
        // a header and per cell: 3 metrics + the logit difference + 6 components
        assertEquals(1 + 6 * (3 + 1 + 6), Files.readAllLines(out.resolve("steer-scan.csv")).size());
        for (String f : new String[]{"steer-scan-L0.png", "steer-scan-L1.svg"}) assertTrue(Files.size(out.resolve(f)) > 1000, f);
        // a vector file and a fixed contrast, from position 2 on
        Path vec = dir.resolve("v.npy");
        float[] v = new float[32];
        v[3] = 1;
        Npy.write(vec, v, 32);
        Path out2 = dir.resolve("steer2");
        assertEquals(0, Main.run("steer", "scan", "--model", model.toString(), "--backend", "cpu", "--dataset", b.toString(),
                "--vector", vec.toString(), "--hook", "hook_resid_post", "--layers", "1", "--coefficients", "0,5", "--positions", "from:2",
                "--contrast", " tennis, golf", "--no-plot", "--out", out2.toString()));
        assertFalse(Files.exists(out2.resolve("steer-scan-L1.png")));
        // two datasets' mean difference at mlp.hook_post
        assertEquals(0, Main.run("steer", "scan", "--model", model.toString(), "--backend", "cpu", "--dataset", a.toString(),
                "--from-datasets", a + "," + b, "--hook", "mlp.hook_post", "--layers", "0", "--coefficients", "1", "--no-plot",
                "--out", dir.resolve("steer3").toString()));
    }

    @Test void cacheDumpsEveryHookWithAManifest() throws Exception {
        Path out = dir.resolve("cache");
        assertEquals(0, Main.run("cache", "--model", model.toString(), "--backend", "cpu", "--hooks", "blocks.*.mlp.hook_post,blocks.1.hook_resid_pre",
                "--dataset", a.toString(), "--max-tokens", "8", "--out", out.toString()));
        JsonNode m = Json.readTree(out.resolve("manifest.json"));
        assertEquals("nshap-activations-1", m.get("format").asText());
        assertEquals(3, m.get("hooks").size());
        long rows = m.get("rows").asLong();
        Npy.Array arr = Npy.read(out.resolve("blocks.0.mlp.hook_post.npy"));
        assertArrayEquals(new int[]{(int) rows, 128}, arr.shape());
        assertArrayEquals(new int[]{(int) rows, 32}, Npy.read(out.resolve("blocks.1.hook_resid_pre.npy")).shape());
        assertEquals(1 + 3, Files.readAllLines(out.resolve("index.csv")).size());
    }

    @Test void neuronAblatedTextAndTheLogitLensOfAVectorFile() throws Exception {
        Path out = dir.resolve("neuron");
        assertEquals(0, Main.run("neuron", "blocks.1.mlp.hook_post[5]", "--model", model.toString(), "--backend", "cpu", "--datasets", a.toString(),
                "--top", "2", "--ablate-tokens", "--out", out.toString()));
        JsonNode r = Json.readTree(out.resolve("neuron.json"));
        assertEquals(2, r.get("ablate_tokens").size());
        JsonNode row = r.get("ablate_tokens").get(0);
        assertEquals(row.get("position").asInt() + 1, row.get("tokens").size());
        assertTrue(row.get("tokens").get(row.get("position").asInt()).get("delta").isNull(), "the max token itself is not removed");
        assertTrue(Files.size(out.resolve("neuron-ablate-tokens.png")) > 1000);
        // a direction file along the neuron's own c_proj row gives the neuron's lens
        Checkpoint.LoadedModel lm = Checkpoint.load(model);
        float[] row5 = java.util.Arrays.copyOfRange(lm.weights().blocks[1].projW, 5 * 32, 6 * 32);
        Path vec = dir.resolve("row5.npy");
        Npy.write(vec, row5, 32);
        Path out2 = dir.resolve("lens");
        assertEquals(0, Main.run("neuron", "--direction", vec.toString(), "--model", model.toString(), "--top", "5", "--out", out2.toString()));
        JsonNode l = Json.readTree(out2.resolve("neuron.json"));
        for (String k : new String[]{"promotes", "suppresses_ln"})
            for (int i = 0; i < 2; i++) assertEquals(r.get(k).get(i).get("token").asInt(), l.get(k).get(i).get("token").asInt(), k);
        assertEquals(2, Main.run("neuron", "--direction", vec.toString(), "--model", model.toString(), "--datasets", a.toString()));
        assertEquals(2, Main.run("neuron", "blocks.1.mlp.hook_post[5]", "--model", model.toString(), "--ablate-tokens"));
        Path bad = dir.resolve("bad.npy");
        Npy.write(bad, new float[7], 7);
        assertEquals(2, Main.run("neuron", "--direction", bad.toString(), "--model", model.toString()));
    }

    @Test void layerLensWritesTheTableAndThePlot() throws Exception {
        Path out = dir.resolve("lens-layers");
        assertEquals(0, Main.run("lens", "--model", model.toString(), "--backend", "cpu", "--dataset", a.toString(), "--top", "3",
                "--out", out.toString()));
        JsonNode r = Json.readTree(out.resolve("layer-lens.json"));
        assertEquals(2, r.get("lens").size());
        assertEquals(3, r.get("lens").get(0).get("promotes").size());
        assertEquals(2 * 3, r.get("skips").size());
        for (JsonNode e : r.get("skips")) assertTrue(e.get("kl").get("mean").asDouble() >= -1e-9);
        assertEquals(1 + 2 * 3 * 2 + 2 * 3 * 2, Files.readAllLines(out.resolve("layer-lens.csv")).size());
        assertTrue(Files.size(out.resolve("layer-lens.png")) > 1000);
        for (String p : new String[]{"0:0", "0:3"})
            assertEquals(2, Main.run("lens", "--model", model.toString(), "--dataset", a.toString(), "--pairs", p, "--out", dir.resolve("never3").toString()), p);
        assertFalse(Files.exists(dir.resolve("never3")));
    }

    @Test void impairComparesModelsOnOneChartWithThresholdCrossings() throws Exception {
        Path other = dir.resolve("model-b");
        GPT2Config c = new GPT2Config(2, 2, 32, 64, GPT2Config.GPT2_VOCAB, 1e-5, "gelu_new");
        Checkpoint.write(other, ModelInit.random(c, 4), "F32", Map.of("nshap_init", "test"));
        Path out = dir.resolve("models");
        assertEquals(0, Main.run("impair", "--models", model + "," + other, "--backend", "cpu", "--all-units", "--site", "blocks.*.hook_mlp_out",
                "--mode", "scale", "--levels", "1,0.5,0", "--datasets", a.toString(), "--metric", "loss", "--threshold", "10.8",
                "--out", out.toString()));
        JsonNode r = Json.readTree(out.resolve("impairment.json"));
        assertEquals(2, r.get("config").get("models").size());
        assertEquals(2, r.get("curves").size());
        assertNotEquals(r.get("curves").get(0).get("model").asText(), r.get("curves").get(1).get("model").asText());
        for (JsonNode cv : r.get("curves")) {
            JsonNode t = cv.get("threshold_crossing");
            assertEquals(10.8, t.get("threshold").asDouble());
            assertTrue(t.has("level") && t.has("bootstrap_crossed_fraction"));
        }
        assertTrue(Files.size(out.resolve("impairment-loss.png")) > 1000);
        assertEquals(2, Main.run("impair", "--model", model.toString(), "--models", model + "," + other, "--all-units", "--datasets", a.toString(),
                "--out", dir.resolve("never4").toString()));
        assertEquals(2, Main.run("impair", "--models", model + "," + model, "--all-units", "--datasets", a.toString(),
                "--out", dir.resolve("never4").toString()));
        assertFalse(Files.exists(dir.resolve("never4")));
    }

    @Test void impairReportsTheNormMatchedRandomRatio() throws Exception {
        Path cl = dir.resolve("cluster.json");
        Checkpoint.LoadedModel lm = Checkpoint.load(model);
        List<dev.nshap.cluster.Cluster.Member> ms = new java.util.ArrayList<>();
        for (int i = 0; i < 4; i++) ms.add(new dev.nshap.cluster.Cluster.Member(new dev.nshap.backend.NeuronId(i % 2, 5 + 17 * i), 1.0, 0.01, 0, 0));
        new dev.nshap.cluster.Cluster("capital", "loss", new dev.nshap.cluster.Cluster.ModelIdentity("test", lm.weightsSha256(), 2, 128), ms, null).write(cl);
        Path out = dir.resolve("imp");
        assertEquals(0, Main.run("impair", "--model", model.toString(), "--backend", "cpu", "--cluster", cl.toString(), "--mode", "noise",
                "--levels", "0,2", "--datasets", a.toString(), "--metric", "loss,kl", "--seeds", "1", "--matched-random", "2", "--out", out.toString()));
        JsonNode r = Json.readTree(out.resolve("impairment.json"));
        assertEquals(2, r.get("config").get("matched_random").asInt());
        for (JsonNode c : r.get("curves")) {
            assertTrue(c.get("points").get(0).get("ratio").isNull(), "level 0 has no ratio");
            JsonNode p = c.get("points").get(1);
            // KL is positive under any perturbation; a random-init model's loss may fall, and then there is no ratio
            if (c.get("metric").asText().equals("kl")) assertTrue(p.get("matched_harm").asDouble() > 0);
            if (p.get("matched_harm").asDouble() > 0)
                assertEquals(p.get("harm").asDouble() / p.get("matched_harm").asDouble(), p.get("ratio").asDouble(), 1e-9);
            else assertTrue(p.get("ratio").isNull());
        }
        assertTrue(Files.readAllLines(out.resolve("impairment.csv")).get(0).endsWith(",ratio,ratio_ci_low,ratio_ci_high"));
        assertEquals(2, Main.run("impair", "--model", model.toString(), "--cluster", cl.toString(), "--datasets", a.toString(),
                "--matched-random", "-1", "--out", dir.resolve("never2").toString()));
        assertFalse(Files.exists(dir.resolve("never2")));
    }

    @Test void badInputIsRefusedWithExitCode2AndNothingWritten() throws Exception {
        String m = model.toString(), ds = a.toString();
        Path out = dir.resolve("never");
        String o = out.toString();
        Path wrong = dir.resolve("wrong.npy");
        Npy.write(wrong, new float[5], 5);
        List<String[]> bads = List.of(
                new String[]{"steer", "scan", "--model", m, "--dataset", ds, "--out", o},
                new String[]{"steer", "scan", "--model", m, "--dataset", ds, "--pair", "a", "b", "--vector", wrong.toString(), "--out", o},
                new String[]{"steer", "scan", "--model", m, "--dataset", ds, "--vector", wrong.toString(), "--out", o},
                new String[]{"steer", "scan", "--model", m, "--dataset", ds, "--pair", "a", "b", "--layers", "2", "--out", o},
                new String[]{"steer", "scan", "--model", m, "--dataset", ds, "--pair", "a", "b", "--layers", "0,0", "--out", o},
                new String[]{"steer", "scan", "--model", m, "--dataset", ds, "--pair", "a", "b", "--hook", "hook_x", "--out", o},
                new String[]{"steer", "scan", "--model", m, "--dataset", ds, "--pair", "a", "b", "--coefficients", "1:0:1", "--out", o},
                new String[]{"steer", "scan", "--model", m, "--dataset", ds, "--pair", "a", "b", "--positions", "from:-1", "--out", o},
                new String[]{"steer", "scan", "--model", m, "--dataset", ds, "--pair", "a", "b", "--clusters", "0", "--out", o},
                new String[]{"steer", "scan", "--model", m, "--dataset", b.toString(), "--pair", "a", "b", "--out", o}, // no foils, no --contrast
                new String[]{"steer", "scan", "--model", m, "--dataset", ds, "--from-datasets", ds, "--out", o},
                new String[]{"steer", "scan", "--model", m, "--dataset", ds, "--pair", "a", "b", "--contrast", " x, x", "--out", o},
                new String[]{"cache", "--model", m, "--hooks", "blocks.*.mlp.hook_post,blocks.0.mlp.hook_post", "--dataset", ds, "--out", o},
                new String[]{"cache", "--model", m, "--hooks", "blocks.7.mlp.hook_post", "--dataset", ds, "--out", o},
                new String[]{"cache", "--model", m, "--hooks", "blocks.0.mlp.hook_mid", "--dataset", ds, "--out", o},
                new String[]{"cache", "--model", m, "--hooks", "", "--dataset", ds, "--out", o},
                new String[]{"cache", "--model", m, "--hooks", "blocks.0.mlp.hook_post", "--dataset", ds, "--max-tokens", "0", "--out", o},
                new String[]{"cache", "--model", m, "--hooks", "blocks.0.mlp.hook_post", "--dataset", dir.resolve("none.jsonl").toString(), "--out", o});
        for (String[] args : bads) assertEquals(2, Main.run(args), String.join(" ", args));
        assertFalse(Files.exists(out), "a refused run wrote output");
    }
}
