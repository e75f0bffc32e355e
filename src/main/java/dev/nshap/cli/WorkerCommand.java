package dev.nshap.cli;

import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.core.LifecycleEvent;
import dev.nshap.scale.Members;
import dev.nshap.scale.Secret;
import dev.nshap.scale.Worker;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

@Command(name = "worker", mixinStandardHelpOptions = true,
        description = {"Join a cluster as a worker: evaluate the coalition batches a driver ('nshap shapley --cluster') sends.",
                "The model is loaded once; each game the driver describes is checked against it (weights and dataset SHA-256)."})
public final class WorkerCommand implements Callable<Integer> {
    @Option(names = "--join", required = true, paramLabel = "HOST:PORT[,...]",
            description = "members to join (the driver's address, or every node's)")
    String join;

    @Option(names = "--bind", defaultValue = "127.0.0.1",
            description = "interface to listen on (default: ${DEFAULT-VALUE}; a cluster across machines needs this node's address)")
    String bind;

    @Option(names = "--port", defaultValue = "" + Members.DEFAULT_PORT,
            description = "first port to try; the next free one is taken (default: ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--cluster-secret", paramLabel = "SECRET",
            description = "shared cluster secret (default: $" + Secret.ENV + "; prefer it: options show in ps)")
    String secret;

    @Option(names = "--join-timeout", defaultValue = "300",
            description = "seconds to keep trying to join before giving up (default: ${DEFAULT-VALUE})")
    double joinTimeout;

    @Mixin ModelOptions model;

    @Override public Integer call() throws InterruptedException {
        Secret s = Secret.require(secret);
        Members.Network net = new Members.Network(bind, port, Members.Network.parseAddresses(join, "--join"));
        Worker w = new Worker(s, model, System.err);
        if (model.model != null) w.model();          // load (and check) the model before joining
        HazelcastInstance hz = w.await(net, (long) (joinTimeout * 1000));
        CountDownLatch stopped = new CountDownLatch(1);
        hz.getLifecycleService().addLifecycleListener(e -> {
            if (e.getState() == LifecycleEvent.LifecycleState.SHUTDOWN) stopped.countDown();
        });
        HazelcastInstance member = hz;
        Runtime.getRuntime().addShutdownHook(new Thread(() -> member.getLifecycleService().terminate(), "nshap-worker-stop"));
        System.err.println("nshap worker: joined as " + hz.getCluster().getLocalMember().getAddress().getHost() + ":"
                + hz.getCluster().getLocalMember().getAddress().getPort() + " (" + hz.getCluster().getMembers().size() + " members)");
        stopped.await();
        return 0;
    }
}
