package dev.nshap.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.io.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BenchBackwardCliTest {
    @Test void printsTokensPerSecondAndTheRatioToTheForward(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("b.json"), cfg = dir.resolve("config.json");
        Json.writeFile(cfg, new dev.nshap.model.GPT2Config(2, 2, 32, 64, 500, 1e-5, "gelu_new").toJson()); // small: the test stays fast
        BenchCliTest.Run r = BenchCliTest.run("bench", "backward", "--config", cfg.toString(), "--batch", "2", "--seq", "8",
                "--warmup", "0", "--reps", "1", "--json", json.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("lmLoss / forward (every position)"), r.out());
        JsonNode rows = Json.readTree(json).get("results");
        double lm = rows.get(0).get("time").get("median_s").asDouble(), fwd = rows.get(1).get("time").get("median_s").asDouble();
        assertEquals(16 / lm, rows.get(0).get("value").asDouble(), 1e-6 * rows.get(0).get("value").asDouble());
        assertEquals(lm / fwd, rows.get(2).get("value").asDouble(), 1e-9 * lm / fwd);
    }

    @Test void refusalsAreOneLineWithExitCode2() {
        String[][] bad = {
                {"bench", "backward", "--config", "tiny", "--backend", "cuda"},
                {"bench", "backward", "--config", "tiny", "--seq", "1"},
                {"bench", "backward", "--config", "tiny", "--seq", "500"},
        };
        for (String[] a : bad) {
            BenchCliTest.Run r = BenchCliTest.run(a);
            assertEquals(2, r.code(), String.join(" ", a) + " -> " + r.err());
            String msg = r.err().lines().filter(l -> !l.startsWith("WARNING")).reduce("", (x, y) -> x + y + "\n").strip();
            assertEquals(1, msg.lines().count(), msg);
        }
    }
}
