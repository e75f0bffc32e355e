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

    /**
     * Sizes beyond these describe no GPT-2 that can be run (GPT-2 xl: 48 layers, n_embd 1600); a config claiming
     * more is refused before anything is sized from it (1e9 layers used to be a minute and an OutOfMemoryError).
     */
    public static final int MAX_LAYERS = 4096, MAX_EMBD = 1 << 16, MAX_POSITIONS = 1 << 20, MAX_VOCAB = 1 << 24;

    public static GPT2Config fromJson(JsonNode n, String where) {
        if (n == null || !n.isObject()) throw new NshapException(where + ": config is not a JSON object");
        refuseUnimplemented(n, where);
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
        // canConvertToInt() accepts 1.5 (and would truncate it): a size must be a whole number.
        if (!v.isNumber() || !v.canConvertToInt() || (!v.isIntegralNumber() && v.asDouble() != Math.rint(v.asDouble())))
            throw new NshapException(where + ": config '" + key + "' is " + v + ", not an integer");
        int x = v.asInt();
        int max = switch (key) {
            case "n_layer" -> MAX_LAYERS;
            case "n_embd", "n_head" -> MAX_EMBD;
            case "n_positions" -> MAX_POSITIONS;
            default -> MAX_VOCAB;
        };
        if (x > max) throw new NshapException(where + ": config '" + key + "' = " + x + " is beyond any runnable GPT-2 (at most " + max + ")");
        return x;
    }

    /**
     * Options of Hugging Face's GPT2Config that change the computation and that nshap does not implement: a
     * checkpoint using them would load and silently compute something else.
     */
    private static void refuseUnimplemented(JsonNode n, String where) {
        JsonNode mt = n.get("model_type");
        if (mt != null && !mt.isNull() && !mt.asText().equals("gpt2"))
            throw new NshapException(where + ": model_type '" + mt.asText() + "' is not gpt2");
        JsonNode inner = n.get("n_inner");
        if (inner != null && !inner.isNull()) {
            JsonNode embd = n.get("n_embd");
            if (!inner.isIntegralNumber() || embd == null || !embd.canConvertToLong() || inner.asLong() != 4 * embd.asLong())
                throw new NshapException(where + ": n_inner = " + inner + " is not implemented (nshap's MLP is 4 x n_embd"
                        + (embd != null ? " = " + 4 * embd.asLong() : "") + ")");
        }
        flag(n, where, "scale_attn_weights", true);
        flag(n, where, "scale_attn_by_inverse_layer_idx", false);
        flag(n, where, "add_cross_attention", false);
    }

    private static void flag(JsonNode n, String where, String key, boolean implemented) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) return;
        if (!v.isBoolean()) throw new NshapException(where + ": config '" + key + "' is " + v + ", not true or false");
        if (v.asBoolean() != implemented)
            throw new NshapException(where + ": " + key + " = " + v.asBoolean() + " is not implemented (nshap computes "
                    + key + " = " + implemented + ")");
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
