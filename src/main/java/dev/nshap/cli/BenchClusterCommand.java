package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.bench.ClusterBench;
import dev.nshap.shapley.Estimator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.Arrays;
import java.util.List;

@Command(name = "cluster", mixinStandardHelpOptions = true,
        description = {"The cluster engine (shapley --cluster): driver overhead per 1,000 coalitions (cost 0, one worker"
                + " against in-process) and scaling efficiency over --workers on a synthetic game that sleeps --cost-ms"
                + " per coalition. Workers are members in this process over loopback TCP. Prints a markdown table."})
final class BenchClusterCommand implements Runnable {
    @Option(names = "--players", defaultValue = "50", description = "Default: ${DEFAULT-VALUE}.") int players;
    @Option(names = "--permutations", defaultValue = "40", description = "Default: ${DEFAULT-VALUE}.") long permutations;
    @Option(names = "--batch", defaultValue = "16", description = "coalitions per worker call. Default: ${DEFAULT-VALUE}.") int batch;
    @Option(names = "--cost-ms", defaultValue = "2", description = "sleep per coalition on a worker. Default: ${DEFAULT-VALUE}.") double costMs;
    @Option(names = "--workers", defaultValue = "1,2,4", split = ",", description = "Default: ${DEFAULT-VALUE}.") int[] workers;
    @Option(names = "--estimator", defaultValue = "permutation", description = "Default: ${DEFAULT-VALUE}.") String estimator;

    @Override public void run() {
        if (players < 2 || permutations < 1 || batch < 1 || !(costMs >= 0))
            throw new NshapException("--players >= 2, --permutations >= 1, --batch >= 1 and --cost-ms >= 0 are needed");
        for (int w : workers) if (w < 1) throw new NshapException("--workers must be positive");
        Estimator e = Estimator.parse(estimator);
        List<ClusterBench.Row> rows = ClusterBench.run(players, permutations, batch, costMs, workers, e, System.err);
        System.out.print(ClusterBench.table(rows, "cluster bench: " + e.id() + ", " + players + " players, " + permutations
                + " permutations, batch " + batch + ", workers " + Arrays.toString(workers) + "; " + ClusterBench.machine()));
    }
}
