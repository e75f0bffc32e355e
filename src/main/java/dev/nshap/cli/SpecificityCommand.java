package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.cluster.Cluster;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.impair.Mode;
import dev.nshap.impair.RandomClusters;
import dev.nshap.impair.Results;
import dev.nshap.impair.Site;
import dev.nshap.impair.Specificity;
import dev.nshap.impair.Sweep;
import dev.nshap.impair.Target;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import dev.nshap.plot.Charts;
import dev.nshap.util.Progress;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

@Command(name = "specificity", mixinStandardHelpOptions = true,
        description = "Cluster topic x evaluation topic matrix of impairment effects, each cell also as a z-score against "
                + "random clusters with the same per-layer counts; flags each cluster as specific or not.")
public final class SpecificityCommand implements Runnable {
    @Mixin ModelOptions model;
    @Mixin ImpairOptions opt;

    @Option(names = "--clusters", required = true, split = ",", paramLabel = "FILE", description = "cluster files, comma-separated")
    List<Path> clusters;

    @Option(names = "--effect", defaultValue = "drop", description = "drop (metric drop at --level) | auc (area under the harm curve over --levels) (default: ${DEFAULT-VALUE})")
    String effect;

    @Option(names = "--level", description = "the level for --effect drop (default: the strongest: the last of --levels for noise, 0 for scale)")
    Double level;

