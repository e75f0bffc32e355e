package dev.nshap.model;

import dev.nshap.NshapException;
import dev.nshap.io.AtomicFiles;
import dev.nshap.io.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

class CheckpointTest {
    @TempDir Path tmp;

    static final GPT2Config TINY = new GPT2Config(2, 2, 8, 16, 20, 1e-5, "gelu_new");

    /** Every parameter array of {@code w} in a fixed order, for whole-model comparisons. */
    static List<float[]> arrays(GPT2Weights w) {
        List<float[]> r = new ArrayList<>(List.of(w.wte, w.wpe));
        for (GPT2Weights.Block b : w.blocks)
            r.addAll(List.of(b.ln1W, b.ln1B, b.attnW, b.attnB, b.attnProjW, b.attnProjB, b.ln2W, b.ln2B,
                    b.fcW, b.fcB, b.projW, b.projB));
        r.add(w.lnfW);
        r.add(w.lnfB);
        r.add(w.lmHead);
        return r;
    }

    static void assertSameWeights(GPT2Weights a, GPT2Weights b) {
        List<float[]> x = arrays(a), y = arrays(b);
        assertEquals(x.size(), y.size());
        for (int i = 0; i < x.size(); i++) assertArrayEquals(x.get(i), y.get(i), "array " + i);
    }

    /** Random weights whose biases and LayerNorms are not the trivial 0/1, so misplaced tensors are caught. */
    static GPT2Weights weights(GPT2Config c, long seed) {
        GPT2Weights w = ModelInit.random(c, seed);
        java.util.Random r = new java.util.Random(seed);
        for (GPT2Weights.Block b : w.blocks)
            for (float[] a : List.of(b.ln1W, b.ln1B, b.attnB, b.attnProjB, b.ln2W, b.ln2B, b.fcB, b.projB))
                for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian();
        for (int i = 0; i < w.lnfB.length; i++) w.lnfB[i] = (float) r.nextGaussian();
        return w;
    }

    /** Writes a checkpoint dir by hand: config.json of {@code cfg} + the given tensors. */
    static Path craft(Path dir, GPT2Config cfg, LinkedHashMap<String, SafeTensors.Tensor> tensors) throws Exception {
        Files.createDirectories(dir);
        AtomicFiles.writeString(dir.resolve("config.json"), Json.write(cfg.toJson()));
        SafeTensors.write(dir.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
        return dir;
    }

    static LinkedHashMap<String, SafeTensors.Tensor> hfTensors(GPT2Weights w) {
        return Checkpoint.tensors(w, "F32");
    }

    @Test void writeThenLoadGivesTheSameWeightsConfigAndSha() throws Exception {
        GPT2Weights w = weights(TINY, 1);
        Path dir = tmp.resolve("m");
        Checkpoint.write(dir, w, "f32", Map.of("seed", "1"));
        try (Stream<Path> s = Files.list(tmp)) { assertEquals(List.of(dir), s.toList()); } // no temp dir left behind
        Checkpoint.LoadedModel m = Checkpoint.load(dir);
        assertEquals(TINY, m.config());
        assertTrue(m.weights().tied());
        assertSameWeights(w, m.weights());
        String want = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                .digest(Files.readAllBytes(dir.resolve("model.safetensors"))));
        assertEquals(want, m.weightsSha256());
        assertEquals("r50k_base", m.tokenizer().name());
        assertTrue(m.dtypes().values().stream().allMatch("F32"::equals));
        assertEquals(2 + 12 * 2 + 2, m.dtypes().size());
        SafeTensors st = SafeTensors.open(dir.resolve("model.safetensors"));
        assertTrue(st.has("transformer.h.0.ln_1.weight"));
        assertFalse(st.has("lm_head.weight"));
        assertEquals("1", st.metadata().get("seed"));
        assertEquals("pt", st.metadata().get("format"));
        // Rewriting into an existing directory replaces the files in place.
        Checkpoint.write(dir, weights(TINY, 2), "f32", Map.of());
        assertSameWeights(weights(TINY, 2), Checkpoint.load(dir).weights());
    }

    @Test void concurrentWritersOfTheSameNewDirectoryAllSucceed() throws Exception {
        GPT2Weights w = weights(TINY, 9);
        for (int round = 0; round < 5; round++) {
            Path dir = tmp.resolve("race" + round);
            java.util.concurrent.CyclicBarrier go = new java.util.concurrent.CyclicBarrier(4);
            List<Thread> ts = new ArrayList<>();
            java.util.concurrent.ConcurrentLinkedQueue<Throwable> errors = new java.util.concurrent.ConcurrentLinkedQueue<>();
            for (int i = 0; i < 4; i++) {
                Thread t = new Thread(() -> {
                    try { go.await(); Checkpoint.write(dir, w, "f32", Map.of()); } catch (Throwable e) { errors.add(e); }
                });
                t.start();
                ts.add(t);
            }
            for (Thread t : ts) t.join();
            assertTrue(errors.isEmpty(), errors.toString());
            assertSameWeights(w, Checkpoint.load(dir).weights());
        }
        try (Stream<Path> s = Files.list(tmp)) { // no temp directories left behind
            assertTrue(s.allMatch(p -> p.getFileName().toString().startsWith("race")));
        }
    }

