package dev.nshap.convert;

import dev.nshap.NshapException;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.SafeTensors;
import dev.nshap.util.Progress;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * {@code nshap convert}: reads a GPT-2 checkpoint in any supported format, checks it completely, and only then
 * writes the Hugging Face layout nshap loads (config.json + model.safetensors + manifest.json, plus the source's
 * vocab.json/merges.txt when it has both). The output directory is assembled under a temporary name beside the
 * target and renamed into place, so a failed conversion leaves nothing behind.
 */
public final class Converter {
    private static final Pattern BLOCK = Pattern.compile("h\\.(\\d+)\\.(.+)");

    private Converter() {}

    /** A checkpoint read into memory: its weights, what it was, and the dtype it was stored in. */
    public record Loaded(String format, GPT2Weights weights, String sourceDtype, long inputBytes, Path tokenizerDir) {}

    public record Result(Path out, String format, String dtype, long inputBytes, long outputBytes, double seconds) {
        public double mbPerSecond() { return inputBytes / 1e6 / Math.max(seconds, 1e-9); }
    }

    public static Result convert(Path from, Path out, String dtype, boolean force) {
        long t0 = System.nanoTime();
        String wantDtype = dtype == null ? null : Checkpoint.dtypeName(dtype);
        Path target = out.toAbsolutePath().normalize();
        checkTarget(target, force);
        // Two converts into one new --out both passed the check above and then both published: lock the output.
        try (dev.nshap.io.OutputLock lock = dev.nshap.io.OutputLock.acquire(target)) {
            checkTarget(target, force);   // again, now that no other run can be filling it
            return convertLocked(from, target, out, wantDtype, force, t0);
        }
    }