    @Override public void run() {
        long t0 = System.nanoTime();
        opt.defaultBaseline = 10;
        opt.defaultMetrics = List.of("accuracy");
        opt.validate();
        if (opt.baseline() < 2) throw new NshapException("--baseline: specificity needs at least 2 random clusters for a z-score");
        if (!effect.equals("drop") && !effect.equals("auc")) throw new NshapException("--effect '" + effect + "': expected drop or auc");
        Mode mode = opt.mode();
        Site site = opt.site();
        List<Metric> metrics = opt.metrics();
        if (metrics.size() != 1) throw new NshapException("--metric: specificity scores one metric at a time (got " + metrics.size() + ")");
        Metric metric = metrics.get(0);
        double[] levels;
        int levelIndex;
        if (effect.equals("drop")) {
            double lv = level != null ? level : mode == Mode.SCALE ? 0.0 : max(opt.levels());
            levels = new double[]{lv};
            levelIndex = 0;
        } else {
            if (level != null) throw new NshapException("--level goes with --effect drop; --effect auc uses --levels");
            levels = opt.levels();
            if (levels.length < 2) throw new NshapException("--effect auc needs at least two --levels");
            levelIndex = -1;
        }
        if (clusters.isEmpty()) throw new NshapException("--clusters: no cluster given");
        List<Cluster> cls = new ArrayList<>();
        for (Path p : clusters) cls.add(Cluster.read(p));
        Checkpoint.LoadedModel m = model.load();
        site.checkFor(m.config());
        for (int i = 0; i < cls.size(); i++) cls.get(i).checkFits(m.config(), opt.allowOtherWeights ? null : m.weightsSha256(), clusters.get(i));
        List<TokenizedDataset> data = opt.loadDatasets(m);

        List<String> cNames = new ArrayList<>(), cTopics = new ArrayList<>(), dNames = new ArrayList<>(), dTopics = new ArrayList<>();
        for (int i = 0; i < cls.size(); i++) {
            String n = clusters.get(i).getFileName().toString().replaceFirst("\\.json$", "");
            if (cNames.contains(n)) throw new NshapException("--clusters: two clusters are named " + n);
            cNames.add(n);
            cTopics.add(cls.get(i).topic());
        }
        for (TokenizedDataset d : data) { dNames.add(d.dataset.name()); dTopics.add(d.dataset.topic()); }
        int[] own = new int[cls.size()];
        for (int i = 0; i < cls.size(); i++) own[i] = Specificity.ownIndex(cTopics.get(i), i, dTopics, dNames, cls.size());

        List<List<Target>> targets = new ArrayList<>();
        int width = site.kind().width(m.config());
        for (int i = 0; i < cls.size(); i++) {
            List<Target> t = new ArrayList<>();
            Target real = Target.ofCluster(cNames.get(i), cls.get(i), site);
            t.add(real);
            t.addAll(RandomClusters.sample(real, width, opt.baseline(), opt.baselineSeed + i));
            targets.add(t);
        }
        long total = 0;
        for (TokenizedDataset d : data) total += cls.size() * Sweep.work(1 + opt.baseline(), mode, levels.length, opt.seeds, d.size());
        Progress progress = new Progress("specificity", total);
        long[] done = {0};
        Specificity.Cell[][] cells = new Specificity.Cell[cls.size()][data.size()];
        long passes = 0;
        try (Backend be = model.open(m.weights())) {
            for (int j = 0; j < data.size(); j++) {
                Evaluator ev = new Evaluator(be, data.get(j), opt.maxTokens);
                for (int i = 0; i < cls.size(); i++) {
                    Sweep.Values v = Sweep.run(ev, targets.get(i), mode, levels, opt.seeds, opt.seed, metric, progress, done);
                    cells[i][j] = Specificity.cell(v, levelIndex);
                }
                passes += ev.forwardPasses();
            }
        }
        double wall = (System.nanoTime() - t0) / 1e9;

        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("format", Results.SPECIFICITY);
        ObjectNode c = o.putObject("config");
        ImpairOptions.describeModel(c, m, model);
        opt.describe(c, data);
        c.put("metric", metric.cliName);
        c.put("effect", effect.equals("drop") ? "drop" : "auc");
        if (levelIndex >= 0) c.put("level", levels[0]);
        c.put("effect_definition", (effect.equals("drop") ? "clean minus impaired at the level" : "area under (clean minus impaired) over the levels")
                + (metric.higherIsBetter ? "" : ", sign flipped for " + metric.cliName) + ": larger = more harm");
        c.put("specific_definition", "own-topic effect CI above every other topic's effect CI and above the random band (mean + 1.96 sd)");
        o.set("provenance", Results.provenance(wall, passes));
        ArrayNode cj = o.putArray("clusters");
        for (int i = 0; i < cls.size(); i++) {
            ObjectNode x = cj.addObject();
            x.put("name", cNames.get(i));
            x.put("file", clusters.get(i).toString());
            x.put("topic", cTopics.get(i));
            x.put("neurons", cls.get(i).neurons().size());
            x.put("own_dataset", dNames.get(own[i]));
            x.put("specific", Specificity.specific(cells[i], own[i]));
            x.put("reason", Specificity.reason(cells[i], own[i], dNames));
            x.set("random_clusters", Results.targets(targets.get(i).subList(1, targets.get(i).size())));
        }
        ArrayNode dj = o.putArray("datasets");
        for (int j = 0; j < data.size(); j++) dj.addObject().put("name", dNames.get(j)).put("topic", dTopics.get(j));
        ArrayNode cellsJ = o.putArray("cells");
        ArrayNode effM = o.putObject("matrix").putArray("effect"), zM = ((ObjectNode) o.get("matrix")).putArray("z");
        for (int i = 0; i < cls.size(); i++) {
            ArrayNode er = effM.addArray(), zr = zM.addArray();
            for (int j = 0; j < data.size(); j++) {
                ObjectNode x = Results.cellJson(cells[i][j]);
                x.put("cluster", cNames.get(i));
                x.put("dataset", dNames.get(j));
                x.put("own", own[i] == j);
                cellsJ.add(x);
                if (Double.isFinite(cells[i][j].effect())) er.add(cells[i][j].effect()); else er.addNull();
                if (Double.isFinite(cells[i][j].z())) zr.add(cells[i][j].z()); else zr.addNull();
            }
        }
        Path json = opt.out.resolve("specificity.json"), csv = opt.out.resolve("specificity.csv");
        Results.write(json, o, csv, Results.specificityCsv(cNames, cTopics, dNames, dTopics, own, cells));
        System.out.println("wrote " + json + " and " + csv);
        if (!opt.noPlot) for (Path p : Charts.plot(o, opt.out.resolve("specificity"), Charts.WIDTH, Charts.HEIGHT)) System.out.println("wrote " + p);
        for (int i = 0; i < cls.size(); i++) {
            StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%-20s", cNames.get(i)));
            for (int j = 0; j < data.size(); j++)
                sb.append(String.format(Locale.ROOT, " %s=%.4f(z %s)", dNames.get(j), cells[i][j].effect(),
                        Double.isFinite(cells[i][j].z()) ? String.format(Locale.ROOT, "%.1f", cells[i][j].z()) : "-"));
            sb.append(Specificity.specific(cells[i], own[i]) ? "  SPECIFIC" : "  not specific");
            System.out.println(sb);
        }
        System.err.printf(Locale.ROOT, "[nshap] specificity: %.1f s wall, %d forward passes%n", wall, passes);
    }

    private static double max(double[] v) {
        double m = v[0];
        for (double x : v) m = Math.max(m, x);
        return m;
    }
}
