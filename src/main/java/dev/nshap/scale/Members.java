package dev.nshap.scale;

import com.hazelcast.cluster.Member;
import com.hazelcast.config.AdvancedNetworkConfig;
import com.hazelcast.config.Config;
import com.hazelcast.config.ExecutorConfig;
import com.hazelcast.config.InterfacesConfig;
import com.hazelcast.config.JavaSerializationFilterConfig;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.ServerSocketEndpointConfig;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import dev.nshap.NshapException;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Starts the embedded Hazelcast members of a run: the driver (a lite member: it owns no data and runs no task)
 * and the workers. Everything not needed is off: no multicast, no auto-detection, no phone-home, no client
 * endpoint (only the member protocol listens), Java deserialization filtered to Hazelcast's whitelist (tasks use
 * nshap's own {@link NshapTask} factory; results are byte arrays), small thread pools, and timeouts of seconds.
 */
public final class Members {
    public static final String EXECUTOR = "nshap";
    static final String WORKER_KEY = "nshap.worker";
    static final int FACTORY_ID = 0x6e736870;   // "nshp"
    public static final int DEFAULT_PORT = 5701;

    /** Hazelcast logs through java.util.logging; a strong reference keeps the level set (JUL holds loggers weakly). */
    private static final Logger HZ_LOG = Logger.getLogger("com.hazelcast");

    static {
        String level = System.getenv("NSHAP_HAZELCAST_LOG");   // e.g. INFO when debugging a cluster
        HZ_LOG.setLevel(level == null ? Level.OFF : Level.parse(level.toUpperCase(java.util.Locale.ROOT)));
    }

    /**
     * Where a member listens and whom it contacts first.
     *
     * @param bind the interface to listen on (loopback by default)
     * @param port the first port to try; the next free one is taken when it is busy (several members on one host)
     * @param join HOST:PORT of other members; empty for the first member of a local cluster
     */
    public record Network(String bind, int port, List<String> join) {
        public Network {
            join = List.copyOf(join);
            if (port < 1 || port > 65535) throw new NshapException("--port must be in 1..65535");
        }

        public static Network loopback() { return new Network("127.0.0.1", DEFAULT_PORT, List.of()); }

        /** Parses HOST:PORT[,HOST:PORT...]. */
        public static List<String> parseAddresses(String s, String option) {
            List<String> out = new ArrayList<>();
            for (String a : s.split(",")) {
                a = a.trim();
                int c = a.lastIndexOf(':');
                if (c <= 0 || c == a.length() - 1)
                    throw new NshapException(option + ": '" + a + "' is not HOST:PORT");
                try {
                    int p = Integer.parseInt(a.substring(c + 1));
                    if (p < 1 || p > 65535) throw new NumberFormatException();
                } catch (NumberFormatException e) {
                    throw new NshapException(option + ": '" + a + "' has no valid port");
                }
                out.add(a);
            }
            if (out.isEmpty()) throw new NshapException(option + ": no address given");
            return out;
        }

        public Network joining(List<String> members) { return new Network(bind, port, members); }
    }

    private Members() {}

    static Config config(Secret secret, Network net, boolean lite, Worker worker) {
        return config(secret.clusterName(), net, lite, worker);
    }

