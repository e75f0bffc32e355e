package dev.nshap.convert;

import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.cli.Main;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Every supported format, written by the test, converts to the same tensors and runs to the same logits. */
class ConverterTest {
    @TempDir Path tmp;

    static final int[] TOKENS = {5, 17, 99, 0, 42, 100, 7, 63, 3, 88, 21, 1};

    static float[] logits(GPT2Weights w) {
        return new CpuBackend(w).forward(new ForwardRequest().addLast(TOKENS)).logits()[0];
    }

    /** Converted weights equal the originals bit for bit, tensor by tensor. */
    static void assertSameBits(GPT2Weights want, GPT2Weights got) {
        assertEquals(want.config, got.config);
        LinkedHashMap<String, float[]> a = Fixtures.arrays(want), b = Fixtures.arrays(got);
        for (String name : a.keySet()) {
            float[] x = a.get(name), y = b.get(name);
            assertEquals(x.length, y.length, name);
            for (int i = 0; i < x.length; i++)
                if (Float.floatToRawIntBits(x[i]) != Float.floatToRawIntBits(y[i]))
                    fail(name + "[" + i + "]: want " + x[i] + " got " + y[i]);
        }
        assertTrue(got.tied(), "GPT-2's head is tied to wte");
    }

    /** Every value within the dtype's rounding (relative 2^-8 for bf16, 2^-11 for f16, both round-to-nearest). */
    static void assertWithinRounding(GPT2Weights want, GPT2Weights got, double rel) {
        LinkedHashMap<String, float[]> a = Fixtures.arrays(want), b = Fixtures.arrays(got);
        boolean anyDiff = false;
        for (String name : a.keySet()) {
            float[] x = a.get(name), y = b.get(name);
            for (int i = 0; i < x.length; i++) {
                double tol = Math.max(Math.abs(x[i]) * rel, 0x1p-24);
                assertTrue(Math.abs(x[i] - y[i]) <= tol, name + "[" + i + "]: " + x[i] + " vs " + y[i]);
                anyDiff |= x[i] != y[i];
            }
        }
        assertTrue(anyDiff, "a lower-precision dtype must round something");
    }

    static void assertLogitsEqual(GPT2Weights want, GPT2Weights got) {
        float[] x = logits(want), y = logits(got);
        assertEquals(x.length, y.length);
        for (int i = 0; i < x.length; i++) assertEquals(Float.floatToRawIntBits(x[i]), Float.floatToRawIntBits(y[i]), "logit " + i);
    }

