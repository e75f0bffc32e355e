package dev.nshap.scale;

import com.hazelcast.core.HazelcastInstance;
import dev.nshap.NshapException;
import dev.nshap.cli.ModelOptions;
import dev.nshap.cli.NeuronGameOptions;
import dev.nshap.eval.NeuronGame;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.shapley.Coalition;
import dev.nshap.shapley.Estimator;
import dev.nshap.shapley.Game;
import dev.nshap.shapley.ShapleyConfig;
import dev.nshap.shapley.ShapleyResult;
import dev.nshap.shapley.ShapleyRunner;
import dev.nshap.shapley.SyntheticGames;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.*;

/**
 * One JVM, three worker members and a driver on loopback: every estimator gives the bits of a one-process run,
 * also when a worker dies or hangs mid-run, when the driver is restarted from its checkpoint, and next to workers
 * that are refused (wrong secret, mismatched model).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ClusterRunTest {
    final Secret secret = Secret.random();
    final List<HazelcastInstance> members = new ArrayList<>();
    final List<Worker> workers = new ArrayList<>();
    final ByteArrayOutputStream errBytes = new ByteArrayOutputStream();
    final PrintStream err = new PrintStream(errBytes, true, StandardCharsets.UTF_8);
    HazelcastInstance driver;
    String first;
    Path dir, model, otherModel, data;
    ModelOptions modelOptions;

    static final ClusterEvaluators.Timing FAST = new ClusterEvaluators.Timing(20_000, 20_000, 3);

    @BeforeAll void start(@TempDir Path tmp) throws Exception {
        dir = tmp;
        GPT2Config cfg = TestModels.tinyConfig(GPT2Config.GPT2_VOCAB);
        model = dir.resolve("model");
        Checkpoint.write(model, TestModels.random(cfg, 21, 0.5f), "F32", Map.of());
        otherModel = dir.resolve("other");
        Checkpoint.write(otherModel, TestModels.random(cfg, 22, 0.5f), "F32", Map.of());
        data = dir.resolve("athlete.jsonl");
        Files.writeString(data, """
                {"id":"a1","topic":"athlete","prompt":"He played for the national","answer":" team","foil":" museum"}
                {"id":"a2","topic":"athlete","prompt":"She won a gold","answer":" medal","foil":" painting"}
                {"id":"a3","topic":"athlete","prompt":"The striker scored a late","answer":" goal","foil":" novel"}
                """);
        modelOptions = options(model);
        for (int i = 0; i < 3; i++) {
            Worker w = new Worker(secret, modelOptions, err);
            HazelcastInstance m = w.start(first == null ? Members.Network.loopback() : join());
            if (first == null) first = Members.address(m.getCluster().getLocalMember());
            members.add(m);
            workers.add(w);
        }
        driver = Members.start(secret, join(), true, null);
    }

    @AfterAll void stop() {
        if (driver != null) driver.getLifecycleService().terminate();
        for (HazelcastInstance m : members) m.getLifecycleService().terminate();
    }

    Members.Network join() { return Members.Network.loopback().joining(List.of(first)); }

    static ModelOptions options(Path dir) {
        ModelOptions o = new ModelOptions();
        o.model = dir;
        o.backend = "cpu";
        o.precision = "fp32";
        return o;
    }

    static Game synthetic() { return SyntheticGames.topKGame(40, 4, 6, 1.0, 3); }

    static ShapleyConfig config(Estimator e, Path out, long checkpointEvery, boolean resume) {
        return ShapleyConfig.builder(e).seed(77).budget(2500).topK(4).round(6).batch(5)
                .checkpointEvery(checkpointEvery).out(out).resume(resume).build();
    }

    static ShapleyResult local(Game g, ShapleyConfig cfg) {
        return new ShapleyRunner(g, cfg).progress(false).handleSignals(false).run();
    }

    ShapleyResult cluster(Game g, byte[] spec, ShapleyConfig cfg, ClusterEvaluators.Timing t) {
        try (ClusterEvaluators ce = ClusterEvaluators.attach(driver, secret, spec, g.players(), t, err)) {
            return new ShapleyRunner(g, cfg).evaluators(ce).progress(false).handleSignals(false).run();
        }
    }

    static void assertSame(ShapleyResult want, ShapleyResult got, String what) {
        assertEquals(want.evaluations(), got.evaluations(), what + ": evaluations");
        assertEquals(want.units(), got.units(), what + ": units");
        assertEquals(want.stopReason(), got.stopReason(), what + ": stop reason");
        assertTrue(want.stats().sameAs(got.stats()), what + ": statistics differ");
        for (int i = 0; i < want.estimates().size(); i++)
            assertEquals(want.estimates().get(i), got.estimates().get(i), what + ": player " + i);
    }

    @Test void everyEstimatorOnASyntheticGameGivesTheBitsOfOneProcess() {
        Game g = synthetic();
        byte[] spec = GameSpec.synthetic(g, 0);
        for (Estimator e : List.of(Estimator.PERMUTATION, Estimator.ANTITHETIC, Estimator.TMC, Estimator.TMAB)) {
            long[] before = workers.stream().mapToLong(Worker::coalitionsEvaluated).toArray();
            ShapleyResult want = local(g, config(e, null, 0, false));
            ShapleyResult got = cluster(g, spec, config(e, null, 0, false), FAST);
            assertSame(want, got, e.id());
            for (int i = 0; i < workers.size(); i++)
                assertTrue(workers.get(i).coalitionsEvaluated() > before[i], e.id() + ": worker " + i + " got no work");
        }
    }

    @Test void exactEnumerationToo() {
        Game g = SyntheticGames.topKGame(10, 3, 4, 1.0, 5);
        ShapleyConfig cfg = ShapleyConfig.builder(Estimator.EXACT).batch(16).build();
        ShapleyResult want = local(g, cfg), got = cluster(g, GameSpec.synthetic(g, 0), cfg, FAST);
        assertArrayEquals(want.means(), got.means(), 0.0);
        assertArrayEquals(g.exactValues(), got.means(), 1e-12);       // and they are the Shapley values
    }

    @Test void theNeuronGameOnATinyModelGivesTheBitsOfOneProcess() {
        NeuronGameOptions o = neuronOptions();
        NeuronGame g = o.build(modelOptions);
        byte[] spec = GameSpec.neurons(o, String.valueOf(g.describe().get("weights_sha256")));
        for (Estimator e : List.of(Estimator.PERMUTATION, Estimator.TMAB)) {
            ShapleyConfig cfg = ShapleyConfig.builder(e).seed(3).budget(150).topK(2).round(4).batch(4).build();
            assertSame(local(g, cfg), cluster(g, spec, cfg, FAST), "neurons " + e.id());
        }
    }

    NeuronGameOptions neuronOptions() {
        NeuronGameOptions o = new NeuronGameOptions();
        o.dataset = data;
        o.players = "blocks.0.mlp.hook_post[3],blocks.1.mlp.hook_post[5],blocks.1.mlp.hook_post[9],"
                + "blocks.1.mlp.hook_post[17],blocks.0.mlp.hook_post[40],blocks.1.mlp.hook_post[60]";
        o.groupSize = 1;
        o.metric = "loss";
        o.ablation = "mean";
        o.subsample = 2;
        o.maxTokens = 4096;
        return o;
    }

    /** An extra worker whose game runs {@code fault} on its {@code nth} call, before evaluating. */
    HazelcastInstance faultyWorker(int nth, Runnable fault) {
        AtomicInteger calls = new AtomicInteger();
        UnaryOperator<Game> wrap = g -> new Game() {
            @Override public int players() { return g.players(); }
            @Override public double[] values(List<Coalition> cs) {
                if (calls.incrementAndGet() == nth) fault.run();
                return g.values(cs);
            }
        };
        return new Worker(secret, modelOptions, err).wrapping(wrap).start(join());
    }

    @Test void aWorkerKilledMidRunChangesNothing() throws Exception {
        HazelcastInstance[] victim = new HazelcastInstance[1];
        victim[0] = faultyWorker(3, () -> {
            Thread t = new Thread(() -> victim[0].getLifecycleService().terminate());
            t.start();
            try { t.join(); Thread.sleep(60_000); } catch (InterruptedException ignored) { }
        });
        Game g = synthetic();
        ShapleyConfig cfg = config(Estimator.TMAB, null, 0, false);
        ClusterEvaluators.Timing t = new ClusterEvaluators.Timing(20_000, 20_000, 4);
        try (ClusterEvaluators ce = ClusterEvaluators.attach(driver, secret, GameSpec.synthetic(g, 0), g.players(), t, err)) {
            ShapleyResult got = new ShapleyRunner(g, cfg).evaluators(ce).progress(false).handleSignals(false).run();
            assertSame(local(g, cfg), got, "worker killed");
            assertTrue(ce.resubmitted() >= 1, "the dead worker's batch was sent again");
            assertEquals(3, ce.workers());
        } finally {
            victim[0].getLifecycleService().terminate();
        }
    }

    @Test void aHungWorkerTimesOutAndItsBatchGoesElsewhere() {
        HazelcastInstance hung = faultyWorker(2, () -> {
            try { Thread.sleep(120_000); } catch (InterruptedException ignored) { }
        });
        try {
            Game g = synthetic();
            ShapleyConfig cfg = config(Estimator.PERMUTATION, null, 0, false);
            ClusterEvaluators.Timing t = new ClusterEvaluators.Timing(3_000, 20_000, 4);
            try (ClusterEvaluators ce = ClusterEvaluators.attach(driver, secret, GameSpec.synthetic(g, 0), g.players(), t, err)) {
                ShapleyResult got = new ShapleyRunner(g, cfg).evaluators(ce).progress(false).handleSignals(false).run();
                assertSame(local(g, cfg), got, "worker hung");
                assertTrue(ce.resubmitted() >= 1);
                String hungAt = Members.address(hung.getCluster().getLocalMember());
                assertTrue(errBytes.toString(StandardCharsets.UTF_8).contains("worker " + hungAt + " did not answer within 3.0 s"));
            }
        } finally {
            hung.getLifecycleService().terminate();
        }
    }

    @Test void theDriverResumesFromItsCheckpointWithTheSameWorkers() {
        Game g = synthetic();
        Path unbroken = dir.resolve("unbroken"), broken = dir.resolve("broken");
        ShapleyResult want = local(g, config(Estimator.TMAB, unbroken, 200, false));
        byte[] spec = GameSpec.synthetic(g, 0);
        // first driver: its own member, stopped (as by a crash) after a periodic checkpoint
        ClusterEvaluators first = ClusterEvaluators.connect(secret, join(), spec, g.players(), FAST, err);
        assertThrows(ShapleyRunner.Interrupted.class, () -> new ShapleyRunner(g, config(Estimator.TMAB, broken, 200, false))
                .evaluators(first).stopWhen(n -> n >= 900).progress(false).handleSignals(false).run());
        first.driverMember().getLifecycleService().terminate();
        assertTrue(Files.exists(broken.resolveSibling("broken.ckpt.json")));
        // a new driver member joins the same workers and resumes
        try (ClusterEvaluators again = ClusterEvaluators.connect(secret, join(), spec, g.players(), FAST, err)) {
            ShapleyResult got = new ShapleyRunner(g, config(Estimator.TMAB, broken, 200, true)).evaluators(again)
                    .progress(false).handleSignals(false).run();
            assertSame(want, got, "resumed on the cluster");
        }
    }

    @Test void aWorkerWithTheWrongSecretCannotJoin() {
        Worker w = new Worker(Secret.random(), modelOptions, err);
        NshapException e = assertThrows(NshapException.class, () -> w.start(join()));
        assertTrue(e.getMessage().startsWith("could not join " + first), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
    }

    @Test void impostorAndMismatchedModelAreRefusedAndTheRunStillMatches() {
        // knows the cluster name (so Hazelcast lets it in) but not the secret: its answers are unsigned
        HazelcastInstance impostor = new Worker(Secret.random(), modelOptions, err).start(secret.clusterName(), join());
        // the right secret, another model: refuses the neuron game, naming both SHA-256
        HazelcastInstance mismatched = new Worker(secret, options(otherModel), err).start(join());
        try {
            NeuronGameOptions o = neuronOptions();
            NeuronGame g = o.build(modelOptions);
            byte[] spec = GameSpec.neurons(o, String.valueOf(g.describe().get("weights_sha256")));
            ShapleyConfig cfg = ShapleyConfig.builder(Estimator.PERMUTATION).seed(5).permutations(3).batch(4).build();
            ClusterEvaluators.Timing t = new ClusterEvaluators.Timing(20_000, 20_000, 3);
            try (ClusterEvaluators ce = ClusterEvaluators.attach(driver, secret, spec, g.players(), t, err)) {
                assertEquals(3, ce.workers());
                assertSame(local(g, cfg), new ShapleyRunner(g, cfg).evaluators(ce).progress(false).handleSignals(false).run(),
                        "next to refused workers");
            }
            String log = errBytes.toString(StandardCharsets.UTF_8);
            String impostorAt = Members.address(impostor.getCluster().getLocalMember());
            String mismatchedAt = Members.address(mismatched.getCluster().getLocalMember());
            assertTrue(log.contains("worker " + impostorAt + " refused the game: answered without this cluster's signature"), log);
            assertTrue(log.lines().anyMatch(l -> l.startsWith("nshap: worker " + mismatchedAt + " refused the game: model mismatch")
                    && l.contains(String.valueOf(g.describe().get("weights_sha256")))), log);
        } finally {
            impostor.getLifecycleService().terminate();
            mismatched.getLifecycleService().terminate();
        }
    }
}
