package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.ModelInit;
import dev.nshap.io.Json;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/** {@code nshap model ...}: checkpoint tools. Each subcommand is its own class; add new ones to the list below. */
@Command(name = "model", mixinStandardHelpOptions = true,
        description = "Create and examine GPT-2 checkpoints (Hugging Face layout: config.json + model.safetensors).",
        subcommands = {
                ModelCommand.Init.class,
                ModelCommand.Inspect.class,
                ModelLossCommand.class,
                dev.nshap.convert.VerifyCommand.class,
                dev.nshap.convert.PullCommand.class,
        })
public final class ModelCommand implements Runnable {
    @Spec CommandLine.Model.CommandSpec spec;

    @Override public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    @Command(name = "init", mixinStandardHelpOptions = true,
            description = "Write a randomly initialised GPT-2 (Hugging Face init) so any size runs without downloads.")
    public static final class Init implements Runnable {
        @Spec CommandLine.Model.CommandSpec spec;

        @Option(names = "--config", required = true, paramLabel = "tiny|small|medium|large|xl|FILE.json",
                description = "A preset or a Hugging Face config.json.")
        String config;

        @Option(names = "--seed", required = true, description = "RNG seed: the same seed gives the same bytes.")
        long seed;

        @Option(names = "--out", required = true, paramLabel = "DIR", description = "Checkpoint directory to write.")
        Path out;

        @Option(names = "--dtype", defaultValue = "f32", paramLabel = "f32|f16|bf16",
                description = "Storage dtype of the tensors (default: ${DEFAULT-VALUE}).")
        String dtype;

        @Override public void run() {
            String dt = Checkpoint.dtypeName(dtype);
            GPT2Config c = GPT2Config.presetOrFile(config);
            Checkpoint.requireHeap(4 * Checkpoint.parameterCount(c, true), "a " + config + " model");
            PrintWriter err = spec.commandLine().getErr();
            err.printf(Locale.ROOT, "initialising GPT-2 (%d layers, n_embd %d, %,d parameters) with seed %d%n",
                    c.nLayer(), c.nEmbd(), Checkpoint.parameterCount(c, true), seed);
            err.flush();
            GPT2Weights w = ModelInit.random(c, seed);
            Map<String, String> meta = new LinkedHashMap<>();
            meta.put("nshap_init", "huggingface-gpt2");
            meta.put("nshap_seed", Long.toString(seed));
            Checkpoint.write(out, w, dt, meta);
            PrintWriter o = spec.commandLine().getOut();
            o.println(out + ": " + w.parameterCount() + " parameters, " + dt + ", sha256 " + Checkpoint.sha256(out.resolve(Checkpoint.WEIGHTS)));
            o.flush();
        }
    }

    @Command(name = "inspect", mixinStandardHelpOptions = true,
            description = "Check a checkpoint and print its config, parameter count, dtypes, neurons and weights SHA-256.")
    public static final class Inspect implements Runnable {
        @Spec CommandLine.Model.CommandSpec spec;

        @Parameters(paramLabel = "DIR", description = "Checkpoint directory.")
        Path dir;

        @Option(names = "--json", description = "Print one JSON object instead of text.")
        boolean json;

        @Option(names = "--allow-nonfinite-weights", description = "report NaN or infinite weights as a warning instead of refusing")
        boolean allowNonFinite;

        @Override public void run() {
            Checkpoint.Layout lay = Checkpoint.inspect(dir);
            Checkpoint.checkFinite(lay, allowNonFinite);
            GPT2Config c = lay.config();
            String tokenizer = Checkpoint.tokenizerFor(dir).name();
            String sha = Checkpoint.sha256(dir.resolve(Checkpoint.WEIGHTS));
            PrintWriter o = spec.commandLine().getOut();
            if (json) {
                ObjectNode n = Json.MAPPER.createObjectNode();
                n.put("dir", dir.toString());
                n.set("config", c.toJson());
                n.put("parameters", lay.parameterCount());
                n.put("tied_lm_head", lay.tiedHead());
                ObjectNode d = n.putObject("dtypes");
                lay.dtypeCounts().forEach(d::put);
                n.put("neurons", c.neuronCount());
                n.put("tokenizer", tokenizer);
                n.put("sha256", sha);
                o.print(Json.write(n));
            } else {
                StringBuilder dts = new StringBuilder();
                lay.dtypeCounts().forEach((k, v) -> dts.append(dts.length() > 0 ? ", " : "").append(k).append(" x ").append(v));
                o.printf(Locale.ROOT, "dir          %s%n", dir);
                o.printf(Locale.ROOT, "config       n_layer=%d n_head=%d n_embd=%d n_positions=%d vocab_size=%d layer_norm_epsilon=%s activation_function=%s%n",
                        c.nLayer(), c.nHead(), c.nEmbd(), c.nPositions(), c.vocabSize(), c.layerNormEpsilon(), c.activationFunction());
                o.printf(Locale.ROOT, "parameters   %d%n", lay.parameterCount());
                o.printf(Locale.ROOT, "lm_head      %s%n", lay.tiedHead() ? "tied to wte" : "own tensor");
                o.printf(Locale.ROOT, "dtypes       %s%n", dts);
                o.printf(Locale.ROOT, "neurons      %d (%d layers x %d)%n", c.neuronCount(), c.nLayer(), c.nInner());
                o.printf(Locale.ROOT, "tokenizer    %s%n", tokenizer);
                o.printf(Locale.ROOT, "sha256       %s%n", sha);
            }
            o.flush();
        }
    }
}
