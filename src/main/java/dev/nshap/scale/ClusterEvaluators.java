package dev.nshap.scale;

import com.hazelcast.cluster.Member;
import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import com.hazelcast.core.ExecutionCallback;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.core.IExecutorService;
import dev.nshap.NshapException;
import dev.nshap.cli.ModelOptions;
import dev.nshap.shapley.Coalition;
import dev.nshap.shapley.Evaluators;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;

/**
 * The driver's side of a cluster run: the coalitions the runner gathers for one step are cut into one chunk per
 * worker and sent with Hazelcast's executor service; the step returns when every chunk has its values. A chunk
 * whose worker leaves, hangs past the task timeout, refuses it or answers unsigned is sent again to another worker
 * (it is named by its step and its coalitions' permutations, and a value is a pure function of (members, seed), so
 * which worker computes it never changes a bit). Workers that join later are prepared and used from the next step.
 */
public final class ClusterEvaluators implements Evaluators {

    /** Driver settings: how long one chunk may take, how long to wait for workers, how many to wait for. */
    public record Timing(long taskTimeoutMs, long joinTimeoutMs, int minWorkers) {
        public static Timing defaults() { return new Timing(600_000, 300_000, 1); }
    }

    private final HazelcastInstance hz;
    private final List<HazelcastInstance> owned;
    private final Secret secret;
    private final byte[] spec;
    private final String specId;
    private final int players;
    private final Timing timing;
    private final PrintStream err;
    private final IExecutorService exec;
    private final Map<UUID, Member> accepted = new LinkedHashMap<>();
    private final Set<UUID> excluded = new HashSet<>();
    private final Map<String, Long> byWorker = new LinkedHashMap<>();
    private final List<Worker> localWorkers = new ArrayList<>();
    private volatile boolean membershipChanged = true;
    private long nextTaskId = 1, step, resubmitted;
    private String lastProblem = "none";

    private ClusterEvaluators(HazelcastInstance hz, List<HazelcastInstance> owned, Secret secret, byte[] spec,
                              int players, Timing timing, PrintStream err) {
        this.hz = hz;
        this.owned = owned;
        this.secret = secret;
        this.spec = spec;
        this.specId = GameSpec.id(spec);
        this.players = players;
        this.timing = timing;
        this.err = err;
        this.exec = hz.getExecutorService(Members.EXECUTOR);
        hz.getCluster().addMembershipListener(new MembershipListener() {
            @Override public void memberAdded(MembershipEvent e) { membershipChanged = true; }
            @Override public void memberRemoved(MembershipEvent e) { membershipChanged = true; }
        });
    }

    /** Joins a cluster of workers started elsewhere ({@code nshap worker}) as its driver, and waits for workers. */
    public static ClusterEvaluators connect(Secret secret, Members.Network net, byte[] spec, int players, Timing timing,
                                            PrintStream err) {
        HazelcastInstance hz = Members.start(secret, net, true, null);
        ClusterEvaluators ce = new ClusterEvaluators(hz, List.of(hz), secret, spec, players, timing, err);
        try {
            ce.awaitWorkers(timing.minWorkers());
        } catch (RuntimeException e) {
            ce.close();
            throw e;
        }
        return ce;
    }

    /** A driver on a member the caller owns (tests run several games on one cluster); close() leaves it running. */
    static ClusterEvaluators attach(HazelcastInstance driver, Secret secret, byte[] spec, int players, Timing timing,
                                    PrintStream err) {
        ClusterEvaluators ce = new ClusterEvaluators(driver, List.of(), secret, spec, players, timing, err);
        ce.awaitWorkers(timing.minWorkers());
        return ce;
    }

    /**
     * Starts {@code count} workers in this process (loopback, a fresh random secret) and a driver: for testing a
     * cluster on one machine. {@code wrap} wraps each worker's game (fault injection in tests; identity otherwise).
     */
    public static ClusterEvaluators local(int count, ModelOptions model, byte[] spec, int players, Timing timing,
                                          PrintStream err, UnaryOperator<dev.nshap.shapley.Game> wrap) {
        if (count < 1) throw new NshapException("--workers must be at least 1");
        Secret s = Secret.random();
        List<HazelcastInstance> owned = new ArrayList<>();
        List<Worker> ws = new ArrayList<>();
        try {
            Members.Network net = Members.Network.loopback();
            String first = null;
            for (int i = 0; i < count; i++) {
                Worker w = new Worker(s, model, err).wrapping(wrap);
                HazelcastInstance m = w.start(first == null ? net : net.joining(List.of(first)));
                if (first == null) first = Members.address(m.getCluster().getLocalMember());
                owned.add(m);
                ws.add(w);
            }
            HazelcastInstance driver = Members.start(s, net.joining(List.of(first)), true, null);
            owned.add(0, driver);
            ClusterEvaluators ce = new ClusterEvaluators(driver, owned, s, spec, players,
                    new Timing(timing.taskTimeoutMs(), timing.joinTimeoutMs(), count), err);
            ce.localWorkers.addAll(ws);
            ce.awaitWorkers(count);
            return ce;
        } catch (RuntimeException e) {
            for (HazelcastInstance h : owned) h.getLifecycleService().terminate();
            throw e;
        }
    }

