package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.analysis.ActivationDump;
import dev.nshap.backend.Backend;
import dev.nshap.backend.HookPoint;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.impair.Results;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

@Command(name = "cache", mixinStandardHelpOptions = true,
        description = "Dump clean-run activations at hook points as float32 .npy (packed [rows, units], one file per hook) "
                + "with a manifest and an index of each prompt's rows; streamed batch by batch.")
public final class CacheCommand implements Runnable {
    @Mixin ModelOptions model;

    @Option(names = "--hooks", required = true, paramLabel = "LIST",
            description = "comma-separated hook names; blocks.*.X = X in every layer, e.g. 'blocks.*.mlp.hook_post,blocks.2.hook_resid_pre'")
    String hooks;

    @Option(names = "--dataset", required = true, paramLabel = "FILE.jsonl", description = "prompt set (every token of prompt + answer is dumped)")
    Path dataset;

    @Option(names = "--max-tokens", defaultValue = "4096", description = "tokens per forward batch (default: ${DEFAULT-VALUE})")
    int maxTokens;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "output directory")
    Path out;

    @Override public void run() {
        long t0 = System.nanoTime();
        if (maxTokens < 1) throw new NshapException("--max-tokens must be positive");
        if (Files.exists(out) && !Files.isDirectory(out)) throw new NshapException("--out " + out + " exists and is not a directory");
        Dataset d = Dataset.load(dataset);
        Checkpoint.LoadedModel m = model.load();
        List<HookPoint> hps = HookPoint.parseList(hooks, m.config());
        TokenizedDataset data = d.tokenize(m.tokenizer(), m.config());
        ObjectNode c = Json.MAPPER.createObjectNode();
        ImpairOptions.describeModel(c, m, model);
        c.put("dataset", dataset.toString());
        c.put("prompts", data.size());
        c.put("max_tokens", maxTokens);
        ObjectNode manifest;
        try (Backend b = model.open(m.weights())) {
            manifest = ActivationDump.run(b, data, hps, maxTokens, out, c, () -> Results.provenance((System.nanoTime() - t0) / 1e9, 0));
        }
        System.out.println("wrote " + hps.size() + " arrays of " + manifest.get("rows").asLong() + " rows, "
                + out.resolve("manifest.json") + " and " + out.resolve("index.csv"));
    }
}
