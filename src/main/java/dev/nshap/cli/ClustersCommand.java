package dev.nshap.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.NshapException;
import dev.nshap.cluster.Cluster;
import dev.nshap.cluster.ClusterExport;
import dev.nshap.model.Checkpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;

@Command(name = "clusters", mixinStandardHelpOptions = true,
        description = "Neuron clusters: export them from a GPT-2 neuron Shapley run, show them.",
        subcommands = {ClustersCommand.Export.class, ClustersCommand.Show.class})
public final class ClustersCommand implements Runnable {

    @Override public void run() {
        new picocli.CommandLine(this).usage(System.out);
    }

    @Command(name = "export", mixinStandardHelpOptions = true,
            description = "Write a cluster file from a 'nshap shapley --dataset ...' result, choosing neurons by one rule.")
    static final class Export implements Callable<Integer> {
        @Option(names = "--from", required = true, paramLabel = "RUN.json", description = "the shapley result (PREFIX.json)")
        Path from;

        @Option(names = "--top-k", defaultValue = "0", description = "the K neurons of highest value")
        int topK;

        @Option(names = "--per-layer-fraction", defaultValue = "0", description = "the top fraction F of each layer's neurons in play")
        double perLayerFraction;

        @Option(names = "--min-value", description = "every neuron of value at least V")
        Double minValue;

        @Option(names = "--model", paramLabel = "DIR", description = "also check the cluster fits this checkpoint (layers, width, weights)")
        Path model;

        @Option(names = "--out", required = true, description = "cluster file to write")
        Path out;

        @Override public Integer call() {
            Cluster c = ClusterExport.export(from, new ClusterExport.Rule(topK, perLayerFraction, minValue));
            if (model != null) {
                Checkpoint.Layout lay = Checkpoint.inspect(model);
                c.checkFits(lay.config(), Checkpoint.sha256(model.resolve(Checkpoint.WEIGHTS)), model);
            }
            c.write(out);
            System.out.printf(Locale.ROOT, "wrote %s: %d neurons (topic %s, metric %s)%n", out, c.neurons().size(), c.topic(), c.metric());
            JsonNode un = c.provenance().get("players_unsettled");
            if (un != null)
                System.out.printf(Locale.ROOT, "%d of the %d players exported are unsettled: TMAB had not yet separated them from"
                        + " the rest of the top-k boundary%s%n", un.asInt(), c.provenance().path("players_selected").asInt(),
                        un.asInt() > 0 ? " (a larger --budget settles more)" : "");
            return 0;
        }
    }

    @Command(name = "show", mixinStandardHelpOptions = true, description = "Summarise a cluster file per layer.")
    static final class Show implements Callable<Integer> {
        @Parameters(paramLabel = "FILE") Path file;

        @Option(names = "--model", paramLabel = "DIR", description = "check the cluster fits this checkpoint (layers, width, weights)")
        Path model;

        @Option(names = "--top", defaultValue = "10", description = "neurons to list (default: ${DEFAULT-VALUE})")
        int top;

        @Override public Integer call() {
            if (!Files.isRegularFile(file)) throw new NshapException(file + ": no such cluster file");
            Cluster c = Cluster.read(file);
            if (model != null) {
                Checkpoint.Layout lay = Checkpoint.inspect(model);
                c.checkFits(lay.config(), Checkpoint.sha256(model.resolve(Checkpoint.WEIGHTS)), file);
            }
            show(c, file, System.out, top);
            if (model != null) System.out.println("fits " + model);
            return 0;
        }
    }

    static void show(Cluster c, Path file, PrintStream out, int top) {
        String sha = c.model().weightsSha256();
        out.printf(Locale.ROOT, "%s: topic '%s', metric %s, %d neurons%n", file, c.topic(), c.metric(), c.neurons().size());
        out.printf(Locale.ROOT, "model %s (%d layers x %d neurons, weights sha256 %s)%n", c.model().name(),
                c.model().nLayer(), c.model().dMlp(), sha == null || sha.isEmpty() ? "?" : sha.substring(0, Math.min(12, sha.length())));
        JsonNode p = c.provenance();
        if (p != null && p.has("source"))
            out.printf(Locale.ROOT, "from %s (%s, %s evaluations, rule %s)%n", p.path("source").asText(),
                    p.path("estimator").asText("?"), p.path("evaluations").asText("?"), p.path("rule").toString());
        Map<Integer, List<Cluster.Member>> byLayer = new TreeMap<>();
        for (Cluster.Member m : c.neurons()) byLayer.computeIfAbsent(m.id().layer(), k -> new ArrayList<>()).add(m);
        out.println("layer  neurons  share    sum value   mean value   best neuron");
        for (Map.Entry<Integer, List<Cluster.Member>> e : byLayer.entrySet()) {
            double sum = 0;
            Cluster.Member best = null;
            for (Cluster.Member m : e.getValue()) {
                sum += m.value();
                if (best == null || m.value() > best.value()) best = m;
            }
            out.printf(Locale.ROOT, "%5d  %7d  %5.1f%%  %11.4g  %11.4g   %s%n", e.getKey(), e.getValue().size(),
                    100.0 * e.getValue().size() / c.model().dMlp(), sum, sum / e.getValue().size(), best.id());
        }
        List<Cluster.Member> sorted = new ArrayList<>(c.neurons());
        sorted.sort(Comparator.comparingDouble((Cluster.Member m) -> -m.value()).thenComparing(Cluster.Member::id));
        out.println("top neurons:");
        for (int i = 0; i < Math.min(top, sorted.size()); i++) {
            Cluster.Member m = sorted.get(i);
            out.printf(Locale.ROOT, "  %-32s value %11.5g  CI [%.5g, %.5g]%n", m.id(), m.value(), m.ciLow(), m.ciHigh());
        }
    }
}
