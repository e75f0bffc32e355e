package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.Metric;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.impair.Levels;
import dev.nshap.impair.Mode;
import dev.nshap.impair.Site;
import dev.nshap.model.Checkpoint;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** What impair and specificity share: where, how, how much, on what, scored how. */
public final class ImpairOptions {
    @Option(names = "--site", defaultValue = "blocks.*.mlp.hook_post",
            description = "blocks.*.mlp.hook_pre|mlp.hook_post|hook_mlp_out|hook_resid_mid (* = every layer, or a layer number; default: ${DEFAULT-VALUE})")
    public String site;

    @Option(names = "--mode", defaultValue = "noise", description = "noise | negative-noise | scale (default: ${DEFAULT-VALUE})")
    public String mode;

    @Option(names = "--levels", description = "start:stop:step (stop included) or a comma list (default: 0:2:0.2 for the noise modes, 0:1:0.1 for scale)")
    public String levels;

    @Option(names = "--datasets", required = true, split = ",", paramLabel = "FILE", description = "JSONL prompt sets, comma-separated")
    public List<Path> datasets;

    @Option(names = "--metric", split = ",", description = "accuracy|loss|logit-diff|kl, comma-separated (default: accuracy,loss for impair, accuracy for specificity)")
    public List<String> metrics;

    @Option(names = "--seeds", defaultValue = "3", description = "noise draws per prompt and level (default: ${DEFAULT-VALUE}; scale uses 1)")
    public int seeds;

    @Option(names = "--seed", defaultValue = "1", description = "base seed of the noise (default: ${DEFAULT-VALUE})")
    public long seed;

    @Option(names = "--baseline", paramLabel = "R", description = "random clusters with the real one's per-layer counts (default: 0 for impair, 10 for specificity)")
    public Integer baseline;

    /** Random clusters when --baseline is not given. */
    public int defaultBaseline = 0;

    public int baseline() { return baseline != null ? baseline : defaultBaseline; }

    @Option(names = "--baseline-seed", defaultValue = "7", description = "seed of the random clusters (default: ${DEFAULT-VALUE})")
    public long baselineSeed;

    @Option(names = "--max-tokens", defaultValue = "8192", description = "tokens per forward batch (default: ${DEFAULT-VALUE})")
    public int maxTokens;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "output directory, e.g. results/<name>")
    public Path out;

    @Option(names = "--no-plot", description = "skip the PNG/SVG charts")
    public boolean noPlot;

    @Option(names = "--allow-other-weights", description = "use clusters computed on other weights")
    public boolean allowOtherWeights;

    public Mode mode() { return Mode.parse(mode); }

    public Site site() { return Site.parse(site); }

    public double[] levels() {
        if (levels != null) return Levels.parse(levels);
        return Levels.parse(mode() == Mode.SCALE ? "0:1:0.1" : "0:2:0.2");
    }

    /** Metrics used when --metric is not given. */
    public List<String> defaultMetrics = List.of("accuracy", "loss");

    public List<Metric> metrics() {
        List<Metric> m = new ArrayList<>();
        if (metrics == null) metrics = defaultMetrics;
        for (String s : metrics) {
            Metric x = Metric.parse(s);
            if (m.contains(x)) throw new NshapException("--metric " + s + " is listed twice");
            m.add(x);
        }
        if (m.isEmpty()) throw new NshapException("--metric: none given");
        return m;
    }

    public void validate() {
        if (seeds < 1) throw new NshapException("--seeds must be at least 1");
        if (seeds > 10_000) throw new NshapException("--seeds " + seeds + " is too many (at most 10000 noise draws)");
        if (baseline() < 0) throw new NshapException("--baseline must be 0 or more");
        if (baseline() > 10_000) throw new NshapException("--baseline " + baseline() + " is too many (at most 10000 random clusters)");
        if (maxTokens < 1) throw new NshapException("--max-tokens must be positive");
        if (datasets == null || datasets.isEmpty()) throw new NshapException("--datasets: no dataset given");
        for (Path p : datasets) if (p.toString().isBlank()) throw new NshapException("--datasets: an empty file name in the list");
        site();
        double[] lv = levels();
        if (mode().random())
            for (double l : lv)
                if (l < 0) throw new NshapException("--levels: a noise intensity cannot be negative (got " + l + ")");
        metrics();
    }

    public List<TokenizedDataset> loadDatasets(Checkpoint.LoadedModel m) {
        List<TokenizedDataset> out = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (Path p : datasets) {
            TokenizedDataset d = Dataset.load(p).tokenize(m.tokenizer(), m.config());
            if (names.contains(d.dataset.name())) throw new NshapException("--datasets: " + p + " is given twice");
            names.add(d.dataset.name());
            out.add(d);
        }
        return out;
    }

    public void describe(ObjectNode c, List<TokenizedDataset> data) {
        c.put("site", site().toString());
        c.put("mode", mode().cliName);
        var lv = c.putArray("levels");
        for (double l : levels()) lv.add(l);
        var ms = c.putArray("metrics");
        for (Metric x : metrics()) ms.add(x.cliName);
        c.put("seeds", mode().random() ? seeds : 1);
        c.put("seed", seed);
        c.put("baseline", baseline());
        c.put("baseline_seed", baselineSeed);
        c.put("max_tokens", maxTokens);
        c.put("ci", "95% Student-t over prompts of the per-prompt mean over noise seeds (each prompt has its own noise)");
        c.put("baseline_band", "mean +- 1.96 sd over the random clusters' prompt means");
        var ds = c.putArray("datasets");
        for (TokenizedDataset d : data) {
            var o = ds.addObject();
            o.put("name", d.dataset.name());
            o.put("file", d.dataset.file().toString());
            o.put("topic", d.dataset.topic());
            o.put("prompts", d.size());
        }
    }

    public static void describeModel(ObjectNode c, Checkpoint.LoadedModel m, ModelOptions mo) {
        var o = c.putObject("model");
        o.put("dir", m.dir().toString());
        o.put("weights_sha256", m.weightsSha256());
        o.put("random_init", ModelOptions.isRandomInit(m.dir()));
        o.put("n_layer", m.config().nLayer());
        o.put("n_embd", m.config().nEmbd());
        o.put("d_mlp", m.config().nInner());
        o.put("tokenizer", m.tokenizer().name());
        o.put("backend", mo.backend);
        o.put("precision", mo.precision);
    }
}