    /** With a cluster name of the caller's choosing: tests start an impostor that knows the name but not the secret. */
    static Config config(String clusterName, Network net, boolean lite, Worker worker) {
        Config c = new Config();
        c.setClusterName(clusterName);
        c.setInstanceName("nshap-" + (lite ? "driver-" : "worker-") + System.nanoTime());
        c.setLiteMember(lite);
        Map<String, String> p = Map.ofEntries(
                Map.entry("hazelcast.phone.home.enabled", "false"),
                Map.entry("hazelcast.logging.type", "jdk"),
                Map.entry("hazelcast.shutdownhook.enabled", "false"),   // the driver checkpoints on SIGTERM first
                Map.entry("hazelcast.wait.seconds.before.join", "0"),
                Map.entry("hazelcast.max.join.seconds", "60"),   // past it a member fails to start: generous on a loaded machine
                Map.entry("hazelcast.heartbeat.interval.seconds", "1"),
                Map.entry("hazelcast.max.no.heartbeat.seconds", "10"),
                Map.entry("hazelcast.merge.first.run.delay.seconds", "5"),
                Map.entry("hazelcast.merge.next.run.delay.seconds", "5"),
                Map.entry("hazelcast.graceful.shutdown.max.wait", "5"),
                Map.entry("hazelcast.partition.count", "7"),
                Map.entry("hazelcast.operation.thread.count", "2"),
                Map.entry("hazelcast.operation.generic.thread.count", "2"),
                Map.entry("hazelcast.event.thread.count", "1"),
                Map.entry("hazelcast.io.thread.count", "1"),
                Map.entry("hazelcast.clientengine.thread.count", "1"),
                Map.entry("hazelcast.health.monitoring.level", "OFF"),
                Map.entry("hazelcast.socket.bind.any", "false"),
                Map.entry("hazelcast.socket.server.bind.any", "false"),
                Map.entry("hazelcast.local.localAddress", net.bind()),
                Map.entry("hazelcast.tcp.join.port.try.count", "1"));
        p.forEach(c::setProperty);
        c.getJetConfig().setEnabled(false);

        AdvancedNetworkConfig an = c.getAdvancedNetworkConfig().setEnabled(true);
        ServerSocketEndpointConfig member = new ServerSocketEndpointConfig();
        member.setPort(net.port()).setPortAutoIncrement(true).setPortCount(100);
        member.setInterfaces(new InterfacesConfig().setEnabled(true).addInterface(net.bind()));
        member.setSocketConnectTimeoutSeconds(2);
        an.setMemberEndpointConfig(member);                     // and no client, REST or memcache endpoint
        JoinConfig join = an.getJoin();
        join.getMulticastConfig().setEnabled(false);
        join.getAutoDetectionConfig().setEnabled(false);
        join.getTcpIpConfig().setEnabled(true).setConnectionTimeoutSeconds(2).setMembers(new ArrayList<>(net.join()));

        c.getSerializationConfig().addDataSerializableFactory(FACTORY_ID,
                id -> id == NshapTask.CLASS_ID ? new NshapTask() : null);
        // Java deserialization only of what Hazelcast itself sends (its exceptions): its default whitelist
        // (Hazelcast's and the JDK's classes) and blacklist of known gadget classes. nshap's tasks never use it.
        c.getSerializationConfig().setJavaSerializationFilterConfig(new JavaSerializationFilterConfig());
        // One task at a time per member: a worker is one GPU (or one CPU backend) and its game is not thread-safe.
        c.addExecutorConfig(new ExecutorConfig(EXECUTOR).setPoolSize(1).setStatisticsEnabled(false));
        if (worker != null) c.getUserContext().put(WORKER_KEY, worker);
        return c;
    }

    static HazelcastInstance start(Secret secret, Network net, boolean lite, Worker worker) {
        return start(config(secret, net, lite, worker), net);
    }

    static HazelcastInstance start(Config config, Network net) {
        try {
            return Hazelcast.newHazelcastInstance(config);
        } catch (RuntimeException e) {
            Throwable root = e;
            while (root.getCause() != null && root.getCause() != root) root = root.getCause();
            throw new NshapException("could not start a cluster member on " + net.bind() + ":" + net.port() + ": "
                    + oneLine(e) + (root == e ? "" : " (" + root.getClass().getSimpleName() + ": " + oneLine(root) + ")"));
        }
    }

    /** The workers (full members) of the cluster this member sees. */
    static List<Member> workers(HazelcastInstance hz) {
        List<Member> out = new ArrayList<>();
        for (Member m : hz.getCluster().getMembers()) if (!m.isLiteMember()) out.add(m);
        return out;
    }

    static String address(Member m) { return m.getAddress().getHost() + ":" + m.getAddress().getPort(); }

    static String oneLine(Throwable e) {
        String m = e.getMessage();
        return (m == null ? e.getClass().getSimpleName() : m).replace('\n', ' ');
    }
}