    /** The members started by {@link #local} (tests kill them). */
    public List<HazelcastInstance> ownedMembers() { return owned.isEmpty() ? owned : owned.subList(1, owned.size()); }
    public List<Worker> localWorkers() { return localWorkers; }
    public HazelcastInstance driverMember() { return hz; }
    /** Coalitions evaluated per worker address. */
    public Map<String, Long> coalitionsByWorker() { return byWorker; }
    /** Chunks sent again after a worker left, hung, refused or answered unsigned. */
    public long resubmitted() { return resubmitted; }
    public int workers() { return accepted.size(); }

    @Override public int gather(int batch) { return batch * Math.max(1, accepted.size()); }

    @Override public void close() {
        for (HazelcastInstance h : owned) {
            try { h.getLifecycleService().terminate(); } catch (RuntimeException ignored) { }
        }
    }

    // ---------------------------------------------------------------- workers

    private void awaitWorkers(int count) {
        long end = System.currentTimeMillis() + timing.joinTimeoutMs();
        while (true) {
            refresh();
            if (accepted.size() >= count) return;
            if (System.currentTimeMillis() > end)
                throw new NshapException((accepted.isEmpty() ? "no worker" : "only " + accepted.size() + " worker(s)")
                        + " ready after " + timing.joinTimeoutMs() / 1000 + " s (wanted " + count + "); last problem: "
                        + lastProblem);
            sleep(100);
        }
    }

    /** Forgets workers that left; prepares the ones that joined (in parallel), each once. */
    private void refresh() {
        if (!membershipChanged) return;
        membershipChanged = false;
        Map<UUID, Member> now = new HashMap<>();
        for (Member m : Members.workers(hz)) now.put(m.getUuid(), m);
        accepted.keySet().removeIf(u -> {
            if (now.containsKey(u)) return false;
            err.println("nshap: worker " + Members.address(accepted.get(u)) + " left the cluster");
            return true;
        });
        List<Member> fresh = new ArrayList<>();
        for (Member m : now.values()) if (!accepted.containsKey(m.getUuid()) && !excluded.contains(m.getUuid())) fresh.add(m);
        if (fresh.isEmpty()) return;
        BlockingQueue<Done> q = new LinkedBlockingQueue<>();
        long[] ids = new long[fresh.size()];
        for (int i = 0; i < fresh.size(); i++) {
            ids[i] = nextTaskId++;
            submit(new NshapTask(NshapTask.PREPARE, NshapTask.prepareBody(ids[i], spec), secret), fresh.get(i), i, 0, q);
        }
        long end = System.currentTimeMillis() + Math.max(timing.taskTimeoutMs(), timing.joinTimeoutMs());
        Set<Integer> waiting = new HashSet<>();
        for (int i = 0; i < fresh.size(); i++) waiting.add(i);
        while (!waiting.isEmpty()) {
            Done d = poll(q, end - System.currentTimeMillis());
            if (d == null) {
                for (int i : waiting) exclude(fresh.get(i), "did not answer the game's description in time");
                return;
            }
            if (!waiting.remove(d.chunk)) continue;
            Member m = fresh.get(d.chunk);
            String problem = problem(d, ids[d.chunk], 1);
            if (problem == null && (int) d.reply.values()[0] != players)
                problem = "built a game of " + (int) d.reply.values()[0] + " players, not " + players;
            if (problem != null) exclude(m, "refused the game: " + problem);
            else accepted.put(m.getUuid(), m);
        }
    }

    private void exclude(Member m, String why) {
        excluded.add(m.getUuid());
        accepted.remove(m.getUuid());
        lastProblem = "worker " + Members.address(m) + " " + why;
        err.println("nshap: " + lastProblem);
    }

    // ---------------------------------------------------------------- evaluation

    private record Done(int chunk, int attempt, NshapTask.Reply reply, Throwable failure) { }

    private final class Chunk {
        final int from, to;
        int attempt;
        long taskId, deadline;
        Member member;
        boolean done;

        Chunk(int from, int to) { this.from = from; this.to = to; }
    }

