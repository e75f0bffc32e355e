package dev.nshap.shapley;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.NshapException;
import dev.nshap.cli.Main;
import dev.nshap.io.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ResumeAndShardTest {
    @TempDir Path dir;

    static ShapleyResult unbroken(Estimator e) {
        return new ShapleyRunner(ResumeChild.game(), ResumeChild.config(e, null, 0, 64, false))
                .progress(false).handleSignals(false).run();
    }

    static void assertSame(ShapleyResult want, ShapleyResult got, String what) {
        assertEquals(want.evaluations(), got.evaluations(), what + ": evaluations");
        assertEquals(want.units(), got.units(), what + ": units");
        assertEquals(want.stopReason(), got.stopReason(), what + ": stop reason");
        assertTrue(want.stats().sameAs(got.stats()), what + ": statistics differ");
        assertArrayEquals(want.means(), got.means(), 0.0, what);
        for (int i = 0; i < want.estimates().size(); i++)
            assertEquals(want.estimates().get(i), got.estimates().get(i), what + ": player " + i);
    }

    Process child(Estimator e, Path prefix, long checkpointEvery, long delayMs) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        return new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), ResumeChild.class.getName(),
                e.id(), prefix.toString(), Long.toString(checkpointEvery), Long.toString(delayMs))
                .redirectErrorStream(true).start();
    }

    /** kill -9 after a periodic checkpoint; resuming (with another batch size) ends where an unbroken run does. */
    @Test
    void killMinusNineThenResumeGivesTheUnbrokenResult() throws Exception {
        Path prefix = dir.resolve("run");
        ShapleyConfig cfg = ResumeChild.config(Estimator.TMAB, prefix, 300, 4, false);
        Process p = child(Estimator.TMAB, prefix, 300, 4);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!Files.exists(cfg.checkpointPath()) && p.isAlive() && System.nanoTime() < deadline) Thread.sleep(5);
        assertTrue(p.isAlive(), "the child must still be running when killed");
        p.destroyForcibly();                                   // SIGKILL: no shutdown hook runs
        p.waitFor(10, TimeUnit.SECONDS);
        assertTrue(Files.exists(cfg.checkpointPath()), "checkpoint written");
        assertFalse(Files.exists(cfg.jsonPath()), "no result yet");
        JsonNode ck = Json.readTree(cfg.checkpointPath());
        assertTrue(ck.path("evaluations").asLong() > 0 && ck.path("evaluations").asLong() < unbroken(Estimator.TMAB).evaluations());

        ShapleyResult resumed = new ShapleyRunner(ResumeChild.game(), ResumeChild.config(Estimator.TMAB, prefix, 300, 13, true))
                .progress(false).handleSignals(false).run();
        assertSame(unbroken(Estimator.TMAB), resumed, "tmab after kill -9");
        assertTrue(Files.exists(cfg.jsonPath()) && Files.exists(cfg.csvPath()));
        assertFalse(Files.exists(cfg.checkpointPath()), "checkpoint removed once the result is written");
    }

    /** SIGTERM: the shutdown hook writes a checkpoint (none is periodic here) and the run can be resumed. */
    @Test
    void sigtermWritesACheckpoint() throws Exception {
        Path prefix = dir.resolve("term");
        ShapleyConfig cfg = ResumeChild.config(Estimator.TMC, prefix, 0, 4, false);
        Process p = child(Estimator.TMC, prefix, 0, 3);
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream()));
        String line;
        while ((line = out.readLine()) != null && !line.equals("running")) { }   // skip JVM notices
        assertEquals("running", line, "the child started evaluating");
        Thread.sleep(300);
        p.destroy();                                            // SIGTERM
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertTrue(Files.exists(cfg.checkpointPath()), "the signal wrote a checkpoint");
        assertFalse(Files.exists(cfg.jsonPath()));
        ShapleyResult resumed = new ShapleyRunner(ResumeChild.game(), ResumeChild.config(Estimator.TMC, prefix, 0, 64, true))
                .progress(false).handleSignals(false).run();
        assertSame(unbroken(Estimator.TMC), resumed, "tmc after SIGTERM");
    }

    /** Stopping mid-round (walks half done, antithetic halves pending) and resuming, for every estimator. */
    @Test
    void interruptAnywhereAndResume() {
        for (Estimator e : List.of(Estimator.PERMUTATION, Estimator.ANTITHETIC, Estimator.TMC, Estimator.TMAB,
                Estimator.REGRESSION, Estimator.KERNELSHAP)) {
            ShapleyResult want = unbroken(e);
            for (long stopAt : new long[]{1, 97, want.evaluations() / 2}) {
                Path prefix = dir.resolve(e.id() + stopAt);
                var first = new ShapleyRunner(ResumeChild.game(), ResumeChild.config(e, prefix, 0, 5, false))
                        .progress(false).handleSignals(false).stopWhen(done -> done >= stopAt);
                assertThrows(ShapleyRunner.Interrupted.class, first::run);
                ShapleyResult got = new ShapleyRunner(ResumeChild.game(), ResumeChild.config(e, prefix, 0, 11, true))
                        .progress(false).handleSignals(false).run();
                assertSame(want, got, e.id() + " stopped at " + stopAt);
            }
        }
    }

    @Test
    void resumeRefusesAnotherConfigurationOrGame() {
        Path prefix = dir.resolve("cfg");
        var first = new ShapleyRunner(ResumeChild.game(), ResumeChild.config(Estimator.TMC, prefix, 0, 5, false))
                .progress(false).handleSignals(false).stopWhen(done -> done >= 50);
        assertThrows(ShapleyRunner.Interrupted.class, first::run);
        ShapleyConfig other = ResumeChild.config(Estimator.TMC, prefix, 0, 5, true).toBuilder().seed(78).build();
        NshapException ex = assertThrows(NshapException.class,
                () -> new ShapleyRunner(ResumeChild.game(), other).progress(false).handleSignals(false).run());
        assertTrue(ex.getMessage().contains("different configuration") && ex.getMessage().contains("seed"), ex.getMessage());
        ex = assertThrows(NshapException.class, () -> new ShapleyRunner(SyntheticGames.topKGame(40, 4, 6, 1.0, 4),
                ResumeChild.config(Estimator.TMC, prefix, 0, 5, true)).progress(false).handleSignals(false).run());
        assertTrue(ex.getMessage().contains("different game"), ex.getMessage());
        // a fresh run must not silently overwrite the checkpoint of an interrupted one
        ex = assertThrows(NshapException.class, () -> new ShapleyRunner(ResumeChild.game(),
                ResumeChild.config(Estimator.TMC, prefix, 0, 5, false)).progress(false).handleSignals(false).run());
        assertTrue(ex.getMessage().contains("--resume"), ex.getMessage());
    }

    /** Shards over a fixed permutation count, merged through the CLI, equal one run over the same permutations. */
    @Test
    void mergedShardsEqualOneRun() throws Exception {
        Path game = dir.resolve("game.json");
        Files.writeString(game, SyntheticGames.randomVoting(25, 3, 10, 0.6, 9).toJson().toString());
        // a fixed surrogate (here: noisy exact values) makes the regression estimator shardable
        Path sur = dir.resolve("surrogate.json");
        StringBuilder js = new StringBuilder("{\"results\": [");
        double[] ex = SyntheticGames.randomVoting(25, 3, 10, 0.6, 9).exactValues();
        for (int i = 0; i < ex.length; i++) js.append(i == 0 ? "" : ",").append("{\"name\":\"").append(i)
                .append("\",\"mean\":").append(ex[i] + 0.01 * Math.sin(i)).append('}');
        Files.writeString(sur, js.append("]}").toString());
        for (String est : List.of("permutation", "antithetic", "tmc", "kernelshap", "regression")) {
            Path whole = dir.resolve(est + "-whole");
            String[] extra = est.equals("regression") ? new String[]{"--surrogate", sur.toString()} : new String[0];
            List<String> w = new ArrayList<>(List.of("shapley", "--game", game.toString(), "--estimator", est,
                    "--permutations", "23", "--batch", "9", "--seed", "5", "--out", whole.toString()));
            w.addAll(List.of(extra));
            assertEquals(0, Main.run(w.toArray(String[]::new)));
            List<String> merge = new ArrayList<>(List.of("shapley", "merge", "--out", dir.resolve(est + "-merged").toString()));
            for (int i = 0; i < 3; i++) {
                Path part = dir.resolve(est + "-shard" + i);
                List<String> sh = new ArrayList<>(List.of("shapley", "--game", game.toString(), "--estimator", est,
                        "--permutations", "23", "--batch", "4", "--seed", "5", "--shard", i + "/3", "--out", part.toString()));
                sh.addAll(List.of(extra));
                assertEquals(0, Main.run(sh.toArray(String[]::new)));
                merge.add(part + ".json");
            }
            assertEquals(0, Main.run(merge.toArray(String[]::new)));
            JsonNode a = Json.readTree(Path.of(whole + ".json")), b = Json.readTree(dir.resolve(est + "-merged.json"));
            assertEquals(a.get("statistics"), b.get("statistics"), est + ": merged statistics");
            assertEquals(a.get("evaluations"), b.get("evaluations"));
            assertEquals(23, a.get("units").asInt());
            assertEquals(a.get("results"), b.get("results"), est + ": merged per-player results");
            assertEquals(a.get("error"), b.get("error"));
            // a shard alone is not the whole run
            JsonNode s0 = Json.readTree(dir.resolve(est + "-shard0.json"));
            assertTrue(s0.get("units").asInt() == 8 && !s0.get("statistics").equals(a.get("statistics")));
        }
        // incomplete, duplicated or foreign shard sets are refused
        Path s0 = dir.resolve("tmc-shard0.json"), s1 = dir.resolve("tmc-shard1.json"), p2 = dir.resolve("permutation-shard2.json");
        assertEquals(2, Main.run("shapley", "merge", "--out", dir.resolve("bad").toString(), s0.toString(), s1.toString()));
        assertEquals(2, Main.run("shapley", "merge", "--out", dir.resolve("bad").toString(), s0.toString(), s0.toString(), s1.toString()));
        assertEquals(2, Main.run("shapley", "merge", "--out", dir.resolve("bad").toString(), s0.toString(), s1.toString(), p2.toString()));
        assertFalse(Files.exists(dir.resolve("bad.json")) || Files.exists(dir.resolve("bad.csv")));
    }
}
