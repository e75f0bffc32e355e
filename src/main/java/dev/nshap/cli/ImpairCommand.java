package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.cluster.Cluster;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.impair.MatchedRandom;
import dev.nshap.impair.Mode;
import dev.nshap.impair.RandomClusters;
import dev.nshap.impair.Results;
import dev.nshap.impair.Site;
import dev.nshap.impair.Sweep;
import dev.nshap.impair.Target;
import dev.nshap.impair.Threshold;
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

@Command(name = "impair", mixinStandardHelpOptions = true,
        description = "Impair a cluster (or every unit at a site) by degrees and score each dataset at every level, "
                + "optionally against random clusters with the same per-layer counts.")
public final class ImpairCommand implements Runnable {
    @Mixin ModelOptions model;
    @Mixin ImpairOptions opt;

    @Option(names = "--cluster", paramLabel = "FILE", description = "cluster file (neurons at mlp.hook_post; also usable at mlp.hook_pre)")
    Path cluster;

    @Option(names = "--all-units", description = "impair every unit at the site in every chosen layer")
    boolean allUnits;

    @Option(names = "--matched-random", defaultValue = "0", paramLabel = "R",
            description = "R draws of a random direction over all units at each impaired site, moved as far as the real impairment moves "
                    + "each position; reports real harm / random harm with a bootstrap interval (default: ${DEFAULT-VALUE} = off)")
    int matchedRandom;

    @Option(names = "--matched-seed", defaultValue = "11", description = "seed of the matched random directions and the bootstrap (default: ${DEFAULT-VALUE})")
    long matchedSeed;

    @Option(names = "--models", split = ",", paramLabel = "DIR", description = "run the same sweep on each of these checkpoints (instead of --model): "
            + "their curves on one chart")
    List<Path> models;

    @Option(names = "--threshold", paramLabel = "T", description = "per model, dataset and metric: the smallest level at which the mean metric "
            + "crosses T (falls to it for accuracy / logit-diff, rises to it for loss / KL), interpolated, with a bootstrap interval over prompts")
    Double threshold;

    @Override public void run() {
        long t0 = System.nanoTime();
        if ((cluster == null) == !allUnits) throw new NshapException("give exactly one of --cluster FILE or --all-units");
        opt.validate();
        if (matchedRandom < 0) throw new NshapException("--matched-random must be 0 or more");
        if (allUnits && opt.baseline() > 0) throw new NshapException("--baseline needs a --cluster (random clusters match its per-layer counts)");
        if (models != null && model.model != null) throw new NshapException("give --model or --models, not both");
        if (models != null && models.isEmpty()) throw new NshapException("--models: no checkpoint given");
        if (models != null && new java.util.HashSet<>(models).size() != models.size()) throw new NshapException("--models names a checkpoint twice");
        if (threshold != null && !Double.isFinite(threshold)) throw new NshapException("--threshold must be a finite number");
        Mode mode = opt.mode();
        Site site = opt.site();
        double[] levels = opt.levels();
        List<Metric> metrics = opt.metrics();
        Cluster cl = cluster == null ? null : Cluster.read(cluster);
        List<Path> dirs = models != null ? models : java.util.Collections.singletonList(null);

        ArrayNode curves = Json.MAPPER.createArrayNode();
        ArrayNode described = Json.MAPPER.createArrayNode();
        long passes = 0;
        Checkpoint.LoadedModel first = null;
        Target firstReal = null;
        List<Target> firstTargets = null;
        for (Path dir : dirs) {
            if (dir != null) model.model = dir;
            Checkpoint.LoadedModel m = model.load();
            site.checkFor(m.config());
            if (cl != null) cl.checkFits(m.config(), opt.allowOtherWeights ? null : m.weightsSha256(), cluster);
            List<TokenizedDataset> data = opt.loadDatasets(m);

            Target real = cl == null ? Target.allUnits(site, m.config()) : Target.ofCluster(cluster.getFileName().toString(), cl, site);
            List<Target> targets = new ArrayList<>();
            targets.add(real);
            if (opt.baseline() > 0) targets.addAll(RandomClusters.sample(real, site.kind().width(m.config()), opt.baseline(), opt.baselineSeed));

            long total = 0;
            for (TokenizedDataset d : data)
                total += Sweep.work(targets.size(), mode, levels.length, opt.seeds, d.size()) + d.size() + (long) matchedRandom * levels.length * d.size();
            Progress progress = new Progress("impair" + (dir == null ? "" : " " + dir.getFileName()), total);
            long[] done = {0};
            try (Backend be = model.open(m.weights())) {
                for (TokenizedDataset d : data) {
                    Evaluator ev = new Evaluator(be, d, opt.maxTokens);
                    List<Sweep.Values> vs = Sweep.run(ev, targets, mode, levels, opt.seeds, opt.seed, metrics, progress, done);
                    List<double[][]> matched = matchedRandom == 0 ? null
                            : MatchedRandom.run(ev, real, mode, levels, opt.seeds, opt.seed, matchedRandom, matchedSeed, metrics);
                    if (matched != null) progress.update(done[0] += (long) matchedRandom * levels.length * d.size());
                    for (int mi = 0; mi < vs.size(); mi++) {
                        ObjectNode cv = Results.curve(d, vs.get(mi));
                        if (dir != null) cv.put("model", dir.toString());
                        if (matched != null) MatchedRandom.annotate(cv, vs.get(mi), matched.get(mi), matchedRandom, matchedSeed);
                        if (threshold != null) cv.set("threshold_crossing", Threshold.crossing(vs.get(mi), threshold, mode.neutralLevel(), opt.seed));
                        curves.add(cv);
                    }
                    done[0] += d.size();
                    passes += ev.forwardPasses();
                }
            }
            ObjectNode md = described.addObject();
            ImpairOptions.describeModel(md, m, model);
            if (first == null) { first = m; firstReal = real; firstTargets = targets; }
        }
        double wall = (System.nanoTime() - t0) / 1e9;

        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("format", Results.IMPAIRMENT);
        ObjectNode c = o.putObject("config");
        if (models == null) c.set("model", described.get(0).get("model"));
        else {
            ArrayNode ma = c.putArray("models");
            for (var md : described) ma.add(md.get("model"));
            c.set("model", described.get(0).get("model"));
        }
        if (cl != null) {
            c.put("cluster", cluster.toString());
            c.put("cluster_topic", cl.topic());
        } else c.put("cluster", "all-units");
        c.put("units", firstReal.size(first.config()));
        ObjectNode per = c.putObject("units_per_layer");
        firstReal.counts(first.config()).forEach((l, n) -> per.put(Integer.toString(l), n));
        opt.describe(c, opt.loadDatasets(first));
        if (firstTargets.size() > 1) c.set("random_clusters", Results.targets(firstTargets.subList(1, firstTargets.size())));
        if (threshold != null) {
            c.put("threshold", threshold);
            c.put("threshold_method", "levels ordered from the least impairment (nearest the neutral level) to the most; the first level where the mean over prompts reaches T (<= T for accuracy and "
                    + "logit-diff, >= T for loss and KL), linearly interpolated from the level before; 95% percentile bootstrap over prompts "
                    + "(2000 resamples), with the fraction of resamples that cross at all");
        }
        if (matchedRandom > 0) {
            c.put("matched_random", matchedRandom);
            c.put("matched_seed", matchedSeed);
            c.put("matched_random_method", "per position, a random unit direction over all units of each impaired hook (one per draw, prompt and layer) "
                    + "scaled to the distance the real impairment moves it: noise modes the drawn noise's norm x level, scale mode "
                    + "|level - 1| x the clean activation's norm over the target units; ratio = mean real harm / mean matched harm, "
                    + "95% percentile bootstrap over prompts (2000 resamples); null where the matched harm is not positive");
        }
        o.set("provenance", Results.provenance(wall, passes));
        o.set("curves", curves);
        Path json = opt.out.resolve("impairment.json"), csv = opt.out.resolve("impairment.csv");
        Results.write(json, o, csv, Results.curvesCsv(curves));
        System.out.println("wrote " + json + " and " + csv);
        if (!opt.noPlot) for (Path p : Charts.plot(o, opt.out.resolve("impairment"), Charts.WIDTH, Charts.HEIGHT)) System.out.println("wrote " + p);
        System.out.println(summary(o));
        System.err.printf(Locale.ROOT, "[nshap] impair: %.1f s wall, %d forward passes%n", wall, passes);
    }

