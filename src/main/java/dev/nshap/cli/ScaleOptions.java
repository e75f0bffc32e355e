package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.scale.ClusterEvaluators;
import dev.nshap.scale.Members;
import dev.nshap.scale.Secret;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.util.function.UnaryOperator;

/** Where {@code nshap shapley} evaluates coalitions: here (default), on a cluster, or on local test workers. */
public final class ScaleOptions {
    @Option(names = "--cluster", paramLabel = "HOST:PORT[,...]",
            description = "run on a cluster of 'nshap worker' members: addresses to join (results identical to one process)")
    String cluster;

    @Option(names = "--workers", defaultValue = "0",
            description = "start N workers inside this process (a cluster on one machine, for testing)")
    int workers;

    @Option(names = "--cluster-secret", paramLabel = "SECRET",
            description = "shared cluster secret (default: $" + Secret.ENV + "; prefer it: options show in ps)")
    String secret;

    @Option(names = "--bind", defaultValue = "127.0.0.1",
            description = "interface the driver listens on (default: ${DEFAULT-VALUE})")
    String bind;

    @Option(names = "--port", defaultValue = "" + Members.DEFAULT_PORT,
            description = "first port the driver tries (default: ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--task-timeout", defaultValue = "600",
            description = "seconds a worker may take for one batch before it is deemed hung and the batch goes elsewhere (default: ${DEFAULT-VALUE})")
    double taskTimeout;

    @Option(names = "--join-timeout", defaultValue = "300",
            description = "seconds to wait for workers (default: ${DEFAULT-VALUE})")
    double joinTimeout;

    @Option(names = "--min-workers", defaultValue = "1",
            description = "workers to wait for before the run starts (default: ${DEFAULT-VALUE})")
    int minWorkers;

    public boolean selected() { return cluster != null || workers > 0; }

    /** The driver's engine for a game of this spec; the caller closes it. */
    public ClusterEvaluators open(byte[] spec, int players, ModelOptions model, PrintStream err) {
        if (cluster != null && workers > 0) throw new NshapException("give either --cluster or --workers, not both");
        if (workers < 0) throw new NshapException("--workers must be positive");
        if (!(taskTimeout > 0) || !(joinTimeout > 0)) throw new NshapException("--task-timeout and --join-timeout must be positive");
        if (minWorkers < 1) throw new NshapException("--min-workers must be at least 1");
        ClusterEvaluators.Timing t = new ClusterEvaluators.Timing((long) (taskTimeout * 1000), (long) (joinTimeout * 1000), minWorkers);
        ClusterEvaluators ce = workers > 0
                ? ClusterEvaluators.local(workers, model, spec, players, t, err, UnaryOperator.identity())
                : ClusterEvaluators.connect(Secret.require(secret),
                        new Members.Network(bind, port, Members.Network.parseAddresses(cluster, "--cluster")), spec, players, t, err);
        err.println("[nshap] cluster: " + ce.workers() + " worker(s)");
        return ce;
    }
}