    @Override public double[] values(List<Coalition> coalitions) {
        int size = coalitions.size();
        double[] out = new double[size];
        if (size == 0) return out;
        step++;
        refresh();
        if (accepted.isEmpty()) awaitWorkers(1);
        int k = Math.min(accepted.size(), size);
        Chunk[] chunks = new Chunk[k];
        for (int i = 0; i < k; i++) chunks[i] = new Chunk((int) ((long) size * i / k), (int) ((long) size * (i + 1) / k));
        BlockingQueue<Done> q = new LinkedBlockingQueue<>();
        List<Member> ws = new ArrayList<>(accepted.values());
        for (int i = 0; i < k; i++) send(chunks[i], i, ws.get(i), coalitions, q);
        int remaining = k;
        while (remaining > 0) {
            long now = System.currentTimeMillis(), next = Long.MAX_VALUE;
            for (Chunk c : chunks) if (!c.done) next = Math.min(next, c.deadline);
            Done d = poll(q, next - now);
            if (d == null) {
                for (int i = 0; i < k; i++) {
                    Chunk c = chunks[i];
                    if (c.done || c.deadline > System.currentTimeMillis()) continue;
                    exclude(c.member, "did not answer within " + timing.taskTimeoutMs() / 1000.0 + " s (hung?)");
                    resend(chunks, i, coalitions, q);
                }
                continue;
            }
            Chunk c = chunks[d.chunk];
            if (c.done || d.attempt != c.attempt) continue;          // a late answer to a chunk already sent again
            String problem = problem(d, c.taskId, c.to - c.from);
            if (problem != null) {
                if (hz.getCluster().getMembers().contains(c.member)) exclude(c.member, problem);
                else {
                    accepted.remove(c.member.getUuid());
                    lastProblem = "worker " + Members.address(c.member) + " left during a task";
                    err.println("nshap: " + lastProblem);
                }
                resend(chunks, d.chunk, coalitions, q);
                continue;
            }
            System.arraycopy(d.reply.values(), 0, out, c.from, c.to - c.from);
            byWorker.merge(Members.address(c.member), (long) (c.to - c.from), Long::sum);
            c.done = true;
            remaining--;
        }
        return out;
    }

    /** Why an answer cannot be used, or null. */
    private String problem(Done d, long taskId, int values) {
        if (d.failure != null) return Members.oneLine(d.failure);
        if (d.reply == null) return "answered without this cluster's signature (wrong secret?)";
        if (d.reply.refusal() != null) return d.reply.refusal();
        if (d.reply.taskId() != taskId) return "answered another task";
        if (d.reply.values().length != values) return "returned " + d.reply.values().length + " values for " + values;
        return null;
    }

    private void resend(Chunk[] chunks, int index, List<Coalition> coalitions, BlockingQueue<Done> q) {
        Chunk c = chunks[index];
        resubmitted++;
        refresh();
        if (accepted.isEmpty()) {
            try {
                awaitWorkers(1);
            } catch (NshapException e) {
                throw new NshapException("no worker left to evaluate step " + step + " on; last problem: " + lastProblem);
            }
        }
        // the worker with the fewest chunks of this step still open
        Map<UUID, Integer> load = new HashMap<>();
        for (Member m : accepted.values()) load.put(m.getUuid(), 0);
        for (Chunk o : chunks) if (!o.done && o != c && load.containsKey(o.member.getUuid())) load.merge(o.member.getUuid(), 1, Integer::sum);
        Member best = null;
        for (Member m : accepted.values()) if (best == null || load.get(m.getUuid()) < load.get(best.getUuid())) best = m;
        err.println("nshap: step " + step + ": coalitions " + c.from + ".." + (c.to - 1) + " (permutations "
                + coalitions.get(c.from).unit() + ".." + coalitions.get(c.to - 1).unit() + ") sent again to "
                + Members.address(best));
        send(c, index, best, coalitions, q);
    }

    private void send(Chunk c, int index, Member m, List<Coalition> coalitions, BlockingQueue<Done> q) {
        c.attempt++;
        c.taskId = nextTaskId++;
        c.member = m;
        c.deadline = System.currentTimeMillis() + timing.taskTimeoutMs();
        byte[] body = NshapTask.evaluateBody(c.taskId, specId, players, coalitions.subList(c.from, c.to));
        submit(new NshapTask(NshapTask.EVALUATE, body, secret), m, index, c.attempt, q);
    }

    private void submit(NshapTask t, Member m, int index, int attempt, BlockingQueue<Done> q) {
        try {
            exec.submitToMember(t, m, new ExecutionCallback<byte[]>() {
                @Override public void onResponse(byte[] r) {
                    q.add(new Done(index, attempt, NshapTask.Reply.parse(r, secret), null));
                }
                @Override public void onFailure(Throwable t) { q.add(new Done(index, attempt, null, t)); }
            });
        } catch (RuntimeException e) {
            q.add(new Done(index, attempt, null, e));
        }
    }

    private static Done poll(BlockingQueue<Done> q, long ms) {
        try {
            return q.poll(Math.max(1, ms), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new NshapException("interrupted while waiting for workers");
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new NshapException("interrupted while waiting for workers");
        }
    }
}