    /** One line per dataset x metric: clean, the level that moved the metric most, and the baseline there. */
    static String summary(ObjectNode o) {
        StringBuilder sb = new StringBuilder();
        for (var c : o.get("curves")) {
            var pts = c.get("points");
            double clean = c.path("clean").path("mean").asDouble(Double.NaN);
            var last = pts.get(0);
            for (var p : pts)
                if (Math.abs(p.path("mean").asDouble(clean) - clean) > Math.abs(last.path("mean").asDouble(clean) - clean)) last = p;
            sb.append(String.format(Locale.ROOT, "%-24s %-10s clean %.4f  at level %s: %.4f [%.4f, %.4f]%s%s%s%n",
                    (c.has("model") ? Path.of(c.get("model").asText()).getFileName() + "/" : "") + c.get("dataset").asText(),
                    c.get("metric").asText(), clean, last.get("level").asText(),
                    last.path("mean").asDouble(Double.NaN), last.path("ci_low").asDouble(Double.NaN), last.path("ci_high").asDouble(Double.NaN),
                    last.has("baseline_mean") ? String.format(Locale.ROOT, "  random %.4f +- %.4f", last.path("baseline_mean").asDouble(Double.NaN),
                            last.path("baseline_sd").asDouble(Double.NaN)) : "",
                    !last.has("ratio") ? "" : last.get("ratio").isNull() ? "  real/matched-random harm: none (matched harm not positive)"
                            : String.format(Locale.ROOT, "  real/matched-random harm %.3f [%.3f, %.3f]", last.get("ratio").asDouble(),
                            last.path("ratio_ci_low").asDouble(Double.NaN), last.path("ratio_ci_high").asDouble(Double.NaN)),
                    !c.has("threshold_crossing") ? "" : c.get("threshold_crossing").get("level").isNull() ? "  never crosses the threshold"
                            : String.format(Locale.ROOT, "  crosses the threshold at %.4g [%.4g, %.4g]", c.get("threshold_crossing").get("level").asDouble(),
                            c.get("threshold_crossing").get("ci_low").asDouble(Double.NaN), c.get("threshold_crossing").get("ci_high").asDouble(Double.NaN))));
        }
        return sb.toString().stripTrailing();
    }
}
