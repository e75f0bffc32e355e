package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.NeuronGame;
import dev.nshap.eval.NeuronPlayers;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.model.Checkpoint;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** The GPT-2 neuron game source of {@code nshap shapley} (a picocli mixin; the model comes from {@link ModelOptions}). */
public final class NeuronGameOptions {
    @Option(names = "--dataset", paramLabel = "FILE", description = "topic prompt set (JSONL); selects the GPT-2 neuron game")
    public Path dataset;

    @Option(names = "--topic", description = "keep only the prompts of this topic (default: every prompt in the file)")
    public String topic;

    @Option(names = "--players", defaultValue = "all",
            description = "all | blocks.L.mlp.hook_post[,...] | neuron ids | FILE (one player per line; several ids on a line = a group)"
                    + " (default: ${DEFAULT-VALUE})")
    public String players;

    @Option(names = "--group-size", defaultValue = "1",
            description = "play whole layers in runs of G consecutive neurons (default: ${DEFAULT-VALUE})")
    public int groupSize;

    @Option(names = "--metric", defaultValue = "loss",
            description = "accuracy | loss | logit-diff | kl; loss and kl are negated so that higher = better (default: ${DEFAULT-VALUE})")
    public String metric;

    @Option(names = "--ablation", defaultValue = "zero",
            description = "zero | mean (the clean mean over the dataset) (default: ${DEFAULT-VALUE})")
    public String ablation;

    @Option(names = "--subsample", defaultValue = "0",
            description = "score each permutation on a fresh random subset of M prompts (0: all prompts) (default: ${DEFAULT-VALUE})")
    public int subsample;

    @Option(names = "--max-tokens", defaultValue = "4096",
            description = "tokens per forward pass: coalitions x prompts are packed up to this (default: ${DEFAULT-VALUE})")
    public int maxTokens;

    /** The model the last {@link #build} loaded (attribute differentiates its weights). */
    public Checkpoint.LoadedModel loaded;

    public boolean selected() { return dataset != null; }

    public NeuronGame build(ModelOptions mo) {
        Metric.parse(metric);
        NeuronGame.Ablation.parse(ablation);
        if (maxTokens < 1) throw new NshapException("--max-tokens must be positive");
        Dataset d = Dataset.load(dataset, topic);
        return build(d, mo.load(), mo::open);
    }

    /** The game on a loaded model; {@code open} gives the backend (a worker reuses one across games). */
    public NeuronGame build(Dataset d, Checkpoint.LoadedModel model, java.util.function.Function<dev.nshap.model.GPT2Weights, Backend> open) {
        Metric m = Metric.parse(metric);
        NeuronGame.Ablation ab = NeuronGame.Ablation.parse(ablation);
        if (maxTokens < 1) throw new NshapException("--max-tokens must be positive");
        loaded = model;
        NeuronPlayers ps = NeuronPlayers.parse(players, groupSize, model.config());
        TokenizedDataset td = d.tokenize(model.tokenizer(), model.config());
        Backend backend = open.apply(model.weights());
        Map<String, Object> id = new LinkedHashMap<>();
        Path dir = model.dir().toAbsolutePath().normalize();
        id.put("model", dir.getFileName() == null ? dir.toString() : dir.getFileName().toString());
        id.put("model_path", dir.toString());
        id.put("weights_sha256", model.weightsSha256());
        id.put("n_layer", model.config().nLayer());
        id.put("d_mlp", model.config().nInner());
        id.put("random_init", ModelOptions.isRandomInit(model.dir()));
        id.put("dataset", dataset.toString());
        id.put("dataset_sha256", Checkpoint.sha256(dataset));
        id.put("topic", topic != null ? topic : d.topic());
        System.err.printf("[nshap] %s: %d prompts (%d tokens), %d players (%d neurons) in layers %s, metric %s, %s ablation%n",
                d.name(), td.size(), td.tokenCount(), ps.size(), ps.neuronCount(), java.util.Arrays.toString(ps.layers()), m, ab);
        return new NeuronGame(new Evaluator(backend, td, maxTokens), ps, m, ab, subsample, id);
    }
}
