package dev.nshap.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.io.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ShapleyCommandTest {
    @TempDir Path dir;

    record Run(int code, String out, String err) {}

    static Run cli(String... args) {
        PrintStream oldOut = System.out, oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    Path file(String name, String text) throws Exception {
        Path p = dir.resolve(name);
        Files.writeString(p, text);
        return p;
    }

    /** Exit 2 with one line naming the problem, and no output files. */
    void refused(String expect, String... args) {
        Run r = cli(args);
        assertEquals(2, r.code(), "exit code for " + String.join(" ", args) + "; stderr: " + r.err());
        List<String> lines = r.err().lines().filter(l -> l.startsWith("nshap:")).toList();
        assertEquals(1, lines.size(), r.err());
        assertTrue(lines.get(0).contains(expect), "'" + expect + "' not in: " + lines.get(0));
        assertFalse(Files.exists(dir.resolve("o.json")) || Files.exists(dir.resolve("o.csv"))
                || Files.exists(dir.resolve("o.ckpt.json")), "nothing written");
    }

    @Test
    void badInputIsRefusedWithOneLine() throws Exception {
        String o = dir.resolve("o").toString();
        Path good = file("good.json", "{\"type\":\"voting\",\"quota\":3,\"weights\":[2,1,1]}");
        refused("line 2", "shapley", "--game", file("broken.json", "{\"type\":\n\"voting\" \"quota\"}").toString(),
                "--estimator", "exact", "--out", o);
        refused("unknown game type 'majority'", "shapley", "--game",
                file("t.json", "{\"type\":\"majority\"}").toString(), "--estimator", "exact", "--out", o);
        refused("terms[1].coalition[0] = 7 is outside 0..4", "shapley", "--game", file("u.json",
                "{\"type\":\"unanimity\",\"players\":5,\"terms\":[{\"coalition\":[0],\"weight\":1},{\"coalition\":[7],\"weight\":1}]}")
                .toString(), "--estimator", "exact", "--out", o);
        refused("not a non-negative integer", "shapley", "--game",
                file("v.json", "{\"type\":\"voting\",\"quota\":3,\"weights\":[2,1.5]}").toString(), "--estimator", "exact", "--out", o);
        refused("no such file", "shapley", "--game", dir.resolve("missing.json").toString(), "--estimator", "exact", "--out", o);
        StringBuilder w = new StringBuilder("{\"type\":\"additive\",\"weights\":[1");
        for (int i = 1; i < 21; i++) w.append(",1");
        refused("at most 20", "shapley", "--game", file("big.json", w + "]}").toString(), "--estimator", "exact", "--out", o);
        refused("unknown estimator 'bogus'", "shapley", "--game", good.toString(), "--estimator", "bogus", "--out", o);
        refused("bad shard spec '3/3'", "shapley", "--game", good.toString(), "--estimator", "tmc", "--budget", "100",
                "--shard", "3/3", "--out", o);
        refused("bad shard spec 'a/b'", "shapley", "--game", good.toString(), "--estimator", "tmc", "--budget", "100",
                "--shard", "a/b", "--out", o);
        refused("tmab cannot be sharded", "shapley", "--game", good.toString(), "--estimator", "tmab", "--budget", "100",
                "--shard", "0/2", "--top-k", "1", "--out", o);
        refused("needs --budget", "shapley", "--game", good.toString(), "--estimator", "permutation", "--out", o);
        refused("--out PREFIX is required", "shapley", "--game", good.toString(), "--estimator", "exact");
        refused("no checkpoint", "shapley", "--game", good.toString(), "--estimator", "tmc", "--budget", "100",
                "--resume", "--out", o);
        refused("--top-k must be smaller", "shapley", "--game", good.toString(), "--estimator", "tmab", "--budget", "100",
                "--out", o);
        refused("no game given", "shapley", "--estimator", "tmc", "--budget", "100", "--out", o);
    }

    @Test
    void writesJsonAndCsvSortedByRankAndPrintsTheError() throws Exception {
        Path g = file("g.json", "{\"type\":\"unanimity\",\"players\":4,\"names\":[\"a\",\"b,c\",\"d\",\"e\"],"
                + "\"terms\":[{\"coalition\":[0,1],\"weight\":6},{\"coalition\":[2],\"weight\":3},{\"coalition\":[3],\"weight\":0.5}]}");
        Path prefix = dir.resolve("res");
        Run r = cli("shapley", "--game", g.toString(), "--estimator", "antithetic", "--budget", "2000", "--top-k", "2",
                "--out", prefix.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("error vs exact: mse") && r.out().contains("precision@2"), r.out());
        JsonNode j = Json.readTree(dir.resolve("res.json"));
        assertEquals("antithetic", j.at("/config/estimator").asText());
        assertEquals(2000, j.at("/config/budget").asLong());
        assertEquals(4, j.at("/game/players").asInt());
        assertTrue(j.at("/provenance/java").isTextual());
        JsonNode rows = j.get("results");
        double prev = Double.POSITIVE_INFINITY;
        for (int i = 0; i < rows.size(); i++) {
            assertEquals(i + 1, rows.get(i).get("rank").asInt());
            assertTrue(rows.get(i).get("mean").asDouble() <= prev);
            prev = rows.get(i).get("mean").asDouble();
        }
        assertTrue(rows.get(0).get("player").asInt() != 3, "player 3 (worth 0.5) cannot rank first");
        List<String> csv = Files.readAllLines(dir.resolve("res.csv"));
        assertEquals("rank,player,name,mean,stderr,samples,ci_low,ci_high,settled,exact", csv.get(0));
        assertEquals(5, csv.size());
        assertTrue(csv.stream().anyMatch(l -> l.contains(",\"b,c\",")), "names with commas are quoted");
        String last = csv.get(4);
        assertTrue(last.startsWith("4,3,e,"), last);
        assertEquals(0.5, Double.parseDouble(last.substring(last.lastIndexOf(',') + 1)), 0);
        assertFalse(Files.exists(dir.resolve("res.ckpt.json")));
    }
}