    @Test void prefixedAndUnprefixedNamesLoadIdentically() throws Exception {
        GPT2Weights w = weights(TINY, 3);
        LinkedHashMap<String, SafeTensors.Tensor> plain = new LinkedHashMap<>();
        hfTensors(w).forEach((k, v) -> plain.put(k.replace("transformer.", ""), v));
        assertTrue(plain.containsKey("h.1.mlp.c_proj.weight"));
        GPT2Weights a = Checkpoint.load(craft(tmp.resolve("a"), TINY, hfTensors(w))).weights();
        GPT2Weights b = Checkpoint.load(craft(tmp.resolve("b"), TINY, plain)).weights();
        assertSameWeights(a, b);
        assertSameWeights(w, b);
    }

    @Test void explicitLmHeadIsKeptAndTiedHeadSharesWte() throws Exception {
        GPT2Weights w = weights(TINY, 4);
        float[] head = new float[w.wte.length];
        for (int i = 0; i < head.length; i++) head[i] = i * 0.25f;
        LinkedHashMap<String, SafeTensors.Tensor> t = hfTensors(w);
        t.put("lm_head.weight", new SafeTensors.Tensor("F32", new long[]{20, 8}, head));
        GPT2Weights e = Checkpoint.load(craft(tmp.resolve("e"), TINY, t)).weights();
        assertFalse(e.tied());
        assertArrayEquals(head, e.lmHead);
        assertArrayEquals(w.wte, e.wte);
        GPT2Weights tied = Checkpoint.load(craft(tmp.resolve("t"), TINY, hfTensors(w))).weights();
        assertSame(tied.wte, tied.lmHead);
        // A written untied model round-trips with its own head.
        Checkpoint.write(tmp.resolve("w"), e, "f32", Map.of());
        assertTrue(SafeTensors.open(tmp.resolve("w/model.safetensors")).has("lm_head.weight"));
        assertArrayEquals(head, Checkpoint.load(tmp.resolve("w")).weights().lmHead);
    }

    @Test void attentionMaskBuffersAreIgnored() throws Exception {
        GPT2Weights w = weights(TINY, 5);
        LinkedHashMap<String, SafeTensors.Tensor> t = hfTensors(w);
        for (int l = 0; l < 2; l++) {
            t.put("transformer.h." + l + ".attn.bias", new SafeTensors.Tensor("F32", new long[]{1, 1, 16, 16}, new float[256]));
            t.put("transformer.h." + l + ".attn.masked_bias", new SafeTensors.Tensor("F32", new long[]{}, new float[]{-1e4f}));
        }
        Checkpoint.LoadedModel m = Checkpoint.load(craft(tmp.resolve("m"), TINY, t));
        assertSameWeights(w, m.weights());
        assertFalse(m.dtypes().containsKey("transformer.h.0.attn.bias"));
    }

    @Test void halfPrecisionCheckpointsLoadWithinTheirPrecision() throws Exception {
        GPT2Weights w = weights(TINY, 6);
        for (String dt : List.of("f16", "bf16")) {
            Path dir = tmp.resolve(dt);
            Checkpoint.write(dir, w, dt, Map.of());
            Checkpoint.LoadedModel m = Checkpoint.load(dir);
            assertTrue(m.dtypes().values().stream().allMatch(dt.toUpperCase()::equals));
            double relTol = dt.equals("f16") ? 0x1.0p-11 : 0x1.0p-8; // half an ulp of a 10 / 7-bit mantissa
            List<float[]> x = arrays(w), y = arrays(m.weights());
            for (int i = 0; i < x.size(); i++)
                for (int j = 0; j < x.get(i).length; j++) {
                    float a = x.get(i)[j], b = y.get(i)[j];
                    // F16 subnormals (|a| < 2^-14) have an absolute grid of 2^-24.
                    assertEquals(a, b, Math.abs(a) * relTol + 0x1.0p-25, dt + " array " + i + "[" + j + "]");
                }
        }
    }

    // ------------------------------------------------------------------ refusals

    private String refused(Path dir) {
        NshapException e = assertThrows(NshapException.class, () -> Checkpoint.load(dir));
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        return e.getMessage();
    }

    private Path variant(String name, GPT2Config cfg, Consumer<LinkedHashMap<String, SafeTensors.Tensor>> edit) throws Exception {
        LinkedHashMap<String, SafeTensors.Tensor> t = hfTensors(weights(TINY, 7));
        edit.accept(t);
        return craft(tmp.resolve(name), cfg, t);
    }

