package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

@Command(name = "evaluate", mixinStandardHelpOptions = true,
        description = "Score the unmodified model on prompt sets: keyword accuracy, loss, logit-diff (mean and 95%% Student-t CI over prompts).")
public final class EvaluateCommand implements Runnable {
    @Mixin ModelOptions modelOptions;

    @Option(names = "--datasets", required = true, split = ",", paramLabel = "FILE.jsonl", description = "Comma-separated prompt sets.")
    List<Path> datasets;

    @Option(names = "--metric", defaultValue = "accuracy,loss", split = ",", description = "Comma-separated: accuracy, loss, logit-diff (default: ${DEFAULT-VALUE}).")
    List<String> metrics;

    @Option(names = "--max-tokens", defaultValue = "4096", description = "Tokens per forward batch (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--out", paramLabel = "FILE.json", description = "Also write the table as JSON.")
    Path out;

    @Override public void run() {
        if (datasets.isEmpty()) throw new NshapException("--datasets: no prompt sets given");
        List<Metric> ms = new ArrayList<>();
        for (String m : metrics) {
            Metric metric = Metric.parse(m);
            if (metric == Metric.KL) throw new NshapException("--metric kl compares a modified model with the clean one; evaluate has nothing to compare");
            ms.add(metric);
        }
        List<Dataset> ds = new ArrayList<>();
        for (Path p : datasets) ds.add(Dataset.load(p));
        Checkpoint.LoadedModel m = modelOptions.load();
        ObjectNode json = Json.MAPPER.createObjectNode();
        json.put("model", m.dir().toString());
        json.put("weights_sha256", m.weightsSha256());
        json.put("random_init", ModelOptions.isRandomInit(m.dir()));
        ArrayNode rows = json.putArray("rows");
        try (Backend b = modelOptions.open(m.weights())) {
            System.out.println("model " + m.dir() + (ModelOptions.isRandomInit(m.dir()) ? " [RANDOM-INIT]" : "") + ", " + b.name() + " backend");
            System.out.printf(Locale.ROOT, "%-28s %-11s %8s %10s %21s%n", "dataset", "metric", "prompts", "mean", "95% CI");
            for (Dataset d : ds) {
                Evaluator ev = new Evaluator(b, d.tokenize(m.tokenizer(), m.config()), maxTokens);
                List<double[]> values = ev.clean(ms);
                for (int mi = 0; mi < ms.size(); mi++) {
                    Metric metric = ms.get(mi);
                    double[] v = values.get(mi);
                    dev.nshap.impair.Stats st = dev.nshap.impair.Stats.of(v);
                    System.out.printf(Locale.ROOT, "%-28s %-11s %8d %10.4f   [%8.4f, %8.4f]%n", d.name(), metric, v.length, st.mean(),
                            st.ciLow(), st.ciHigh());
                    ObjectNode r = rows.addObject();
                    r.put("dataset", d.file().toString());
                    r.put("metric", metric.cliName);
                    r.put("prompts", v.length);
                    r.put("mean", st.mean());
                    r.put("sd", st.sd());
                    r.put("ci_low", st.ciLow());
                    r.put("ci_high", st.ciHigh());
                }
            }
        }
        if (out != null) Json.writeFile(out, json);
    }
}
