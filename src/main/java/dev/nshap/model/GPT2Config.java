package dev.nshap.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;

import java.nio.file.Files;
import java.nio.file.Path;

/** GPT-2 hyper-parameters, with the key names of a Hugging Face {@code config.json}. */
public record GPT2Config(int nLayer, int nHead, int nEmbd, int nPositions, int vocabSize,
                         double layerNormEpsilon, String activationFunction) {

    public static final int GPT2_VOCAB = 50257;

    public GPT2Config {
        if (nLayer <= 0 || nHead <= 0 || nEmbd <= 0 || nPositions <= 0 || vocabSize <= 0)
            throw new NshapException("config: n_layer, n_head, n_embd, n_positions and vocab_size must be positive");
        if (nEmbd % nHead != 0)
            throw new NshapException("config: n_embd (" + nEmbd + ") is not a multiple of n_head (" + nHead + ")");
        if (!(layerNormEpsilon > 0)) throw new NshapException("config: layer_norm_epsilon must be positive");
        if (!activationFunction.equals("gelu_new") && !activationFunction.equals("gelu_pytorch_tanh")
                && !activationFunction.equals("gelu"))
            throw new NshapException("config: unsupported activation_function '" + activationFunction + "'");
    }

    public int headDim() { return nEmbd / nHead; }
    public int nInner() { return 4 * nEmbd; }
    /** Neurons = n_layer x 4*n_embd units at {@code blocks.L.mlp.hook_post}. */
    public long neuronCount() { return (long) nLayer * nInner(); }

    public static GPT2Config preset(String name) {
        return switch (name) {
            case "tiny" -> new GPT2Config(2, 4, 64, 128, GPT2_VOCAB, 1e-5, "gelu_new");
            case "small" -> new GPT2Config(12, 12, 768, 1024, GPT2_VOCAB, 1e-5, "gelu_new");
            case "medium" -> new GPT2Config(24, 16, 1024, 1024, GPT2_VOCAB, 1e-5, "gelu_new");
            case "large" -> new GPT2Config(36, 20, 1280, 1024, GPT2_VOCAB, 1e-5, "gelu_new");
            case "xl" -> new GPT2Config(48, 25, 1600, 1024, GPT2_VOCAB, 1e-5, "gelu_new");
            default -> null;
        };
    }

    /** A preset name (tiny|small|medium|large|xl) or a path to a config.json. */
    public static GPT2Config presetOrFile(String nameOrPath) {
        GPT2Config c = preset(nameOrPath);
        if (c != null) return c;
        Path p = Path.of(nameOrPath);
        if (!Files.isRegularFile(p))
            throw new NshapException("config: '" + nameOrPath + "' is neither tiny|small|medium|large|xl nor a JSON file");
        return read(p);
    }

    public static GPT2Config read(Path file) {
        JsonNode n = Json.readTree(file);
        return fromJson(n, file.toString());
    }

    public static GPT2Config fromJson(JsonNode n, String where) {
        if (n == null || !n.isObject()) throw new NshapException(where + ": config is not a JSON object");
        return new GPT2Config(
                intField(n, where, "n_layer", null), intField(n, where, "n_head", null),
                intField(n, where, "n_embd", null), intField(n, where, "n_positions", "n_ctx"),
                intField(n, where, "vocab_size", null),
                n.has("layer_norm_epsilon") ? n.get("layer_norm_epsilon").asDouble() : 1e-5,
                n.has("activation_function") ? n.get("activation_function").asText() : "gelu_new");
    }

    private static int intField(JsonNode n, String where, String key, String alt) {
        JsonNode v = n.get(key);
        if (v == null && alt != null) v = n.get(alt);
        if (v == null) throw new NshapException(where + ": config has no '" + key + "'");
        if (!v.canConvertToInt()) throw new NshapException(where + ": config '" + key + "' is not an integer");
        return v.asInt();
    }

    public ObjectNode toJson() {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("model_type", "gpt2");
        o.putArray("architectures").add("GPT2LMHeadModel");
        o.put("n_layer", nLayer);
        o.put("n_head", nHead);
        o.put("n_embd", nEmbd);
        o.put("n_positions", nPositions);
        o.put("n_ctx", nPositions);
        o.put("vocab_size", vocabSize);
        o.put("layer_norm_epsilon", layerNormEpsilon);
        o.put("activation_function", activationFunction);
        o.put("bos_token_id", 50256);
        o.put("eos_token_id", 50256);
        o.put("tie_word_embeddings", true);
        return o;
    }
}