    static GPT2Config with(int nLayer, int nEmbd, int nPositions, int vocab) {
        return new GPT2Config(nLayer, 2, nEmbd, nPositions, vocab, 1e-5, "gelu_new");
    }

    @Test void refusesConfigThatDisagreesWithTheTensors() throws Exception {
        String m = refused(variant("vocab", with(2, 8, 16, 21), t -> {}));
        assertTrue(m.contains("20 rows != config vocab_size 21"), m);
        m = refused(variant("pos", with(2, 8, 17, 20), t -> {}));
        assertTrue(m.contains("16 rows != config n_positions 17"), m);
        m = refused(variant("embd", with(2, 16, 16, 20), t -> {}));
        assertTrue(m.contains("8 columns != config n_embd 16"), m);
        m = refused(variant("more", with(1, 8, 16, 20), t -> {}));
        assertTrue(m.contains("layer 1 but config n_layer = 1"), m);
        m = refused(variant("fewer", with(3, 8, 16, 20), t -> {}));
        assertTrue(m.contains("missing tensor 'h.2.ln_1.weight'") && m.contains("fewer layers"), m);
    }

    @Test void refusesMissingAndMisshapenTensors() throws Exception {
        String m = refused(variant("noln", TINY, t -> t.remove("transformer.ln_f.bias")));
        assertTrue(m.contains("missing tensor 'ln_f.bias'"), m);
        m = refused(variant("transposed", TINY, t -> {
            SafeTensors.Tensor fc = t.get("transformer.h.1.mlp.c_fc.weight");
            t.put("transformer.h.1.mlp.c_fc.weight", new SafeTensors.Tensor("F32", new long[]{32, 8}, fc.data()));
        }));
        assertTrue(m.contains("'transformer.h.1.mlp.c_fc.weight' has shape [32, 8] but the config implies [8, 32]"), m);
        m = refused(variant("extra", TINY, t -> t.put("score.weight", new SafeTensors.Tensor("F32", new long[]{1}, new float[1]))));
        assertTrue(m.contains("unexpected tensor 'score.weight'"), m);
        m = refused(variant("dup", TINY, t -> t.put("wpe.weight", t.get("transformer.wpe.weight"))));
        assertTrue(m.contains("are the same parameter"), m);
    }

    @Test void refusesNonFloatWeights() throws Exception {
        Path dir = variant("int", TINY, t -> {});
        // Rewrite ln_f.bias's dtype in the header to I32 (same byte size as F32, so only the dtype is wrong).
        Path f = dir.resolve("model.safetensors");
        byte[] b = Files.readAllBytes(f);
        String s = new String(b, java.nio.charset.StandardCharsets.ISO_8859_1);
        int at = s.indexOf("\"transformer.ln_f.bias\":{\"dtype\":\"F32\"");
        assertTrue(at > 0);
        int d = s.indexOf("F32", at);
        b[d] = 'I';
        Files.write(f, b);
        String m = refused(dir);
        assertTrue(m.contains("has dtype I32; weights must be F32, F16 or BF16"), m);
    }

    @Test void refusesMissingFilesAndBadConfig() throws Exception {
        assertTrue(refused(tmp.resolve("absent")).contains("no such directory"));
        Path a = variant("a", TINY, t -> {});
        Files.delete(a.resolve("config.json"));
        assertTrue(refused(a).contains("missing config.json"));
        Path b = variant("b", TINY, t -> {});
        Files.delete(b.resolve("model.safetensors"));
        assertTrue(refused(b).contains("missing model.safetensors"));
        Path c = variant("c", TINY, t -> {});
        Files.writeString(c.resolve("config.json"), "{\"n_layer\": 2,\n \"n_head\": }");
        String m = refused(c);
        assertTrue(m.contains("invalid JSON at line 2"), m);
        Path d = variant("d", TINY, t -> {});
        Files.writeString(d.resolve("config.json"), "{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 8, \"n_positions\": 16}");
        assertTrue(refused(d).contains("no 'vocab_size'"));
        Path e = variant("e", TINY, t -> {});
        Files.writeString(e.resolve("vocab.json"), "{}");
        assertTrue(refused(e).contains("vocab.json but no merges.txt"));
    }

