package dev.nshap.convert;

import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** Hostile or broken input: one-line error, exit code 2, nothing written. */
class RefusalTest {
    @TempDir Path tmp;

    /** Converts {@code from} expecting refusal; checks the message, the exit code and that nothing was written. */
    void refused(Path from, String... fragments) throws IOException {
        Path outParent = Files.createDirectories(tmp.resolve("outputs"));
        Path out = outParent.resolve("model");
        ConverterTest.Run r = ConverterTest.cli("convert", "--from", from.toString(), "--out", out.toString());
        assertEquals(2, r.code(), "exit code; stderr: " + r.err());
        String err = r.err().strip();
        assertEquals(1, err.lines().count(), "one line: " + err);
        assertTrue(err.startsWith("nshap: "), err);
        for (String f : fragments) assertTrue(err.contains(f), "'" + f + "' in: " + err);
        assertFalse(Files.exists(out), "no output directory");
        try (Stream<Path> s = Files.list(outParent)) {
            assertEquals(0, s.count(), "no temporary leftovers");
        }
        assertEquals("", r.out());
    }

    GPT2Weights w() { return Fixtures.weights(Fixtures.config(), 21); }

    Path dirWithConfig(String name) throws IOException {
        Path d = Files.createDirectories(tmp.resolve(name));
        Files.writeString(d.resolve("config.json"), dev.nshap.io.Json.write(Fixtures.config().toJson()));
        return d;
    }

    /** A valid torch zip's pieces, so each test can break exactly one thing. */
    Fixtures.TorchDict dict() { return Fixtures.torchDict(w(), "F32", true); }

    // ------------------------------------------------------------------ zip container

    @Test void zipEntryWithPathTraversal() throws Exception {
        Path d = dirWithConfig("trav");
        Fixtures.TorchDict t = dict();
        Map<String, byte[]> e = new LinkedHashMap<>();
        e.put("archive/data.pkl", Fixtures.statePickle(t.entries, false));
        e.put("archive/../../evil.sh", "rm -rf /".getBytes(StandardCharsets.US_ASCII));
        t.storages.forEach((k, v) -> e.put("archive/data/" + k, v));
        Fixtures.writeZip(d.resolve("pytorch_model.bin"), e);
        refused(d, "path traversal", "archive/../../evil.sh");
    }

    @Test void zipEntryWithAbsolutePath() throws Exception {
        Path d = dirWithConfig("abs");
        Map<String, byte[]> e = new LinkedHashMap<>();
        e.put("/etc/cron.d/x", new byte[1]);
        Fixtures.writeZip(d.resolve("pytorch_model.bin"), e);
        refused(d, "unsafe");
    }

    @Test void storageEntrySmallerThanItsClaim() throws Exception {
        Path d = dirWithConfig("short");
        Fixtures.TorchDict t = dict();
        byte[] first = t.storages.get("0");
        t.storages.put("0", java.util.Arrays.copyOf(first, first.length - 4));
        Fixtures.writeTorchZip(d.resolve("pytorch_model.bin"), "archive", Fixtures.statePickle(t.entries, false), t.storages);
        refused(d, "storage '0'", "bytes");
    }

    @Test void tensorViewRunsPastItsStorage() throws Exception {
        Path d = dirWithConfig("past");
        Fixtures.TorchDict t = dict();
        List<Fixtures.TEntry> es = new ArrayList<>(t.entries);
        Fixtures.TEntry e = es.get(1); // wpe
        es.set(1, new Fixtures.TEntry(e.name(), e.storageType(), e.key(), e.numel(), 5, e.size(), e.stride()));
        Fixtures.writeTorchZip(d.resolve("pytorch_model.bin"), "archive", Fixtures.statePickle(es, false), t.storages);
        refused(d, "wpe.weight", "out of range");
    }

    @Test void tensorViewsThatOverlap() throws Exception {
        Path d = dirWithConfig("overlap");
        Fixtures.TorchDict t = dict();
        List<Fixtures.TEntry> es = new ArrayList<>(t.entries);
        // h.0.ln_1.bias starts inside h.0.ln_1.weight's range of their shared storage
        for (int i = 0; i < es.size(); i++) {
            Fixtures.TEntry e = es.get(i);
            if (e.name().equals("transformer.h.0.ln_1.bias"))
                es.set(i, new Fixtures.TEntry(e.name(), e.storageType(), e.key(), e.numel(), 3, e.size(), e.stride()));
        }
        Fixtures.writeTorchZip(d.resolve("pytorch_model.bin"), "archive", Fixtures.statePickle(es, false), t.storages);
        refused(d, "overlap", "h.0.ln_1");
    }

