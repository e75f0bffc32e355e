package dev.nshap.scale;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.cli.Main;
import dev.nshap.io.Json;
import dev.nshap.shapley.Estimator;
import dev.nshap.shapley.Game;
import dev.nshap.shapley.ShapleyConfig;
import dev.nshap.shapley.ShapleyResult;
import dev.nshap.shapley.ShapleyRunner;
import dev.nshap.shapley.SyntheticGames;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Three {@code nshap worker} processes on loopback: {@code nshap shapley --cluster} writes the result file of a
 * one-process run, a worker killed with SIGKILL mid-run changes nothing, and a worker with the wrong secret exits
 * with one line.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ClusterProcessTest {
    static final String SECRET = "process-test-secret";
    final List<Process> workers = new ArrayList<>();
    final List<Integer> ports = new ArrayList<>();
    int driverPort;
    Path dir;

    static int nextPort = 20000 + new java.util.Random().nextInt(8000);

    /**
     * A free port below Linux's ephemeral range (32768-60999): a port from that range may be taken as the source
     * port of the members' own outgoing connection attempts before its member binds it.
     */
    static synchronized int freePort() throws IOException {
        while (true) {
            int p = nextPort++;
            try (ServerSocket s = new ServerSocket(p, 1, java.net.InetAddress.getLoopbackAddress())) {
                return s.getLocalPort();
            } catch (IOException busy) {
                if (nextPort > 32000) throw busy;
            }
        }
    }

    Process worker(int port, String join, String secret, double joinTimeout, Path log) throws IOException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        ProcessBuilder pb = new ProcessBuilder(java, "--add-modules", "jdk.incubator.vector", "-Xmx256m",
                "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
                Main.class.getName(), "worker", "--join", join, "--port", Integer.toString(port),
                "--join-timeout", Double.toString(joinTimeout));
        pb.environment().put(Secret.ENV, secret);
        return pb.redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    @BeforeAll void start(@TempDir Path tmp) throws IOException {
        dir = tmp;
        driverPort = freePort();
        for (int i = 0; i < 3; i++) ports.add(freePort());
        // every member lists every other one, as the Slurm script does: workers form their cluster before the driver comes
        String all = "127.0.0.1:" + driverPort + "," + clusterAddresses();
        for (int i = 0; i < 3; i++) workers.add(worker(ports.get(i), all, SECRET, 600, dir.resolve("worker" + i + ".log")));
    }

    @AfterAll void stop() throws InterruptedException {
        for (Process p : workers) p.destroy();
        for (Process p : workers) if (!p.waitFor(10, TimeUnit.SECONDS)) p.destroyForcibly();
    }

    String clusterAddresses() {
        List<String> a = new ArrayList<>();
        for (int p : ports) a.add("127.0.0.1:" + p);
        return String.join(",", a);
    }

    record Run(int code, String out, String err) {}

    static Run cli(String... args) {
        PrintStream o = System.out, e = System.err;
        ByteArrayOutputStream bo = new ByteArrayOutputStream(), be = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(bo, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(be, true, StandardCharsets.UTF_8));
            return new Run(Main.run(args), bo.toString(StandardCharsets.UTF_8), be.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
    }

    @Test void threeWorkerProcessesWriteTheResultOfOneProcessAndSurviveAKill() throws Exception {
        Game g = SyntheticGames.topKGame(30, 3, 5, 1.0, 9);
        Path game = dir.resolve("game.json");
        Json.writeFile(game, ((SyntheticGames.Synthetic) g).toJson());
        String[] common = {"shapley", "--game", game.toString(), "--estimator", "tmab", "--top-k", "3",
                "--budget", "1500", "--batch", "4", "--round", "6", "--seed", "11"};
        Run local = cli(concat(common, "--out", dir.resolve("local").toString()));
        assertEquals(0, local.code(), local.err());
        Run cl = cli(concat(common, "--out", dir.resolve("cluster").toString(), "--cluster", clusterAddresses(),
                "--port", Integer.toString(driverPort), "--min-workers", "3", "--join-timeout", "300",
                "--cluster-secret", SECRET));
        assertEquals(0, cl.code(), cl.err());
        assertTrue(cl.err().contains("[nshap] cluster: 3 worker(s)"), cl.err());
        JsonNode a = Json.readTree(dir.resolve("local.json")), b = Json.readTree(dir.resolve("cluster.json"));
        assertEquals(a.get("statistics"), b.get("statistics"));
        assertEquals(a.get("results"), b.get("results"));
        assertEquals(a.get("evaluations"), b.get("evaluations"));

        // SIGKILL one worker process while coalitions are in flight (each costs 3 ms on a worker)
        ShapleyConfig cfg = ShapleyConfig.builder(Estimator.PERMUTATION).seed(4).permutations(40).batch(6).build();
        ShapleyResult want = new ShapleyRunner(g, cfg).progress(false).handleSignals(false).run();
        ByteArrayOutputStream errBytes = new ByteArrayOutputStream();
        PrintStream err = new PrintStream(errBytes, true, StandardCharsets.UTF_8);
        Members.Network net = new Members.Network("127.0.0.1", freePort(), List.of(clusterAddresses().split(",")));
        try (ClusterEvaluators ce = ClusterEvaluators.connect(Secret.from(SECRET), net, GameSpec.synthetic(g, 3000),
                g.players(), new ClusterEvaluators.Timing(60_000, 300_000, 3), err)) {
            Process victim = workers.get(1);
            ShapleyResult got = new ShapleyRunner(g, cfg).evaluators(ce).progress(false).handleSignals(false)
                    .stopWhen(n -> {
                        if (n >= 200 && victim.isAlive()) victim.destroyForcibly();
                        return false;
                    }).run();
            assertFalse(victim.isAlive());
            ClusterRunTest.assertSame(want, got, "a worker process killed");
            assertEquals(2, ce.workers(), errBytes.toString(StandardCharsets.UTF_8));
        }
    }

    @Test void aWorkerProcessWithTheWrongSecretExitsWithOneLine() throws Exception {
        Path log = dir.resolve("wrong.log");
        Process p = worker(freePort(), "127.0.0.1:" + ports.get(0), "not-the-secret", 2, log);   // a real worker turns it away
        assertTrue(p.waitFor(300, TimeUnit.SECONDS));
        assertEquals(2, p.exitValue());
        List<String> lines = Files.readAllLines(log).stream().filter(l -> !l.startsWith("WARNING: Using incubator")).toList();
        assertEquals(1, lines.size(), String.join("\n", lines));
        assertTrue(lines.get(0).startsWith("nshap: could not join 127.0.0.1:"), lines.get(0));
    }

    static String[] concat(String[] a, String... b) {
        String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
