package dev.nshap.scale;

import com.fasterxml.jackson.databind.JsonNode;
import com.hazelcast.core.HazelcastInstance;
import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.cli.ModelOptions;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import dev.nshap.shapley.Game;

import java.io.PrintStream;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.UnaryOperator;

/**
 * A worker member: it loads the model once (on the first neuron game), builds the game the driver describes,
 * checks that it is the same game (model weights and dataset by SHA-256), and evaluates coalition batches of it.
 * Every task is checked against the cluster secret before anything in it is decoded; every reply is signed.
 */
public final class Worker {
    private final Secret secret;
    private final ModelOptions modelOptions;
    private final PrintStream err;
    private UnaryOperator<Game> wrap = UnaryOperator.identity();
    private Checkpoint.LoadedModel model;
    private Backend backend;
    private String specId;
    private Game game;
    private final AtomicLong coalitions = new AtomicLong();

    public Worker(Secret secret, ModelOptions modelOptions, PrintStream err) {
        this.secret = secret;
        this.modelOptions = modelOptions == null ? new ModelOptions() : modelOptions;
        if (this.modelOptions.backend == null) this.modelOptions.backend = "cpu";
        if (this.modelOptions.precision == null) this.modelOptions.precision = "fp32";
        this.err = err;
    }

    /** Test hook: wraps every game this worker builds (fault injection). */
    public Worker wrapping(UnaryOperator<Game> w) { wrap = w; return this; }

    /** Coalitions this worker has evaluated. */
    public long coalitionsEvaluated() { return coalitions.get(); }

    /** Joins the cluster; throws (one line) when no other member answered within the join time. */
    public HazelcastInstance start(Members.Network net) {
        return start(secret.clusterName(), net);
    }

    /**
     * Starts a member and waits until another one is in its cluster. A member that stays alone is restarted after
     * about 30 s, then about every 60 s (jittered), so that it finds a driver that came up later in a cluster of its own (Hazelcast would merge the
     * two clusters too, but its merge is slow and not guaranteed). Throws (one line) when nobody came within the
     * timeout: nobody there, or only members of another secret.
     */
    public HazelcastInstance await(Members.Network net, long timeoutMs) {
        long end = System.currentTimeMillis() + timeoutMs, alone = 30_000;
        while (true) {
            HazelcastInstance hz;
            try {
                hz = Members.start(Members.config(secret, net, false, this), net);
            } catch (NshapException e) {                // e.g. the join took too long: try again until the deadline
                if (System.currentTimeMillis() >= end) throw e;
                continue;
            }
            // jittered, so that workers started together do not keep missing each other; longer each time
            long retry = Math.min(end, System.currentTimeMillis() + (long) (alone * (0.5 + Math.random())));
            alone = Math.min(60_000, 2 * alone);
            try {
                while (hz.getCluster().getMembers().size() < 2 && System.currentTimeMillis() < retry) Thread.sleep(200);
            } catch (InterruptedException e) {
                hz.getLifecycleService().terminate();
                Thread.currentThread().interrupt();
                throw notJoined(net);
            }
            if (hz.getCluster().getMembers().size() >= 2) return hz;
            hz.getLifecycleService().terminate();
            if (System.currentTimeMillis() >= end) throw notJoined(net);
        }
    }

    private static NshapException notJoined(Members.Network net) {
        return new NshapException("could not join " + String.join(",", net.join())
                + ": no member answered with this cluster's name (is the secret the same, is anyone there?)");
    }

    /** Joins under the given cluster name (tests: an impostor that knows the name but not the secret). */
    HazelcastInstance start(String clusterName, Members.Network net) {
        HazelcastInstance hz = Members.start(Members.config(clusterName, net, false, this), net);
        if (!net.join().isEmpty() && hz.getCluster().getMembers().size() < 2) {
            hz.getLifecycleService().terminate();
            throw notJoined(net);
        }
        return hz;
    }

    public synchronized Checkpoint.LoadedModel model() {
        if (model == null) model = modelOptions.load();
        return model;
    }

    synchronized Backend backend() {
        if (backend == null) backend = modelOptions.open(model().weights());
        return backend;
    }

    synchronized byte[] handle(NshapTask t) {
        if (t.body == null || !secret.verify(NshapTask.signed(t.kind, t.body), t.mac)) {
            err.println("nshap worker: refused a task not signed with this cluster's secret");
            return NshapTask.Reply.unsigned(-1, "task not signed with this worker's cluster secret");
        }
        long id = -1;
        try {
            if (t.kind == NshapTask.PREPARE) {
                NshapTask.Prepare p = NshapTask.readPrepare(t.body);
                id = p.taskId();
                String sid = GameSpec.id(p.spec());
                if (!sid.equals(specId)) {
                    JsonNode spec = Json.MAPPER.readTree(p.spec());
                    game = null;
                    specId = null;
                    game = wrap.apply(GameSpec.build(spec, this));
                    specId = sid;
                    err.println("nshap worker: ready for " + GameSpec.summary(spec) + " (" + game.players() + " players)");
                }
                return NshapTask.Reply.ok(id, new double[]{game.players()}, secret);
            }
            if (t.kind == NshapTask.EVALUATE) {
                NshapTask.Evaluate e = NshapTask.readEvaluate(t.body);
                id = e.taskId();
                if (game == null || !e.specId().equals(specId))
                    return NshapTask.Reply.refused(id, "this worker has not prepared game " + e.specId(), secret);
                if (e.players() != game.players())
                    return NshapTask.Reply.refused(id, "player count " + e.players() + " != " + game.players(), secret);
                double[] v = game.values(e.coalitions());
                coalitions.addAndGet(e.coalitions().size());
                return NshapTask.Reply.ok(id, v, secret);
            }
            return NshapTask.Reply.refused(id, "unknown task kind " + t.kind, secret);
        } catch (NshapException e) {
            err.println("nshap worker: refused: " + e.getMessage());
            return NshapTask.Reply.refused(id, e.getMessage(), secret);
        } catch (Exception e) {
            String why = e.getClass().getSimpleName() + ": " + Members.oneLine(e);
            err.println("nshap worker: failed: " + why);
            return NshapTask.Reply.refused(id, why, secret);
        }
    }
}