    static void assertLogitsClose(GPT2Weights want, GPT2Weights got, double tol) {
        float[] x = logits(want), y = logits(got);
        double max = 0;
        for (int i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i] - y[i]));
        assertTrue(max <= tol, "max logit difference " + max + " > " + tol);
    }

    record Run(int code, String out, String err) {}

    static Run cli(String... args) {
        PrintStream o = System.out, e = System.err;
        ByteArrayOutputStream bo = new ByteArrayOutputStream(), be = new ByteArrayOutputStream();
        System.setOut(new PrintStream(bo, true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(be, true, StandardCharsets.UTF_8));
        try {
            int code = Main.run(args);
            return new Run(code, bo.toString(StandardCharsets.UTF_8), be.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
    }

    GPT2Weights convertAndLoad(Path from, String... extra) throws java.io.IOException {
        Path out = tmp.resolve("out-" + System.nanoTime());
        String[] args = new String[4 + extra.length];
        args[0] = "convert"; args[1] = "--from"; args[2] = from.toString(); args[3] = "--out=" + out;
        System.arraycopy(extra, 0, args, 4, extra.length);
        Run r = cli(args);
        assertEquals(0, r.code, r.err);
        assertTrue(r.out.contains("MB/s"), r.out);
        assertEquals(2, Manifest.verify(out), "config.json and model.safetensors");
        assertTrue(Files.getPosixFilePermissions(out).contains(java.nio.file.attribute.PosixFilePermission.OTHERS_READ),
                "a converted model is readable like any directory, not private like a temp dir");
        return Checkpoint.load(out).weights();
    }

    // ------------------------------------------------------------------ formats

    @Test void safetensorsDirectoryRoundTripsBitForBit() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 1);
        Path src = tmp.resolve("hf");
        Checkpoint.write(src, w, "f32", null);
        GPT2Weights got = convertAndLoad(src);
        assertSameBits(w, got);
        assertLogitsEqual(w, got);
    }

    @Test void untiedHeadStaysUntied() throws Exception {
        GPT2Config c = Fixtures.config();
        GPT2Weights tied = Fixtures.weights(c, 15);
        GPT2Weights w = new GPT2Weights(c, false);
        Map<String, float[]> from = Fixtures.arrays(tied), to = Fixtures.arrays(w);
        from.forEach((k, v) -> System.arraycopy(v, 0, to.get(k), 0, v.length));
        java.util.Random r = new java.util.Random(16);
        for (int i = 0; i < w.lmHead.length; i++) w.lmHead[i] = (float) r.nextGaussian();
        Path src = tmp.resolve("untied");
        Checkpoint.write(src, w, "f32", null);
        GPT2Weights got = convertAndLoad(src);
        assertFalse(got.tied());
        for (int i = 0; i < w.lmHead.length; i++) assertEquals(Float.floatToRawIntBits(w.lmHead[i]), Float.floatToRawIntBits(got.lmHead[i]));
        assertLogitsEqual(w, got);
    }

    @Test void shardedSafetensorsWithoutPrefix() throws Exception {
        GPT2Config c = Fixtures.config();
        GPT2Weights w = Fixtures.weights(c, 2);
        Path src = Files.createDirectories(tmp.resolve("sharded"));
        Files.writeString(src.resolve("config.json"), dev.nshap.io.Json.write(c.toJson()));
        LinkedHashMap<String, float[]> all = Fixtures.arrays(w);
        LinkedHashMap<String, SafeTensors.Tensor> a = new LinkedHashMap<>(), b = new LinkedHashMap<>();
        StringBuilder map = new StringBuilder();
        for (Map.Entry<String, float[]> e : all.entrySet()) {
            boolean first = e.getKey().startsWith("wte") || e.getKey().startsWith("wpe") || e.getKey().startsWith("h.0.");
            (first ? a : b).put(e.getKey(), new SafeTensors.Tensor("F32", Fixtures.shape(c, e.getKey()), e.getValue()));
            map.append(map.length() == 0 ? "" : ",").append('"').append(e.getKey()).append("\":\"model-0000")
                    .append(first ? 1 : 2).append("-of-00002.safetensors\"");
        }
        SafeTensors.write(src.resolve("model-00001-of-00002.safetensors"), a, null);
        SafeTensors.write(src.resolve("model-00002-of-00002.safetensors"), b, null);
        Files.writeString(src.resolve("model.safetensors.index.json"),
                "{\"metadata\":{\"total_size\":0},\"weight_map\":{" + map + "}}");
        GPT2Weights got = convertAndLoad(src);
        assertSameBits(w, got);
        assertLogitsEqual(w, got);
    }

    @Test void pytorchZipF32WithTiedHeadMaskBuffersAndStridedViews() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 3);
        Path src = Files.createDirectories(tmp.resolve("pt"));
        Files.writeString(src.resolve("config.json"), dev.nshap.io.Json.write(w.config.toJson()));
        Fixtures.writeTorchZip(src.resolve("pytorch_model.bin"), w, "F32");
        GPT2Weights got = convertAndLoad(src);
        assertSameBits(w, got);
        assertLogitsEqual(w, got);
    }

    @Test void pytorchZipBf16KeepsBf16() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 4);
        Path src = Files.createDirectories(tmp.resolve("ptbf16"));
        Files.writeString(src.resolve("config.json"), dev.nshap.io.Json.write(w.config.toJson()));
        Fixtures.writeTorchZip(src.resolve("pytorch_model.bin"), w, "BF16");
        Path out = tmp.resolve("o");
        assertEquals(0, cli("convert", "--from", src.toString(), "--out", out.toString()).code);
        assertEquals(Map.of("BF16", 28), Checkpoint.inspect(out).dtypeCounts(), "source dtype kept by default");
        GPT2Weights got = Checkpoint.load(out).weights();
        assertWithinRounding(w, got, 0x1p-8);
        // bf16 -> bf16 is lossless: the converted values are exactly the stored bf16 values
        for (int i = 0; i < w.wte.length; i++) assertEquals(Fixtures.fromBf16(Fixtures.bf16(w.wte[i])), got.wte[i]);
        assertLogitsClose(w, got, 0.05);
    }

    @Test void pytorchZipF16ToF32IsExact() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 5);
        Path src = Files.createDirectories(tmp.resolve("ptf16"));
        Files.writeString(src.resolve("config.json"), dev.nshap.io.Json.write(w.config.toJson()));
        Fixtures.writeTorchZip(src.resolve("pytorch_model.bin"), w, "F16");
        GPT2Weights got = convertAndLoad(src, "--dtype", "f32");
        assertWithinRounding(w, got, 0x1p-11);
        assertLogitsClose(w, got, 0.02);
    }

    @Test void pytorchLegacyFormat() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 6);
        Path src = Files.createDirectories(tmp.resolve("legacy"));
        Files.writeString(src.resolve("config.json"), dev.nshap.io.Json.write(w.config.toJson()));
        Fixtures.TorchDict d = Fixtures.torchDict(w, "F32", true);
        Fixtures.writeTorchLegacy(src.resolve("pytorch_model.bin"), d.entries, d.storages, d.elemSize);
        GPT2Weights got = convertAndLoad(src);
        assertSameBits(w, got);
        assertLogitsEqual(w, got);
    }

    @Test void shardedPytorchBins() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 7);
        Path src = Files.createDirectories(tmp.resolve("ptsharded"));
        Files.writeString(src.resolve("config.json"), dev.nshap.io.Json.write(w.config.toJson()));
        Fixtures.TorchDict d = Fixtures.torchDict(w, "F32", false);
        // split by entry: the first 10 in shard 1, the rest in shard 2, each with only the storages it uses
        List<Fixtures.TEntry> e1 = d.entries.subList(0, 10), e2 = d.entries.subList(10, d.entries.size());
        StringBuilder map = new StringBuilder();
        int part = 1;
        for (List<Fixtures.TEntry> es : List.of(e1, e2)) {
            Map<String, byte[]> st = new LinkedHashMap<>();
            for (Fixtures.TEntry e : es) {
                st.put(e.key(), d.storages.get(e.key()));
                map.append(map.length() == 0 ? "" : ",").append('"').append(e.name()).append("\":\"pytorch_model-0000")
                        .append(part).append("-of-00002.bin\"");
            }
            Fixtures.writeTorchZip(src.resolve("pytorch_model-0000" + part + "-of-00002.bin"), "pytorch_model-0000" + part,
                    Fixtures.statePickle(es, false), st);
            part++;
        }
        Files.writeString(src.resolve("pytorch_model.bin.index.json"), "{\"weight_map\":{" + map + "}}");
        GPT2Weights got = convertAndLoad(src);
        assertSameBits(w, got);
        assertLogitsEqual(w, got);
    }

    @Test void llmcFp32DropsVocabPaddingAndTransposes() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 8);
        Path f = tmp.resolve("gpt2_tiny.bin");
        Fixtures.writeLlmc(f, w, false, 128);
        GPT2Weights got = convertAndLoad(f);
        assertSameBits(w, got);
        assertLogitsEqual(w, got);
    }

    @Test void llmcBf16() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 9);
        Path f = tmp.resolve("gpt2_tiny_bf16.bin");
        Fixtures.writeLlmc(f, w, true, 104);
        Path out = tmp.resolve("o");
        assertEquals(0, cli("convert", "--from", f.toString(), "--out", out.toString()).code);
        assertEquals(Map.of("BF16", 28), Checkpoint.inspect(out).dtypeCounts());
        GPT2Weights got = Checkpoint.load(out).weights();
        assertWithinRounding(w, got, 0x1p-8);
        assertLogitsClose(w, got, 0.05);
    }

    @Test void f32ToBf16AndF16WithinRounding() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 10);
        Path src = tmp.resolve("hf");
        Checkpoint.write(src, w, "f32", null);
        GPT2Weights bf = convertAndLoad(src, "--dtype", "bf16");
        assertWithinRounding(w, bf, 0x1p-8);
        assertLogitsClose(w, bf, 0.05);
        GPT2Weights h = convertAndLoad(src, "--dtype", "F16");
        assertWithinRounding(w, h, 0x1p-11);
        assertLogitsClose(w, h, 0.02);
    }

    @Test void tokenizerFilesTravelWithTheModel() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 11);
        Path src = tmp.resolve("hf");
        Checkpoint.write(src, w, "f32", null);
        Files.writeString(src.resolve("vocab.json"), "{\"a\": 0}");
        Files.writeString(src.resolve("merges.txt"), "#version: 0.2\n");
        Path out = tmp.resolve("o");
        assertEquals(0, cli("convert", "--from", src.toString(), "--out", out.toString()).code);
        assertEquals("{\"a\": 0}", Files.readString(out.resolve("vocab.json")));
        assertEquals(4, Manifest.verify(out));
    }

    // ------------------------------------------------------------------ manifest / verify

    @Test void verifyPassesThenNamesTheTamperedOrMissingFile() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 12);
        Path src = tmp.resolve("hf");
        Checkpoint.write(src, w, "f32", null);
        Path out = tmp.resolve("o");
        assertEquals(0, cli("convert", "--from", src.toString(), "--out", out.toString()).code);
        Run ok = cli("model", "verify", out.toString());
        assertEquals(0, ok.code, ok.err);
        assertTrue(ok.out.startsWith("ok"), ok.out);

        byte[] b = Files.readAllBytes(out.resolve("model.safetensors"));
        b[b.length - 3] ^= 1; // one bit of one weight
        Files.write(out.resolve("model.safetensors"), b);
        Run bad = cli("model", "verify", out.toString());
        assertEquals(2, bad.code);
        assertTrue(bad.err.contains("model.safetensors") && bad.err.contains("differs"), bad.err);
        assertEquals(1, bad.err.strip().lines().count(), bad.err);

        Files.delete(out.resolve("config.json"));
        Run missing = cli("model", "verify", out.toString());
        assertEquals(2, missing.code);
        assertTrue(missing.err.contains("config.json is missing"), missing.err);
    }

    @Test void forceReplacesAnExistingModel() throws Exception {
        Path a = tmp.resolve("a"), b = tmp.resolve("b"), out = tmp.resolve("o");
        GPT2Weights wa = Fixtures.weights(Fixtures.config(), 13), wb = Fixtures.weights(Fixtures.config(), 14);
        Checkpoint.write(a, wa, "f32", null);
        Checkpoint.write(b, wb, "f32", null);
        Files.writeString(a.resolve("vocab.json"), "{\"a\": 0}");
        Files.writeString(a.resolve("merges.txt"), "#version: 0.2\n");
        assertEquals(0, cli("convert", "--from", a.toString(), "--out", out.toString()).code);
        Run refused = cli("convert", "--from", b.toString(), "--out", out.toString());
        assertEquals(2, refused.code);
        assertTrue(refused.err.contains("--force"), refused.err);
        assertSameBits(wa, Checkpoint.load(out).weights());
        assertEquals(0, cli("convert", "--from", b.toString(), "--out", out.toString(), "--force").code);
        assertSameBits(wb, Checkpoint.load(out).weights());
        assertEquals(2, Manifest.verify(out));
        assertFalse(Files.exists(out.resolve("vocab.json")), "the replaced model's tokenizer is gone");
    }
}