    @Test void refusesATruncatedWeightsFile() throws Exception {
        Path dir = variant("trunc", TINY, t -> {});
        Path f = dir.resolve("model.safetensors");
        byte[] b = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(b, b.length - 100));
        String m = refused(dir);
        assertTrue(m.contains("truncated: the header describes") && m.contains("(100 missing)"), m);
    }

    @Test void inspectCountsParametersWithoutReadingWeights() throws Exception {
        Path dir = tmp.resolve("m");
        Checkpoint.write(dir, weights(TINY, 8), "bf16", Map.of());
        Checkpoint.Layout lay = Checkpoint.inspect(dir);
        // V*C + P*C + L*(4C + 3C^2 + 3C + C^2 + C + 4C^2 + 4C + 4C^2 + C) + 2C with V=20, P=16, C=8, L=2
        long C = 8, perBlock = 4 * C + 3 * C * C + 3 * C + C * C + C + 4 * C * C + 4 * C + 4 * C * C + C;
        assertEquals(20 * C + 16 * C + 2 * perBlock + 2 * C, lay.parameterCount());
        assertEquals(weights(TINY, 8).parameterCount(), lay.parameterCount());
        assertEquals(Map.of("BF16", 28), lay.dtypeCounts());
        assertTrue(lay.tiedHead());
    }

    /**
     * Names written literally as Hugging Face spells them, each tensor filled with its own constant: the loader must
     * put every one into the field of that name (a loader and writer that swapped two same-shaped tensors the same
     * way would pass a round trip, not this).
     */
    @Test void everyHuggingFaceNameLandsInItsOwnField() throws Exception {
        GPT2Config c = TINY;
        int C = c.nEmbd(), H = c.nInner();
        LinkedHashMap<String, SafeTensors.Tensor> t = new LinkedHashMap<>();
        Map<String, Float> value = new LinkedHashMap<>();
        java.util.function.BiConsumer<String, long[]> put = (name, shape) -> {
            float v = value.size() + 1;
            value.put(name, v);
            long n = 1;
            for (long d : shape) n *= d;
            float[] a = new float[(int) n];
            java.util.Arrays.fill(a, v);
            t.put(name, new SafeTensors.Tensor("F32", shape, a));
        };
        put.accept("wte.weight", new long[]{c.vocabSize(), C});
        put.accept("wpe.weight", new long[]{c.nPositions(), C});
        for (int l = 0; l < c.nLayer(); l++) {
            String p = "h." + l + ".";
            put.accept(p + "ln_1.weight", new long[]{C});
            put.accept(p + "ln_1.bias", new long[]{C});
            put.accept(p + "attn.c_attn.weight", new long[]{C, 3 * C});
            put.accept(p + "attn.c_attn.bias", new long[]{3 * C});
            put.accept(p + "attn.c_proj.weight", new long[]{C, C});
            put.accept(p + "attn.c_proj.bias", new long[]{C});
            put.accept(p + "ln_2.weight", new long[]{C});
            put.accept(p + "ln_2.bias", new long[]{C});
            put.accept(p + "mlp.c_fc.weight", new long[]{C, H});
            put.accept(p + "mlp.c_fc.bias", new long[]{H});
            put.accept(p + "mlp.c_proj.weight", new long[]{H, C});
            put.accept(p + "mlp.c_proj.bias", new long[]{C});
        }
        put.accept("ln_f.weight", new long[]{C});
        put.accept("ln_f.bias", new long[]{C});
        Path dir = tmp.resolve("literal");
        Files.createDirectories(dir);
        SafeTensors.write(dir.resolve(Checkpoint.WEIGHTS), t, Map.of());
        AtomicFiles.writeString(dir.resolve(Checkpoint.CONFIG), Json.write(c.toJson()));
        GPT2Weights w = Checkpoint.load(dir).weights();
        Map<String, float[]> got = new LinkedHashMap<>();
        got.put("wte.weight", w.wte);
        got.put("wpe.weight", w.wpe);
        got.put("ln_f.weight", w.lnfW);
        got.put("ln_f.bias", w.lnfB);
        for (int l = 0; l < c.nLayer(); l++) {
            GPT2Weights.Block b = w.blocks[l];
            String p = "h." + l + ".";
            got.put(p + "ln_1.weight", b.ln1W); got.put(p + "ln_1.bias", b.ln1B);
            got.put(p + "attn.c_attn.weight", b.attnW); got.put(p + "attn.c_attn.bias", b.attnB);
            got.put(p + "attn.c_proj.weight", b.attnProjW); got.put(p + "attn.c_proj.bias", b.attnProjB);
            got.put(p + "ln_2.weight", b.ln2W); got.put(p + "ln_2.bias", b.ln2B);
            got.put(p + "mlp.c_fc.weight", b.fcW); got.put(p + "mlp.c_fc.bias", b.fcB);
            got.put(p + "mlp.c_proj.weight", b.projW); got.put(p + "mlp.c_proj.bias", b.projB);
        }
        for (var e : value.entrySet()) {
            float[] a = got.get(e.getKey());
            for (float x : a) assertEquals(e.getValue(), x, 0f, e.getKey());
        }
        assertSame(w.wte, w.lmHead, "no lm_head.weight: tied to wte");
    }
}
