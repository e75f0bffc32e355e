package dev.nshap.model;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every kind of broken checkpoint, crafted byte by byte from a valid one, must be refused by {@link Checkpoint#load}
 * with a one-line message naming the problem, and by {@code nshap model inspect} with exit code 2 and one stderr line.
 */
class MalformedCheckpointTest {
    @TempDir static Path tmp;
    static Path valid;
    static ObjectNode header;   // the valid file's JSON header
    static byte[] data;         // the valid file's data section

    static final GPT2Config TINY = new GPT2Config(2, 2, 8, 16, 20, 1e-5, "gelu_new");

    @BeforeAll static void writeValid() throws Exception {
        valid = tmp.resolve("valid");
        Checkpoint.write(valid, ModelInit.random(TINY, 11), "f32", Map.of());
        byte[] b = Files.readAllBytes(valid.resolve("model.safetensors"));
        int n = (int) ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        header = (ObjectNode) Json.MAPPER.readTree(new String(b, 8, n, StandardCharsets.UTF_8));
        data = Arrays.copyOfRange(b, 8 + n, b.length);
    }

    static byte[] assemble(String headerJson, long claimedLength, byte[] d) {
        byte[] h = headerJson.getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(claimedLength).array());
        o.writeBytes(h);
        o.writeBytes(d);
        return o.toByteArray();
    }

    static String compact(ObjectNode h) throws Exception {
        return Json.MAPPER.writer().without(com.fasterxml.jackson.databind.SerializationFeature.INDENT_OUTPUT).writeValueAsString(h);
    }

    /** A checkpoint directory: the valid config.json and the given safetensors bytes. */
    static Path withWeights(String name, byte[] weights) throws Exception {
        Path d = Files.createDirectories(tmp.resolve(name));
        Files.copy(valid.resolve("config.json"), d.resolve("config.json"));
        Files.write(d.resolve("model.safetensors"), weights);
        return d;
    }

    static Path withHeader(String name, Consumer<ObjectNode> edit) throws Exception {
        ObjectNode h = header.deepCopy();
        edit.accept(h);
        String s = compact(h);
        return withWeights(name, assemble(s, s.getBytes(StandardCharsets.UTF_8).length, data));
    }

    static Path withConfig(String name, String configJson) throws Exception {
        Path d = Files.createDirectories(tmp.resolve(name));
        Files.copy(valid.resolve("model.safetensors"), d.resolve("model.safetensors"));
        Files.writeString(d.resolve("config.json"), configJson);
        return d;
    }

    static String config(int nLayer, int nHead, int nEmbd, int nPositions, int vocab) {
        return "{\"n_layer\": " + nLayer + ", \"n_head\": " + nHead + ", \"n_embd\": " + nEmbd + ", \"n_positions\": "
                + nPositions + ", \"vocab_size\": " + vocab + ", \"layer_norm_epsilon\": 1e-5, \"activation_function\": \"gelu_new\"}";
    }

    static ArrayNode offsets(ObjectNode h, String name) { return (ArrayNode) h.get(name).get("data_offsets"); }

    private static List<Arguments> cases;

    static synchronized Stream<Arguments> cases() throws Exception {
        if (cases == null) cases = build();
        return cases.stream();
    }

    static List<Arguments> build() throws Exception {
        String hs = compact(header);
        int hl = hs.getBytes(StandardCharsets.UTF_8).length;
        String last = "transformer.ln_f.bias", first = "transformer.wte.weight";
        return List.of(
                Arguments.of("truncated data", withWeights("trunc", assemble(hs, hl, Arrays.copyOf(data, data.length - 10))),
                        "truncated: the header describes " + data.length + " bytes of tensor data"),
                Arguments.of("file shorter than the length prefix", withWeights("tiny", new byte[]{1, 2, 3}),
                        "not even the 8-byte header length"),
                Arguments.of("header length past end of file", withWeights("hlong", assemble(hs, 1 << 20, data)),
                        "runs past the end of the file"),
                Arguments.of("header length too short", withWeights("hshort", assemble(hs, hl - 5, data)),
                        "header is not valid JSON"),
                Arguments.of("header length swallows data", withWeights("hswallow", assemble(hs, hl + 8, data)),
                        "header is not valid JSON"),
                Arguments.of("absurd header length", withWeights("habsurd", assemble(hs, Long.MIN_VALUE, data)),
                        "is not plausible"),
                Arguments.of("trailing bytes", withWeights("trail", assemble(hs, hl, Arrays.copyOf(data, data.length + 16))),
                        "16 bytes after the last tensor"),
                Arguments.of("reversed offsets", withHeader("rev", h -> {
                    ArrayNode o = offsets(h, last);
                    long a = o.get(0).asLong(), b = o.get(1).asLong();
                    o.removeAll().add(b).add(a);
                }), "reversed data_offsets"),
                Arguments.of("offsets out of range", withHeader("oor", h -> {
                    ArrayNode o = offsets(h, last);
                    long a = o.get(0).asLong(), b = o.get(1).asLong();
                    o.removeAll().add(a + 4096).add(b + 4096);
                }), "out of range: the data section has " + data.length + " bytes"),
                Arguments.of("overlapping tensors", withHeader("overlap", h -> {
                    // wpe shifted 4 bytes back onto the end of wte
                    ArrayNode o = offsets(h, "transformer.wpe.weight");
                    long a = o.get(0).asLong(), b = o.get(1).asLong();
                    o.removeAll().add(a - 4).add(b - 4);
                }), "'transformer.wte.weight' and 'transformer.wpe.weight' overlap"),
                Arguments.of("byte size != shape x dtype", withHeader("size", h -> {
                    ArrayNode s = (ArrayNode) h.get(last).get("shape");
                    s.removeAll().add(7);
                }), "needs 28"),
                Arguments.of("unknown dtype", withHeader("dtype", h -> ((ObjectNode) h.get(first)).put("dtype", "F12")),
                        "unknown dtype 'F12'"),
                Arguments.of("non-float dtype", withHeader("i32", h -> ((ObjectNode) h.get(last)).put("dtype", "I32")),
                        "has dtype I32; weights must be F32, F16 or BF16"),
                Arguments.of("duplicate names", withWeights("dupname", assemble(
                        hs.substring(0, hs.length() - 1) + ",\"" + last + "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
                        hl + (",\"" + last + "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}").length(), data)),
                        "Duplicate field '" + last + "'"),
                Arguments.of("missing tensor", missingTensor(last), "missing tensor 'ln_f.bias'"),
                Arguments.of("wrong shape", withHeader("shape", h -> {
                    ArrayNode s = (ArrayNode) h.get("transformer.h.0.mlp.c_fc.weight").get("shape");
                    s.removeAll().add(32).add(8);
                }), "'transformer.h.0.mlp.c_fc.weight' has shape [32, 8] but the config implies [8, 32]"),
                Arguments.of("unexpected tensor", withHeader("unexp", h -> {
                    ObjectNode t = (ObjectNode) h.remove(last);
                    h.set("transformer.h.0.mlp.c_gate.bias", t);
                }), "unexpected tensor 'transformer.h.0.mlp.c_gate.bias'"),
                Arguments.of("wte rows != vocab_size", withConfig("vocab", config(2, 2, 8, 16, 21)),
                        "20 rows != config vocab_size 21"),
                Arguments.of("wpe rows != n_positions", withConfig("pos", config(2, 2, 8, 32, 20)),
                        "16 rows != config n_positions 32"),
                Arguments.of("n_embd mismatch", withConfig("embd", config(2, 2, 12, 16, 20)),
                        "8 columns != config n_embd 12"),
                Arguments.of("more layers than n_layer", withConfig("more", config(1, 2, 8, 16, 20)),
                        "belongs to layer 1 but config n_layer = 1"),
                Arguments.of("fewer layers than n_layer", withConfig("fewer", config(4, 2, 8, 16, 20)),
                        "missing tensor 'h.2.ln_1.weight'"),
                Arguments.of("bad config JSON", withConfig("badjson", "{\"n_layer\": 2,\n\"n_head\": 2,,}"),
                        "config.json: invalid JSON at line 2"),
                Arguments.of("config without a field", withConfig("nofield", "{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 8, \"vocab_size\": 20}"),
                        "config has no 'n_positions'"),
                Arguments.of("config n_embd not a multiple of n_head", withConfig("heads", config(2, 3, 8, 16, 20)),
                        "is not a multiple of n_head"),
                Arguments.of("config not an object", withConfig("arr", "[1, 2]"),
                        "config is not a JSON object"),
                Arguments.of("missing config.json", missing("nocfg", "config.json"), "missing config.json"),
                Arguments.of("missing model.safetensors", missing("nost", "model.safetensors"), "missing model.safetensors"),
                Arguments.of("not a directory", tmp.resolve("does-not-exist"), "no such directory"),
                // issue 15: config sizes checked before anything is sized from them, unimplemented options refused
                Arguments.of("huge n_layer", withConfig("hugelayers", config(1_000_000_000, 2, 8, 16, 20)),
                        "config 'n_layer' = 1000000000 is beyond any runnable GPT-2"),
                Arguments.of("n_layer beyond the tensors", withConfig("manylayers", config(4000, 2, 8, 16, 20)),
                        "missing tensor 'h.2.ln_1.weight' (fewer layers than config n_layer = 4000: the file has 24 block tensors"),
                Arguments.of("non-integer size", withConfig("frac", config(2, 2, 8, 16, 20).replace("\"n_layer\": 2", "\"n_layer\": 1.5")),
                        "config 'n_layer' is 1.5, not an integer"),
                Arguments.of("n_inner other than 4 n_embd", withConfig("inner", config(2, 2, 8, 16, 20).replace("{", "{\"n_inner\": 16, ")),
                        "n_inner = 16 is not implemented (nshap's MLP is 4 x n_embd = 32)"),
                Arguments.of("scale_attn_by_inverse_layer_idx", withConfig("invidx",
                        config(2, 2, 8, 16, 20).replace("{", "{\"scale_attn_by_inverse_layer_idx\": true, ")),
                        "scale_attn_by_inverse_layer_idx = true is not implemented"),
                Arguments.of("another model_type", withConfig("llama", config(2, 2, 8, 16, 20).replace("{", "{\"model_type\": \"llama\", ")),
                        "model_type 'llama' is not gpt2"),
                Arguments.of("non-canonical layer number", withHeader("h00", h -> {
                    ObjectNode t = (ObjectNode) h.remove("transformer.h.0.ln_1.weight");
                    h.set("transformer.h.00.ln_1.weight", t);
                }), "tensor 'transformer.h.00.ln_1.weight' has layer number '00' (expected h.0.ln_1.weight)"),
                Arguments.of("config nested past the depth limit", withConfig("deep", "[".repeat(5000) + "]".repeat(5000)),
                        "config.json: invalid JSON"),
                Arguments.of("two JSON documents in config.json", withConfig("two", config(2, 2, 8, 16, 20) + " {}"),
                        "config.json: invalid JSON"),
                Arguments.of("NaN weight", nonFinite("nan", Float.NaN), "tensor 'transformer.h.1.mlp.c_fc.weight' has 1 non-finite value"),
                Arguments.of("infinite weight", nonFinite("inf", Float.NEGATIVE_INFINITY),
                        "(element 3 is -Infinity); pass --allow-nonfinite-weights"),
                Arguments.of("vocab id 2^31-1", withBpe("bigid", "{\"a\": 0, \"b\": 2147483647}", "#version: 0.2\na b\n"),
                        "id 2147483647 of token 'b' is beyond any GPT-2 vocabulary"),
                Arguments.of("vocab.json without merges.txt", withFile("halfbpe", "vocab.json", "{}"), "vocab.json but no merges.txt"),
                Arguments.of("bad merges.txt", withBpe("badmerges", "{\"a\": 0}", "#version: 0.2\na b c\n"), "merges.txt: line 2")
        );
    }

    /** The valid checkpoint with element 3 of h.1's c_fc weight replaced by {@code v}. */
    static Path nonFinite(String name, float v) throws Exception {
        String t = "transformer.h.1.mlp.c_fc.weight";
        long at = header.get(t).get("data_offsets").get(0).asLong() + 3 * 4;
        byte[] d = data.clone();
        ByteBuffer.wrap(d).order(ByteOrder.LITTLE_ENDIAN).putFloat((int) at, v);
        String hs = compact(header);
        return withWeights(name, assemble(hs, hs.getBytes(StandardCharsets.UTF_8).length, d));
    }

    /** With the flag the same checkpoint loads, and the warning names the tensor. */
    @Test void nonFiniteWeightsLoadWithTheExplicitFlagAndAWarning() throws Exception {
        Path d = tmp.resolve("nan");
        if (!Files.exists(d)) nonFinite("nan", Float.NaN);
        java.io.PrintStream old = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new java.io.PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            assertTrue(Float.isNaN(Checkpoint.load(d, true).weights().blocks[1].fcW[3]));
        } finally {
            System.setErr(old);
        }
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("WARNING") && err.toString(StandardCharsets.UTF_8)
                .contains("transformer.h.1.mlp.c_fc.weight"), err.toString(StandardCharsets.UTF_8));
        Cli r = Cli.run("model", "inspect", "--allow-nonfinite-weights", d.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("non-finite"), r.err());
    }

    static Path missing(String name, String file) throws Exception {
        Path d = Files.createDirectories(tmp.resolve(name));
        for (String f : List.of("config.json", "model.safetensors"))
            if (!f.equals(file)) Files.copy(valid.resolve(f), d.resolve(f));
        return d;
    }

    static Path withFile(String name, String file, String content) throws Exception {
        Path d = missing(name, "");
        Files.writeString(d.resolve(file), content);
        return d;
    }

    static Path withBpe(String name, String vocab, String merges) throws Exception {
        Path d = withFile(name, "vocab.json", vocab);
        Files.writeString(d.resolve("merges.txt"), merges);
        return d;
    }

    /** Drops the last tensor (ln_f.bias) from header and data alike, so the file itself is consistent. */
    static Path missingTensor(String last) throws Exception {
        ObjectNode h = header.deepCopy();
        ArrayNode o = offsets(h, last);
        assertEquals(data.length, o.get(1).asLong(), "ln_f.bias is written last");
        byte[] d = Arrays.copyOf(data, (int) o.get(0).asLong());
        h.remove(last);
        String s = compact(h);
        return withWeights("missing", assemble(s, s.getBytes(StandardCharsets.UTF_8).length, d));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void refusedWithOneLineByLoadAndByTheCli(String what, Path dir, String expected) {
        NshapException e = assertThrows(NshapException.class, () -> Checkpoint.load(dir), what);
        String m = e.getMessage();
        assertTrue(m.contains(expected), what + ": " + m);
        assertFalse(m.contains("\n"), what + ": " + m);

        Cli r = Cli.run("model", "inspect", dir.toString());
        assertEquals(2, r.code(), what + ": " + r.err());
        assertEquals("", r.out(), what);
        // the one printing place makes control characters visible (a DEL byte of a swallowed header, a newline)
        assertEquals(List.of(dev.nshap.cli.Main.errorLine(m)), r.err().lines().toList(), what);
    }

    @Test void theValidBaseLoads() {
        assertEquals(TINY, Checkpoint.load(valid).config());
        assertEquals(0, Cli.run("model", "inspect", valid.toString()).code());
    }

    @Test void everyCaseHasItsOwnMessage() throws Exception {
        List<Arguments> all = cases().toList();
        assertTrue(all.size() >= 30);
        Set<String> msgs = new HashSet<>();
        for (Arguments a : all) {
            Path dir = (Path) a.get()[1];
            String m = assertThrows(NshapException.class, () -> Checkpoint.load(dir)).getMessage();
            // Messages name the file; strip the directory so only the diagnosis is compared.
            msgs.add(m.replace(dir.toString(), "DIR"));
        }
        assertEquals(all.size(), msgs.size(), String.join("\n", msgs));
    }
}
