package dev.nshap.shapley;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;
import dev.nshap.util.Progress;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 15's "work lost / noise passed off as results": a signal mid-step still leaves a checkpoint promptly, budgets
 * too small to give each player two samples are refused, a better result is never overwritten by a worse one, a
 * resume may lower or raise the budget, and a resumed run's rate is its own.
 */
class RunSafetyTest {
    @TempDir Path dir;

    static Game additive(int n) {
        double[] w = new double[n];
        for (int i = 0; i < n; i++) w[i] = (i % 7) - 3;
        return new SyntheticGames.Additive(w);
    }

    static ShapleyRunner quiet(Game g, ShapleyConfig c, PrintStream err) {
        return new ShapleyRunner(g, c).progress(false).handleSignals(false).progressStream(err);
    }

    @Test void budgetsThatCannotGiveEveryPlayerTwoSamplesAreRefused() {
        // --budget 2048 over 1024 players: one permutation, no standard error for anyone
        ShapleyConfig c = ShapleyConfig.builder(Estimator.PERMUTATION).budget(2048).seed(1).build();
        NshapException e = assertThrows(NshapException.class, () -> quiet(additive(1024), c, System.err).run());
        assertTrue(e.getMessage().contains("--budget 2048 cannot give each of the 1024 players two samples")
                && e.getMessage().contains("at least 2050") && e.getMessage().contains("--force"), e.getMessage());
        // --budget 10: not even one permutation of 5 players' 6 evaluations... twice
        ShapleyConfig ten = ShapleyConfig.builder(Estimator.TMC).budget(10).build();
        assertThrows(NshapException.class, () -> quiet(additive(5), ten, System.err).run());
        ShapleyConfig anti = ShapleyConfig.builder(Estimator.ANTITHETIC).budget(20).build();   // one pair costs 12
        assertTrue(assertThrows(NshapException.class, () -> quiet(additive(5), anti, System.err).run()).getMessage().contains("antithetic pair"));
        assertThrows(NshapException.class, () -> quiet(additive(5), ShapleyConfig.builder(Estimator.PERMUTATION).permutations(1).build(), System.err).run());
        // exactly two permutations' worth is enough
        assertEquals(2, quiet(additive(5), ShapleyConfig.builder(Estimator.PERMUTATION).budget(12).build(), System.err).run().units());
        // forced: it runs, and says loudly that the ranks are noise
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        ShapleyResult r = quiet(additive(1024), c, new PrintStream(err, true, StandardCharsets.UTF_8)).force(true).run();
        assertEquals(1, r.units());
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("1024 of 1024 players have fewer than two samples"), err.toString());
    }

    @Test void aFinishedResultIsNotReplacedByOneOfFewerEvaluations() throws Exception {
        Path out = dir.resolve("good");
        ShapleyConfig big = ShapleyConfig.builder(Estimator.PERMUTATION).budget(600).out(out).build();
        long had = quiet(additive(5), big, System.err).run().evaluations();
        String before = Files.readString(dir.resolve("good.json"));
        ShapleyConfig small = ShapleyConfig.builder(Estimator.PERMUTATION).budget(64).out(out).build();
        NshapException e = assertThrows(NshapException.class, () -> quiet(additive(5), small, System.err).run());
        assertTrue(e.getMessage().contains("holds a finished result of " + had + " evaluations") && e.getMessage().contains("--force"), e.getMessage());
        assertEquals(before, Files.readString(dir.resolve("good.json")), "untouched");
        // as good or better replaces it; --force replaces anything
        assertEquals(600, quiet(additive(5), big, System.err).run().evaluations());
        assertEquals(60, quiet(additive(5), small, System.err).force(true).run().evaluations());
        assertEquals(60, Json.readTree(dir.resolve("good.json")).get("evaluations").asInt());
    }

    @Test void resumeWithABudgetAtOrBelowWhatWasSpentWritesTheResultFromWhatExists() throws Exception {
        Path out = dir.resolve("stop");
        Game g = ResumeChild.game();
        ShapleyConfig first = ResumeChild.config(Estimator.TMC, out, 0, 5, false);
        assertThrows(ShapleyRunner.Interrupted.class, () -> quiet(g, first, System.err).stopWhen(d -> d >= 700).run());
        long spent = Json.readTree(first.checkpointPath()).get("evaluations").asLong();
        JsonNode stats = Json.readTree(first.checkpointPath()).get("stats");
        ShapleyConfig take = first.toBuilder().budget(spent - 1).resume(true).build();
        ShapleyResult r = quiet(g, take, System.err).run();
        assertEquals(spent, r.evaluations(), "no further evaluation");
        assertEquals("budget", r.stopReason());
        assertEquals(stats, Json.readTree(dir.resolve("stop.json")).get("statistics"), "the checkpoint's statistics, as they were");
        assertFalse(Files.exists(first.checkpointPath()));
    }

    @Test void resumeWithALargerBudgetEndsWhereAnUnbrokenRunOfThatBudgetDoes() {
        Game g = ResumeChild.game();
        Path out = dir.resolve("more");
        ShapleyConfig first = ResumeChild.config(Estimator.PERMUTATION, out, 0, 5, false);   // budget 4000
        assertThrows(ShapleyRunner.Interrupted.class, () -> quiet(g, first, System.err).stopWhen(d -> d >= 300).run());
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        ShapleyConfig more = first.toBuilder().budget(6000).resume(true).batch(7).build();
        ShapleyResult got = new ShapleyRunner(g, more).handleSignals(false).progressStream(new PrintStream(err, true, StandardCharsets.UTF_8)).run();
        ShapleyResult want = quiet(g, first.toBuilder().budget(6000).out(null).build(), System.err).run();
        assertEquals(want.evaluations(), got.evaluations());
        for (int i = 0; i < g.players(); i++) assertEquals(want.estimates().get(i).mean(), got.estimates().get(i).mean(), 0);
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("resuming from 3"), err.toString());
    }

    @Test void progressAfterAResumeCountsOnlyThisRunsRate() throws Exception {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        Progress p = new Progress("x", 1_000_000, new PrintStream(b, true, StandardCharsets.UTF_8)).from(900_000);
        Thread.sleep(200);
        p.update(900_010);
        Matcher m = Pattern.compile(" ([0-9.]+)/s ETA").matcher(b.toString(StandardCharsets.UTF_8));
        assertTrue(m.find(), b.toString());
        double rate = Double.parseDouble(m.group(1));
        assertTrue(rate > 0 && rate <= 10 / 0.2, "10 evaluations in >= 0.2 s, not 900010: " + rate);
    }

    /**
     * SIGINT (Ctrl-C) while a batch takes a minute, as GPT-2 small's do on a CPU: the
     * run exits within seconds, says where its checkpoint is, and the checkpoint resumes to the unbroken result.
     */
    @Test void aSignalDuringALongStepWritesACheckpointPromptly() throws Exception {
        Path prefix = dir.resolve("sig");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        // two batches at full speed, then each batch sleeps 60 s
        Process p = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), ResumeChild.class.getName(),
                "tmc", prefix.toString(), "0", "60000", "2").redirectErrorStream(true).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String line;
        while ((line = out.readLine()) != null && !line.equals("running")) { }
        assertEquals("running", line);
        ShapleyConfig cfg = ResumeChild.config(Estimator.TMC, prefix, 0, 4, false);
        assertTrue(Files.exists(cfg.checkpointPath()), "a first checkpoint exists early: after the first step");
        long t0 = System.nanoTime();
        // Ctrl-C's SIGINT (Process.destroy would close the streams we read the message from)
        assertEquals(0, new ProcessBuilder("kill", "-INT", Long.toString(p.pid())).start().waitFor());
        StringBuilder rest = new StringBuilder();
        while ((line = out.readLine()) != null) rest.append(line).append('\n');
        assertTrue(p.waitFor(20, TimeUnit.SECONDS));
        assertEquals(130, p.exitValue(), rest.toString());
        double secs = (System.nanoTime() - t0) / 1e9;
        assertTrue(secs < 15, "exited " + secs + " s after the signal, not after the minute-long step");
        assertTrue(rest.toString().contains("checkpoint " + cfg.checkpointPath() + " written"), rest.toString());
        JsonNode ck = Json.readTree(cfg.checkpointPath());
        long at = ck.get("evaluations").asLong();
        assertTrue(at == 4 || at == 8, "the state after one or both full-speed batches of 4: " + at);
        ShapleyResult resumed = quiet(ResumeChild.game(), ResumeChild.config(Estimator.TMC, prefix, 0, 64, true), System.err).run();
        ShapleyResult unbroken = quiet(ResumeChild.game(), ResumeChild.config(Estimator.TMC, null, 0, 4, false), System.err).run();
        assertEquals(unbroken.evaluations(), resumed.evaluations());
        for (int i = 0; i < resumed.estimates().size(); i++)
            assertEquals(unbroken.estimates().get(i).mean(), resumed.estimates().get(i).mean(), 0);
    }
}