    @Test void oversizedPickle() throws Exception {
        Path d = dirWithConfig("bigpkl");
        Map<String, byte[]> e = new LinkedHashMap<>();
        e.put("archive/data.pkl", new byte[(int) TorchReader.MAX_PICKLE + 1]);
        Fixtures.writeZip(d.resolve("pytorch_model.bin"), e);
        refused(d, "data.pkl", "over the limit");
    }

    @Test void legacyFileWithStorageRunningPastTheEnd() throws Exception {
        Path d = dirWithConfig("legacytrunc");
        Fixtures.TorchDict t = dict();
        Path f = d.resolve("pytorch_model.bin");
        Fixtures.writeTorchLegacy(f, t.entries, t.storages, t.elemSize);
        byte[] b = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(b, b.length - 1));
        refused(d, "runs past the end of the file");
    }

    @Test void legacyStorageCountDisagreeingWithThePickle() throws Exception {
        Path d = dirWithConfig("legacycount");
        Fixtures.TorchDict t = dict();
        List<Fixtures.TEntry> es = new ArrayList<>(t.entries);
        Fixtures.TEntry e = es.get(0);
        es.set(0, new Fixtures.TEntry(e.name(), e.storageType(), e.key(), e.numel() - 1, 0, e.size(), e.stride()));
        Fixtures.writeTorchLegacy(d.resolve("pytorch_model.bin"), es, t.storages, t.elemSize);
        refused(d, "elements but the pickle says");
    }

    // ------------------------------------------------------------------ pickle

    Path zipWithPickle(String name, byte[] pickle) throws IOException {
        Path d = dirWithConfig(name);
        Fixtures.TorchDict t = dict();
        Fixtures.writeTorchZip(d.resolve("pytorch_model.bin"), "archive", pickle, t.storages);
        return d;
    }

    @Test void pickleNamingOsSystem() throws Exception {
        byte[] p = new Fixtures.Pickle().proto().global("os", "system").str("touch /tmp/nshap-pwned").op(0x85).reduce().stop().bytes();
        refused(zipWithPickle("os", p), "global 'os.system'", "never executes");
        assertFalse(Files.exists(Path.of("/tmp/nshap-pwned")));
    }

    @Test void pickleNamingBuiltinsEvalViaStackGlobal() throws Exception {
        byte[] p = new Fixtures.Pickle().proto().str("builtins").str("eval").op(0x93).str("1").op(0x85).reduce().stop().bytes();
        refused(zipWithPickle("eval", p), "builtins.eval");
    }

    @Test void pickleWithObjectBuildingOpcode() throws Exception {
        // NEWOBJ on an (allowed) OrderedDict class: the opcode itself is refused
        byte[] p = new Fixtures.Pickle().proto().global("collections", "OrderedDict").op(')').op(0x81).stop().bytes();
        refused(zipWithPickle("newobj", p), "NEWOBJ", "not allowed");
    }

    @Test void pickleWithInstOpcode() throws Exception {
        Fixtures.Pickle p = new Fixtures.Pickle().proto().mark();
        p.b.writeBytes("isubprocess\nPopen\n".getBytes(StandardCharsets.US_ASCII));
        refused(zipWithPickle("inst", p.stop().bytes()), "INST");
    }

    @Test void pickleStringLongerThanThePickle() throws Exception {
        Fixtures.Pickle p = new Fixtures.Pickle().proto();
        p.op('X', 0xff, 0xff, 0xff, 0x7f); // BINUNICODE of 2 GB
        refused(zipWithPickle("longstr", p.stop().bytes()), "runs past the end of the pickle");
    }

    @Test void pickleThatIsNotAStateDict() throws Exception {
        byte[] p = new Fixtures.Pickle().proto().integer(42).stop().bytes();
        refused(zipWithPickle("int", p), "state dict");
    }

    // ------------------------------------------------------------------ safetensors

    Path safetensorsDir(String name) throws IOException {
        Path d = tmp.resolve(name);
        Checkpoint.write(d, w(), "f32", null);
        return d;
    }

    static void putHeaderLength(Path f, long len) throws IOException {
        byte[] b = Files.readAllBytes(f);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, len);
        Files.write(f, b);
    }

    @Test void safetensorsOversizedHeader() throws Exception {
        Path d = safetensorsDir("sthdr");
        putHeaderLength(d.resolve("model.safetensors"), 1L << 40);
        refused(d, "header length", "not plausible");
    }

    /** Rewrites the JSON header (same length, padded with spaces) through a string edit. */
    static void editHeader(Path f, String from, String to) throws IOException {
        byte[] b = Files.readAllBytes(f);
        long n = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        String h = new String(b, 8, (int) n, StandardCharsets.UTF_8);
        assertTrue(h.contains(from), h);
        String e = h.replace(from, to);
        assertTrue(e.length() <= n);
        e = e + " ".repeat((int) n - e.length());
        System.arraycopy(e.getBytes(StandardCharsets.UTF_8), 0, b, 8, (int) n);
        Files.write(f, b);
    }

    @Test void safetensorsOverlappingTensors() throws Exception {
        Path d = safetensorsDir("stoverlap");
        SafeTensors st = SafeTensors.open(d.resolve("model.safetensors"));
        // point wpe's range at wte's first bytes: same size claimed, overlapping bytes
        long wpeBytes = st.byteSize("transformer.wpe.weight");
        long wteBytes = st.byteSize("transformer.wte.weight");
        editHeader(d.resolve("model.safetensors"), "\"data_offsets\":[" + wteBytes + "," + (wteBytes + wpeBytes) + "]",
                "\"data_offsets\":[0," + wpeBytes + "]");
        refused(d, "overlap");
    }

    @Test void safetensorsTensorPastTheEndOfTheFile() throws Exception {
        Path d = safetensorsDir("sttrunc");
        Path f = d.resolve("model.safetensors");
        byte[] b = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(b, b.length - 100));
        refused(d, "truncated");
    }

    @Test void shardIndexWithPathTraversal() throws Exception {
        Path d = dirWithConfig("shardtrav");
        Files.writeString(d.resolve("model.safetensors.index.json"),
                "{\"weight_map\":{\"wte.weight\":\"../../secret.safetensors\"}}");
        refused(d, "path traversal");
    }

    @Test void wrongShapeForTheConfig() throws Exception {
        Path d = tmp.resolve("shape");
        GPT2Config other = new GPT2Config(2, 4, 32, 16, 100, 1e-5, "gelu_new");
        Checkpoint.write(d, Fixtures.weights(other, 1), "f32", null);
        Files.writeString(d.resolve("config.json"), dev.nshap.io.Json.write(Fixtures.config().toJson())); // vocab 101
        refused(d, "wte.weight", "shape");
    }

    @Test void missingTensor() throws Exception {
        Path d = dirWithConfig("missing");
        Fixtures.TorchDict t = dict();
        List<Fixtures.TEntry> es = new ArrayList<>(t.entries);
        es.removeIf(e -> e.name().equals("transformer.h.1.mlp.c_fc.bias"));
        Fixtures.writeTorchZip(d.resolve("pytorch_model.bin"), "archive", Fixtures.statePickle(es, false), t.storages);
        refused(d, "missing tensor 'h.1.mlp.c_fc.bias'");
    }

    @Test void noConfigAndNoGpt2Width() throws Exception {
        Path d = Files.createDirectories(tmp.resolve("nocfg"));
        Fixtures.writeTorchZip(d.resolve("pytorch_model.bin"), w(), "F32");
        refused(d.resolve("pytorch_model.bin"), "no config.json", "n_head");
    }

    // ------------------------------------------------------------------ llm.c

    Path llmc(String name) throws IOException {
        Path f = tmp.resolve(name);
        Fixtures.writeLlmc(f, w(), false, 104);
        return f;
    }

    static void putInt(Path f, int index, int v) throws IOException {
        byte[] b = Files.readAllBytes(f);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(4 * index, v);
        Files.write(f, b);
    }

    @Test void llmcTruncated() throws Exception {
        Path f = llmc("trunc.bin");
        byte[] b = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(b, b.length - 8));
        refused(f, "truncated");
    }

    @Test void llmcHeaderClaimingAHugeModel() throws Exception {
        Path f = llmc("huge.bin");
        putInt(f, 6, 1 << 20); // C = 1M channels: the parameters would need terabytes
        refused(f, "needs", "bytes but the file has");
    }

    @Test void llmcUnknownVersion() throws Exception {
        Path f = llmc("v9.bin");
        putInt(f, 1, 9);
        refused(f, "version 9");
    }

    @Test void unrecognisedFile() throws Exception {
        Path f = tmp.resolve("random.bin");
        Files.write(f, new byte[]{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
        refused(f, "unrecognised");
    }

    @Test void badDtypeIsRefusedBeforeReading() throws Exception {
        Path d = safetensorsDir("dt");
        ConverterTest.Run r = ConverterTest.cli("convert", "--from", d.toString(), "--out", tmp.resolve("o").toString(), "--dtype", "int8");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown dtype 'int8'"), r.err());
        assertFalse(Files.exists(tmp.resolve("o")));
    }
}
