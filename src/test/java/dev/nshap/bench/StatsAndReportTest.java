package dev.nshap.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.io.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class StatsAndReportTest {
    @Test void statsAreLinearlyInterpolatedQuantiles() {
        Stats s = Stats.of(new double[]{5, 1, 4, 2, 3});
        assertEquals(3, s.median(), 1e-12);
        assertEquals(1.4, s.p10(), 1e-12);   // 0.1 * 4 = 0.4 of the way from 1 to 2
        assertEquals(4.6, s.p90(), 1e-12);
        assertEquals(3, s.mean(), 1e-12);
        assertEquals((4.6 - 1.4) / 3, s.spread(), 1e-12);
        assertEquals(1, s.min());
        assertEquals(5, s.max());
        assertEquals(7.5, Stats.of(new double[]{10, 5}).median(), 1e-12);
    }

    @Test void statsTimeRunsWarmupThenReps() {
        int[] calls = new int[1];
        Stats s = Stats.time(3, 4, () -> calls[0]++);
        assertEquals(7, calls[0]);
        assertEquals(4, s.n());
    }

    @Test void reportGivesFractionsOfItsPeaksAndWritesJson(@TempDir Path dir) throws Exception {
        BenchReport r = new BenchReport("gemm", Machine.describe());
        r.config.put("backend", "cpu");
        r.config.put("config", "tiny");
        r.peak("cpu_matmul", 80, "GFLOP/s", "test");
        r.row("a", Stats.of(new double[]{0.5, 0.5}), 20, "GFLOP/s", "cpu_matmul");
        r.row("b", null, 7, "tokens/s", null);
        r.row("c", null, 7, "GFLOP/s", "no_such_peak");
        assertEquals(0.25, r.fraction(r.rows.get(0)), 1e-12);
        assertNull(r.fraction(r.rows.get(1)));
        assertNull(r.fraction(r.rows.get(2)));
        assertTrue(r.defaultFileName().matches("gemm-cpu-tiny-\\d{8}-\\d{6}\\.json"), r.defaultFileName());

        Path f = dir.resolve("sub/out.json");
        r.writeJson(f);
        JsonNode j = Json.readTree(f);
        assertEquals("gemm", j.get("bench").asText());
        assertFalse(j.get("machine").get("cpu_model").asText().isBlank());
        assertTrue(j.get("machine").get("cores").asInt() >= 1);
        assertTrue(j.get("machine").get("java").asText().contains(System.getProperty("java.version")));
        assertEquals(0.25, j.get("results").get(0).get("fraction_of_peak").asDouble(), 1e-12);
        assertEquals(0.5, j.get("results").get(0).get("time").get("median_s").asDouble(), 1e-12);
        assertFalse(j.get("results").get(1).has("fraction_of_peak"));
        assertEquals(80, j.get("peaks").get("cpu_matmul").get("value").asDouble(), 1e-12);
        try (var files = Files.list(f.getParent())) {
            assertEquals(1, files.count(), "only the finished file, no temporary left behind");
        }

        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        r.printTable(new PrintStream(buf, true, StandardCharsets.UTF_8), "title");
        String table = buf.toString(StandardCharsets.UTF_8);
        assertTrue(table.contains("25.0%"), table);
        assertTrue(table.contains("peak cpu_matmul"), table);
    }

    @Test void machineNamesTheCpu() {
        Map<String, Object> m = Machine.describe();
        assertEquals(Runtime.getRuntime().availableProcessors(), m.get("cores"));
        assertNotNull(m.get("cpu_model"));
    }
}
