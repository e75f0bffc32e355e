package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * The whole experiment on the bundled defaults, as the real subcommands run it: Shapley values of one
 * layer's neurons for a topic, the top ones exported as a cluster, that cluster impaired by degrees on its
 * own topic and on the control set against random clusters, and the charts.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Run the whole experiment on the bundled defaults (shapley -> clusters export -> impair -> plot); results under results/demo/.")
public final class DemoCommand implements Callable<Integer> {
    @Option(names = "--model", paramLabel = "DIR", description = "Checkpoint directory (default: the bundled model).")
    Path model;

    @Option(names = "--backend", defaultValue = "auto", description = "cpu | cuda | auto (default: ${DEFAULT-VALUE})")
    String backend;

    @Option(names = "--topic", defaultValue = "athlete", description = "Bundled prompt set to attribute: athlete | artist | company (default: ${DEFAULT-VALUE}).")
    String topic;

    @Option(names = "--layer", description = "Layer whose neurons play (default: the middle layer).")
    Integer layer;

    @Option(names = "--budget", defaultValue = "2048", description = "Game evaluations for the Shapley run (default: ${DEFAULT-VALUE}).")
    long budget;

    @Option(names = "--out", paramLabel = "DIR", description = "Output directory (default: results/demo in the project).")
    Path out;

    @Override public Integer call() {
        Path root = ModelOptions.projectRoot();
        Path dir = model != null ? model : ModelOptions.defaultModel();
        GPT2Config cfg = GPT2Config.read(dir.resolve(Checkpoint.CONFIG));
        int l = layer != null ? layer : cfg.nLayer() / 2;
        if (l < 0 || l >= cfg.nLayer()) throw new NshapException("--layer " + l + ": the model has layers 0.." + (cfg.nLayer() - 1));
        Path topicSet = root.resolve("datasets").resolve(topic + ".jsonl");
        Path control = root.resolve("datasets").resolve("general.jsonl");
        if (!Files.isRegularFile(topicSet)) throw new NshapException("--topic " + topic + ": no bundled prompt set " + topicSet);
        Path o = out != null ? out : root.resolve("results").resolve("demo");
        List<String> common = List.of("--model", dir.toString(), "--backend", backend);
        boolean random = ModelOptions.isRandomInit(dir);
        System.out.println("nshap demo: model " + dir + (random ? " (RANDOM-INIT stand-in: the numbers show the pipeline, not learnt behaviour)" : "")
                + ", topic " + topic + ", players blocks." + l + ".mlp.hook_post in groups of 8, output " + o);

        Path shap = o.resolve("shapley");
        List<String> s = new ArrayList<>(List.of("shapley", "--dataset", topicSet.toString(), "--players", "blocks." + l + ".mlp.hook_post",
                "--group-size", "8", "--metric", "loss", "--estimator", "tmab", "--top-k", "8", "--budget", Long.toString(budget),
                "--round", "16", "--batch", "16", "--subsample", "16", "--seed", "1", "--out", shap.toString()));
        s.addAll(common);
        if (Files.exists(Path.of(shap + ".ckpt.json"))) s.add("--resume");
        Path cluster = o.resolve(topic + "-cluster.json");
        Path impair = o.resolve("impair");
        List<String> im = new ArrayList<>(List.of("impair", "--cluster", cluster.toString(), "--site", "blocks.*.mlp.hook_post",
                "--mode", "scale", "--levels", "0:1:0.25", "--datasets", topicSet + "," + control, "--metric", "loss",
                "--baseline", "4", "--out", impair.toString()));
        im.addAll(common);
        List<List<String>> steps = List.of(
                s,
                List.of("clusters", "export", "--from", shap + ".json", "--top-k", "8", "--out", cluster.toString()),
                im,
                List.of("plot", shap + ".json"));
        for (List<String> step : steps) {
            System.out.println("\n$ nshap " + String.join(" ", step));
            int rc = Main.run(step.toArray(String[]::new));
            if (rc != 0) return rc;
        }
        System.out.println("\nnshap demo: done. Shapley values " + shap + ".csv, cluster " + cluster + ", impairment curves "
                + impair + ", Shapley chart " + shap + ".png");
        return 0;
    }
}