    private static Result convertLocked(Path from, Path target, Path out, String wantDtype, boolean force, long t0) {
        Loaded src = load(from);
        String dt = wantDtype != null ? wantDtype : src.sourceDtype;
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("converted_from", src.format);
        List<String> files = new ArrayList<>(List.of(Checkpoint.CONFIG, Checkpoint.WEIGHTS));
        Path tmp = null;
        try {
            Files.createDirectories(target.getParent());
            tmp = Files.createTempDirectory(target.getParent(), "." + target.getFileName() + ".converting-");
            try { // temp directories are private (0700); the model directory it becomes should not be
                Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
            } catch (UnsupportedOperationException ignored) { }
            Checkpoint.write(tmp, src.weights, dt, meta);
            if (src.tokenizerDir != null)
                for (String f : new String[]{"vocab.json", "merges.txt"}) {
                    Files.copy(src.tokenizerDir.resolve(f), tmp.resolve(f));
                    files.add(f);
                }
            Map<String, String> source = new LinkedHashMap<>();
            source.put("format", src.format);
            source.put("path", from.toAbsolutePath().normalize().toString());
            source.put("dtype", src.sourceDtype);
            Manifest.write(tmp, files, source);
            long outBytes = Files.size(tmp.resolve(Checkpoint.WEIGHTS));
            publish(tmp, target, files);
            tmp = null;
            return new Result(target, src.format, dt, src.inputBytes, outBytes, (System.nanoTime() - t0) / 1e9);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + out + ": " + e.getMessage(), e);
        } finally {
            if (tmp != null) deleteTree(tmp);
        }
    }

    /** Refuses before any work a target that would need clobbering without --force. */
    static void checkTarget(Path target, boolean force) {
        if (target.getParent() == null) throw new NshapException(target + ": cannot write a model at the file-system root");
        if (Files.exists(target) && !Files.isDirectory(target)) throw new NshapException(target + ": exists and is not a directory");
        if (!force && Files.isDirectory(target) && !isEmpty(target))
            throw new NshapException(target + ": exists and is not empty (choose a new --out or pass --force)");
    }

    private static boolean isEmpty(Path dir) {
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            return !s.iterator().hasNext();
        } catch (IOException e) {
            throw new NshapException(dir + ": cannot list: " + e.getMessage());
        }
    }

    private static void publish(Path tmp, Path target, List<String> files) throws IOException {
        if (Files.isDirectory(target) && isEmpty(target)) Files.delete(target);
        if (!Files.exists(target)) {
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target);
            }
            return;
        }
        // --force into a populated directory: replace file by file; the manifest goes last, so it never vouches
        // for a file that is not yet in place.
        Files.deleteIfExists(target.resolve(Manifest.FILE));
        for (String tok : new String[]{"vocab.json", "merges.txt"}) // an old model's tokenizer must not outlive it
            if (!files.contains(tok)) Files.deleteIfExists(target.resolve(tok));
        for (String f : files) move(tmp.resolve(f), target.resolve(f));
        move(tmp.resolve(Manifest.FILE), target.resolve(Manifest.FILE));
        deleteTree(tmp);
    }

    private static void move(Path a, Path b) throws IOException {
        try {
            Files.move(a, b, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(a, b, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    static void deleteTree(Path p) {
        try (Stream<Path> s = Files.walk(p)) {
            s.sorted(Comparator.reverseOrder()).forEach(x -> { try { Files.deleteIfExists(x); } catch (IOException ignored) { } });
        } catch (IOException ignored) { }
    }

    // ------------------------------------------------------------------ reading

    /** Detects the format of {@code from} (a directory or a file) and reads it completely. */
    public static Loaded load(Path from) {
        if (Files.isDirectory(from)) {
            for (String f : new String[]{"model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                    "pytorch_model.bin"})
                if (Files.isRegularFile(from.resolve(f))) return loadFile(from.resolve(f));
            throw new NshapException(from + ": no model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
                    + "pytorch_model.bin.index.json in this directory (for an llm.c checkpoint pass the .bin file itself)");
        }
        if (!Files.isRegularFile(from)) throw new NshapException(from + ": no such file or directory");
        return loadFile(from);
    }

    private static Loaded loadFile(Path file) {
        String name = file.getFileName().toString();
        long bytes = size(file);
        if (name.endsWith(".index.json")) {
            boolean st = name.contains("safetensors");
            List<SourceTensor> ts = st ? ShardedCheckpoint.readSafetensors(file) : ShardedCheckpoint.readTorch(file);
            long total = bytes;
            for (String shard : ShardedCheckpoint.shards(file).keySet()) total += size(file.toAbsolutePath().getParent().resolve(shard));
            return fromTensors(st ? "hf-safetensors-sharded" : "pytorch-sharded", file, ts, total);
        }
        byte[] head = TorchReader.head(file, 16);
        if (LlmcReader.sniff(head)) {
            LlmcReader.Result r = LlmcReader.read(file);
            return new Loaded(r.dtype().equals("F32") ? "llm.c-fp32" : "llm.c-bf16", r.weights(), r.dtype(), bytes, null);
        }
        if (TorchReader.isZip(head)) return fromTensors("pytorch-zip", file, TorchReader.readZip(file), bytes);
        if (TorchReader.isLegacy(head)) return fromTensors("pytorch-legacy", file, TorchReader.readLegacy(file), bytes);
        if (name.endsWith(".safetensors") || head.length >= 9 && head[8] == '{') {
            SafeTensors st = SafeTensors.open(file);
            List<SourceTensor> ts = new ArrayList<>();
            for (String n : st.names()) ts.add(SourceTensor.plain(n, st.shape(n), st.dtype(n), dst -> st.readFloats(n, dst, 0)));
            return fromTensors("hf-safetensors", file, ts, bytes);
        }
        throw new NshapException(file + ": unrecognised checkpoint format (expected safetensors, a torch.save zip or "
                + "legacy file, an llm.c .bin, or a sharded *.index.json)");
    }

    /** A single torch.save file, zip or legacy. */
    static List<SourceTensor> readTorchFile(Path file) {
        byte[] head = TorchReader.head(file, 16);
        if (TorchReader.isZip(head)) return TorchReader.readZip(file);
        if (TorchReader.isLegacy(head)) return TorchReader.readLegacy(file);
        throw new NshapException(file + ": not a torch.save file (neither zip nor legacy format)");
    }

    private static long size(Path f) {
        try {
            return Files.size(f);
        } catch (IOException e) {
            throw new NshapException(f + ": cannot read: " + e.getMessage());
        }
    }

    private static Loaded fromTensors(String format, Path file, List<SourceTensor> ts, long bytes) {
        Path dir = file.toAbsolutePath().getParent();
        Path cfgFile = dir.resolve(Checkpoint.CONFIG);
        GPT2Config c = Files.isRegularFile(cfgFile) ? GPT2Config.read(cfgFile) : inferConfig(file, ts);
        GPT2Weights w = assemble(c, ts, file.toString());
        TreeSet<String> dtypes = new TreeSet<>();
        for (SourceTensor t : ts) if (!isMaskBuffer(canonical(t.name()))) dtypes.add(t.dtype());
        String dt = dtypes.size() == 1 && !dtypes.first().equals("F64") ? dtypes.first() : "F32";
        boolean tok = Files.isRegularFile(dir.resolve("vocab.json")) && Files.isRegularFile(dir.resolve("merges.txt"));
        return new Loaded(format, w, dt, bytes, tok ? dir : null);
    }

    static String canonical(String name) {
        return name.startsWith("transformer.") ? name.substring("transformer.".length()) : name;
    }

    private static boolean isMaskBuffer(String canon) {
        Matcher m = BLOCK.matcher(canon);
        return m.matches() && (m.group(2).equals("attn.bias") || m.group(2).equals("attn.masked_bias"));
    }

    /** Without a config.json: sizes from the tensors, n_head from GPT-2's own widths (the one thing shapes cannot tell). */
    static GPT2Config inferConfig(Path file, List<SourceTensor> ts) {
        long[] wte = null, wpe = null;
        int layers = 0;
        for (SourceTensor t : ts) {
            String c = canonical(t.name());
            if (c.equals("wte.weight")) wte = t.shape();
            if (c.equals("wpe.weight")) wpe = t.shape();
            Matcher m = BLOCK.matcher(c);
            if (m.matches() && m.group(1).length() < 6) layers = Math.max(layers, Integer.parseInt(m.group(1)) + 1);
        }
        String where = file + ": no config.json beside it";
        if (wte == null || wte.length != 2 || wpe == null || wpe.length != 2 || layers == 0)
            throw new NshapException(where + ", and the tensors do not look like GPT-2 (no wte/wpe/h.N)");
        int C = (int) wte[1];
        int heads = switch (C) { case 768 -> 12; case 1024 -> 16; case 1280 -> 20; case 1600 -> 25; default -> -1; };
        if (heads < 0) throw new NshapException(where + ", and n_embd " + C + " is not a GPT-2 size, so n_head is unknown: add a config.json");
        return new GPT2Config(layers, heads, C, (int) wpe[0], (int) wte[0], 1e-5, "gelu_new");
    }

    /** Maps source tensors onto GPT-2's parameters, checking names, shapes, dtypes and storage overlap first. */
    static GPT2Weights assemble(GPT2Config c, List<SourceTensor> src, String where) {
        Map<String, SourceTensor> byCanon = new LinkedHashMap<>();
        for (SourceTensor t : src) {
            String canon = canonical(t.name());
            if (isMaskBuffer(canon)) continue; // causal-mask buffers, recomputed by every backend
            SourceTensor prev = byCanon.put(canon, t);
            if (prev != null) throw new NshapException(where + ": tensors '" + prev.name() + "' and '" + t.name() + "' are the same parameter");
        }
        SourceTensor head = byCanon.get("lm_head.weight"), wte = byCanon.get("wte.weight");
        boolean tied = head == null || (wte != null && wte.storage() != null && wte.storage().equals(head.storage())
                && wte.begin() == head.begin() && wte.last() == head.last() && Arrays.equals(wte.shape(), head.shape()));
        if (head != null && tied) byCanon.remove("lm_head.weight");
        Checkpoint.requireHeap(4 * Checkpoint.parameterCount(c, tied), "converting " + where);
        GPT2Weights w = new GPT2Weights(c, tied);
        Map<String, SafeTensors.Tensor> table = new LinkedHashMap<>();
        Checkpoint.tensors(w, "F32").forEach((k, v) -> table.put(canonical(k), v));
        for (Map.Entry<String, SourceTensor> e : byCanon.entrySet()) {
            SafeTensors.Tensor dst = table.get(e.getKey());
            SourceTensor t = e.getValue();
            if (dst == null) {
                Matcher m = BLOCK.matcher(e.getKey());
                if (m.matches())
                    throw new NshapException(where + ": tensor '" + t.name() + "' does not fit config n_layer = " + c.nLayer()
                            + " (not a GPT-2 block parameter, or more layers than the config says)");
                throw new NshapException(where + ": unexpected tensor '" + t.name() + "' (not a GPT-2 parameter)");
            }
            if (!Arrays.equals(dst.shape(), t.shape()))
                throw new NshapException(where + ": tensor '" + t.name() + "' has shape " + Arrays.toString(t.shape())
                        + " but the config implies " + Arrays.toString(dst.shape()));
            if (!TorchReader.floatDtypes().contains(t.dtype()))
                throw new NshapException(where + ": tensor '" + t.name() + "' has dtype " + t.dtype() + "; weights must be floating point");
        }
        for (String name : table.keySet())
            if (!byCanon.containsKey(name))
                throw new NshapException(where + ": missing tensor '" + name + "'" + (name.startsWith("h.")
                        ? " (fewer layers than config n_layer = " + c.nLayer() + "?)" : ""));
        checkOverlap(where, byCanon.values());
        Progress p = new Progress("reading " + Path.of(where).getFileName(), byCanon.size());
        int done = 0;
        for (Map.Entry<String, SourceTensor> e : byCanon.entrySet()) {
            e.getValue().reader().read(table.get(e.getKey()).data());
            p.update(++done);
        }
        return w;
    }

    /** Two parameters reading the same storage bytes would silently tie weights that are not tied: refuse. */
    private static void checkOverlap(String where, java.util.Collection<SourceTensor> ts) {
        List<SourceTensor> v = new ArrayList<>();
        for (SourceTensor t : ts) if (t.storage() != null && t.last() >= t.begin()) v.add(t);
        v.sort(Comparator.comparing(SourceTensor::storage).thenComparingLong(SourceTensor::begin));
        for (int i = 1; i < v.size(); i++) {
            SourceTensor a = v.get(i - 1), b = v.get(i);
            if (a.storage().equals(b.storage()) && b.begin() <= a.last())
                throw new NshapException(where + ": tensors '" + a.name() + "' and '" + b.name() + "' overlap in storage '"
                        + a.storage() + "' (elements " + b.begin() + ".." + Math.min(a.last(), b.last()) + ")");
        }
    }
}
