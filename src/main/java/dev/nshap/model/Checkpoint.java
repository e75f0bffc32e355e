package dev.nshap.model;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.io.AtomicFiles;
import dev.nshap.io.Json;
import dev.nshap.util.Progress;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A Hugging Face GPT-2 checkpoint directory: {@code config.json} + {@code model.safetensors} (+ optional
 * {@code vocab.json}/{@code merges.txt}). Tensor names may carry the {@code transformer.} prefix or not; a missing
 * {@code lm_head.weight} means it is tied to wte; the causal-mask buffers {@code h.N.attn.bias}/{@code masked_bias}
 * are ignored. Everything the config claims is checked against the tensors before any weight is read.
 */
public final class Checkpoint {
    public static final String CONFIG = "config.json";
    public static final String WEIGHTS = "model.safetensors";

    private Checkpoint() {}

    public record LoadedModel(Path dir, GPT2Config config, GPT2Weights weights, Tokenizer tokenizer,
                              String weightsSha256, Map<String, String> dtypes) {}

    /** The validated layout of a checkpoint, without its weights read: enough for {@code model inspect}. */
    public record Layout(Path dir, GPT2Config config, SafeTensors file, Map<String, String> canonicalToFile,
                         boolean tiedHead, Map<String, String> dtypes, long parameterCount) {
        /** dtype -> number of tensors of that dtype. */
        public Map<String, Integer> dtypeCounts() {
            Map<String, Integer> m = new TreeMap<>();
            for (String d : dtypes.values()) m.merge(d, 1, Integer::sum);
            return m;
        }
    }

    private static final Pattern BLOCK = Pattern.compile("h\\.(\\d+)\\.(.+)");
    private static final String[] BLOCK_PARAMS = {
            "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
            "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
            "mlp.c_proj.weight", "mlp.c_proj.bias"};

    /** Expected shape of a canonical (prefix-free) parameter name under config {@code c}. */
    static long[] expectedShape(GPT2Config c, String canonical) {
        long C = c.nEmbd(), H = c.nInner();
        switch (canonical) {
            case "wte.weight", "lm_head.weight": return new long[]{c.vocabSize(), C};
            case "wpe.weight": return new long[]{c.nPositions(), C};
            case "ln_f.weight", "ln_f.bias": return new long[]{C};
            default: break;
        }
        Matcher m = BLOCK.matcher(canonical);
        if (!m.matches()) return null;
        return switch (m.group(2)) {
            case "ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias", "attn.c_proj.bias", "mlp.c_proj.bias" -> new long[]{C};
            case "attn.c_attn.weight" -> new long[]{C, 3 * C};
            case "attn.c_attn.bias" -> new long[]{3 * C};
            case "attn.c_proj.weight" -> new long[]{C, C};
            case "mlp.c_fc.weight" -> new long[]{C, H};
            case "mlp.c_fc.bias" -> new long[]{H};
            case "mlp.c_proj.weight" -> new long[]{H, C};
            default -> null;
        };
    }

    /** Parameters of a GPT-2 with config {@code c}, without allocating it (lm_head counted only when untied). */
    public static long parameterCount(GPT2Config c, boolean tiedHead) {
        long C = c.nEmbd(), H = c.nInner();
        long perBlock = 4 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * H + H) + (H * C + C);
        long emb = (long) c.vocabSize() * C;
        return emb + (long) c.nPositions() * C + c.nLayer() * perBlock + 2 * C + (tiedHead ? 0 : emb);
    }

    /**
     * Refuses up front, with a one-line hint, work whose arrays cannot fit in this JVM's heap (GPT-2 xl needs
     * about 6.2 GB as floats), instead of failing half way with an OutOfMemoryError.
     */
    public static void requireHeap(long bytes, String what) {
        long max = Runtime.getRuntime().maxMemory();
        if (max != Long.MAX_VALUE && bytes > max * 0.9)
            throw new NshapException(String.format(java.util.Locale.ROOT,
                    "%s needs about %.1f GB of Java heap but the JVM may use only %.1f GB: rerun with"
                            + " NSHAP_JAVA_OPTS=-Xmx%dg", what, bytes / 1e9, max / 1e9, (long) Math.ceil(bytes * 1.25 / (1L << 30)) + 1));
    }

    /** Reads config.json and the safetensors header and checks they describe one GPT-2. Reads no weights. */
    public static Layout inspect(Path dir) {
        if (!Files.isDirectory(dir)) throw new NshapException(dir + ": not a checkpoint directory (no such directory)");
        Path cfgFile = dir.resolve(CONFIG), stFile = dir.resolve(WEIGHTS);
        if (!Files.isRegularFile(cfgFile)) throw new NshapException(dir + ": missing " + CONFIG);
        if (!Files.isRegularFile(stFile)) throw new NshapException(dir + ": missing " + WEIGHTS);
        GPT2Config c = GPT2Config.read(cfgFile);
        SafeTensors st = SafeTensors.open(stFile);

        Map<String, String> canonicalToFile = new LinkedHashMap<>();
        Map<String, String> dtypes = new LinkedHashMap<>();
        for (String name : st.names()) {
            String canon = name.startsWith("transformer.") ? name.substring("transformer.".length()) : name;
            Matcher m = BLOCK.matcher(canon);
            if (m.matches()) {
                String rest = m.group(2);
                if (rest.equals("attn.bias") || rest.equals("attn.masked_bias")) continue; // causal-mask buffers
                long layer;
                try { layer = Long.parseLong(m.group(1)); } catch (NumberFormatException e) { layer = Long.MAX_VALUE; }
                // 'h.00.ln_1.weight' names layer 0 too, but no lookup by 'h.0.' would find it (it used to pass
                // inspect and crash forward): only the canonical spelling is a GPT-2 parameter.
                if (layer != Long.MAX_VALUE && !m.group(1).equals(Long.toString(layer)))
                    throw new NshapException(stFile + ": tensor '" + name + "' has layer number '" + m.group(1)
                            + "' (expected h." + layer + "." + m.group(2) + ")");
                if (layer >= c.nLayer())
                    throw new NshapException(stFile + ": tensor '" + name + "' belongs to layer " + m.group(1)
                            + " but config n_layer = " + c.nLayer() + " (more layers than the config says)");
            }
            long[] want = expectedShape(c, canon);
            if (want == null) throw new NshapException(stFile + ": unexpected tensor '" + name + "' (not a GPT-2 parameter)");
            String dt = st.dtype(name);
            if (!dt.equals("F32") && !dt.equals("F16") && !dt.equals("BF16") && !dt.equals("F64"))
                throw new NshapException(stFile + ": tensor '" + name + "' has dtype " + dt + "; weights must be F32, F16 or BF16");
            String prev = canonicalToFile.put(canon, name);
            if (prev != null) throw new NshapException(stFile + ": tensors '" + prev + "' and '" + name + "' are the same parameter");
            long[] got = st.shape(name);
            if (!Arrays.equals(got, want)) throw new NshapException(shapeMessage(stFile, name, canon, got, want, c));
            dtypes.put(name, dt);
        }
        // Before anything is sized by n_layer (a list of 12 names per layer): the tensors must have as many
        // layers as the config claims.
        int blocks = 0;
        for (String canon : canonicalToFile.keySet()) if (canon.startsWith("h.")) blocks++;
        if (blocks != (long) c.nLayer() * BLOCK_PARAMS.length)
            throw new NshapException(stFile + ": missing tensor '" + firstMissing(c, canonicalToFile) + "' (fewer layers than config"
                    + " n_layer = " + c.nLayer() + ": the file has " + blocks + " block tensors, " + blocks / BLOCK_PARAMS.length
                    + " layers' worth)");
        for (String canon : requiredNames(c))
            if (!canonicalToFile.containsKey(canon))
                throw new NshapException(stFile + ": missing tensor '" + canon + "'"
                        + (canon.startsWith("h.") ? " (fewer layers than config n_layer = " + c.nLayer() + "?)" : ""));
        boolean tied = !canonicalToFile.containsKey("lm_head.weight");
        long params = 0;
        for (String canon : canonicalToFile.keySet()) params += st.elementCount(canonicalToFile.get(canon));
        return new Layout(dir, c, st, canonicalToFile, tied, dtypes, params);
    }

    private static String shapeMessage(Path f, String name, String canon, long[] got, long[] want, GPT2Config c) {
        String base = f + ": tensor '" + name + "' has shape " + Arrays.toString(got) + " but the config implies "
                + Arrays.toString(want);
        if (got.length == 2 && (canon.equals("wte.weight") || canon.equals("lm_head.weight"))) {
            if (got[0] != c.vocabSize()) return base + " (" + got[0] + " rows != config vocab_size " + c.vocabSize() + ")";
            return base + " (" + got[1] + " columns != config n_embd " + c.nEmbd() + ")";
        }
        if (got.length == 2 && canon.equals("wpe.weight")) {
            if (got[0] != c.nPositions()) return base + " (" + got[0] + " rows != config n_positions " + c.nPositions() + ")";
            return base + " (" + got[1] + " columns != config n_embd " + c.nEmbd() + ")";
        }
        return base;
    }

    /** The first block tensor absent, looking no further than one layer past the file's tensors. */
    private static String firstMissing(GPT2Config c, Map<String, String> have) {
        int layers = Math.min(c.nLayer(), have.size() / BLOCK_PARAMS.length + 1);
        for (int l = 0; l < layers; l++)
            for (String p : BLOCK_PARAMS) if (!have.containsKey("h." + l + "." + p)) return "h." + l + "." + p;
        return "h.?";
    }

    private static java.util.List<String> requiredNames(GPT2Config c) {
        java.util.List<String> r = new java.util.ArrayList<>();
        r.add("wte.weight");
        r.add("wpe.weight");
        for (int l = 0; l < c.nLayer(); l++) for (String p : BLOCK_PARAMS) r.add("h." + l + "." + p);
        r.add("ln_f.weight");
        r.add("ln_f.bias");
        return r;
    }

    public static LoadedModel load(Path dir) { return load(dir, false); }

    /**
     * Reads and validates a checkpoint. A NaN or infinite weight is refused naming its tensor (every loss would
     * be NaN); with {@code allowNonFinite} it is reported on stderr instead.
     */
    public static LoadedModel load(Path dir, boolean allowNonFinite) {
        Layout lay = inspect(dir);
        // Hash while the tensors are read: for GPT-2 xl both are seconds of I/O-bound work.
        java.util.concurrent.CompletableFuture<String> sha =
                java.util.concurrent.CompletableFuture.supplyAsync(() -> sha256(dir.resolve(WEIGHTS)));
        GPT2Config c = lay.config;
        SafeTensors st = lay.file;
        boolean explicitHead = !lay.tiedHead;
        requireHeap(4 * parameterCount(c, lay.tiedHead), "loading " + dir);
        GPT2Weights w = new GPT2Weights(c, !explicitHead);
        Map<String, float[]> dst = new HashMap<>();
        dst.put("wte.weight", w.wte);
        dst.put("wpe.weight", w.wpe);
        dst.put("ln_f.weight", w.lnfW);
        dst.put("ln_f.bias", w.lnfB);
        if (explicitHead) dst.put("lm_head.weight", w.lmHead);
        for (int l = 0; l < c.nLayer(); l++) {
            GPT2Weights.Block b = w.blocks[l];
            float[][] arrs = {b.ln1W, b.ln1B, b.attnW, b.attnB, b.attnProjW, b.attnProjB, b.ln2W, b.ln2B,
                    b.fcW, b.fcB, b.projW, b.projB};
            for (int i = 0; i < BLOCK_PARAMS.length; i++) dst.put("h." + l + "." + BLOCK_PARAMS[i], arrs[i]);
        }
        // Only big checkpoints (GPT-2 medium and up) take long enough to be worth a progress line.
        long totalBytes = 0;
        for (String name : lay.canonicalToFile.values()) totalBytes += st.byteSize(name);
        Progress p = totalBytes >= (512L << 20) ? new Progress("loading " + dir.getFileName() + " (MB)", totalBytes >> 20) : null;
        long done = 0, shownMb = -1;
        for (Map.Entry<String, String> e : lay.canonicalToFile.entrySet()) {
            float[] a = dst.get(e.getKey());
            st.readFloats(e.getValue(), a, 0);
            checkFinite(st.file(), e.getValue(), a, allowNonFinite);
            done += st.byteSize(e.getValue());
            if (p != null && (done >> 20) != shownMb) p.update(shownMb = done >> 20);
        }
        Tokenizer tok = tokenizerFor(dir);
        String hash;
        try {
            hash = sha.join();
        } catch (java.util.concurrent.CompletionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            throw e;
        }
        return new LoadedModel(dir, c, w, tok, hash, java.util.Collections.unmodifiableMap(lay.dtypes));
    }

    /** Reads every tensor of an inspected checkpoint once, refusing (or, allowed, reporting) non-finite weights. */
    public static void checkFinite(Layout lay, boolean allowNonFinite) {
        for (String name : lay.canonicalToFile.values()) checkFinite(lay.file.file(), name, lay.file.readFloats(name), allowNonFinite);
    }

    static void checkFinite(Path file, String name, float[] a, boolean allow) {
        long bad = 0;
        int first = -1;
        for (int i = 0; i < a.length; i++)
            if (!Float.isFinite(a[i]) && bad++ == 0) first = i;
        if (bad == 0) return;
        String msg = file + ": tensor '" + name + "' has " + bad + " non-finite value" + (bad == 1 ? "" : "s")
                + " (element " + first + " is " + a[first] + ")";
        if (!allow) throw new NshapException(msg + "; pass --allow-nonfinite-weights to load it anyway");
        System.err.println("[nshap] WARNING: " + msg + "; every value computed from it may be NaN");
    }

    /** The directory's own vocab.json + merges.txt when present, else GPT-2's r50k_base. */
    public static Tokenizer tokenizerFor(Path dir) {
        boolean v = Files.isRegularFile(dir.resolve("vocab.json")), m = Files.isRegularFile(dir.resolve("merges.txt"));
        if (v && m) return BpeTokenizer.load(dir);
        if (v || m)
            throw new NshapException(dir + ": has " + (v ? "vocab.json but no merges.txt" : "merges.txt but no vocab.json")
                    + " (a BPE tokenizer needs both)");
        return JTokkitTokenizer.GPT2;
    }

    public static String sha256(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 20];
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
            return java.util.HexFormat.of().formatHex(md.digest());
        } catch (IOException e) {
            throw new NshapException(file + ": cannot read: " + e.getMessage());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The tensors of {@code w} under the names Hugging Face's GPT2LMHeadModel saves, in its order. */
    public static LinkedHashMap<String, SafeTensors.Tensor> tensors(GPT2Weights w, String dtype) {
        GPT2Config c = w.config;
        LinkedHashMap<String, SafeTensors.Tensor> t = new LinkedHashMap<>();
        String p = "transformer.";
        put(t, p + "wte.weight", dtype, c, w.wte);
        put(t, p + "wpe.weight", dtype, c, w.wpe);
        for (int l = 0; l < c.nLayer(); l++) {
            GPT2Weights.Block b = w.blocks[l];
            float[][] arrs = {b.ln1W, b.ln1B, b.attnW, b.attnB, b.attnProjW, b.attnProjB, b.ln2W, b.ln2B,
                    b.fcW, b.fcB, b.projW, b.projB};
            for (int i = 0; i < BLOCK_PARAMS.length; i++) put(t, p + "h." + l + "." + BLOCK_PARAMS[i], dtype, c, arrs[i]);
        }
        put(t, p + "ln_f.weight", dtype, c, w.lnfW);
        put(t, p + "ln_f.bias", dtype, c, w.lnfB);
        if (!w.tied()) put(t, "lm_head.weight", dtype, c, w.lmHead);
        return t;
    }

    private static void put(Map<String, SafeTensors.Tensor> t, String name, String dtype, GPT2Config c, float[] data) {
        String canon = name.startsWith("transformer.") ? name.substring(12) : name;
        t.put(name, new SafeTensors.Tensor(dtype, expectedShape(c, canon), data));
    }

    /** Normalises f32|f16|bf16 (any case) to the safetensors dtype name. */
    public static String dtypeName(String s) {
        return switch (s.toUpperCase(java.util.Locale.ROOT)) {
            case "F32", "FLOAT32", "FP32" -> "F32";
            case "F16", "FLOAT16", "FP16" -> "F16";
            case "BF16", "BFLOAT16" -> "BF16";
            default -> throw new NshapException("unknown dtype '" + s + "' (expected f32, f16 or bf16)");
        };
    }

    /**
     * Writes config.json + model.safetensors. A new directory is assembled under a temporary name and renamed
     * into place, so it appears only complete; into an existing directory each file is written atomically.
     */
    public static void write(Path dir, GPT2Weights w, String dtype, Map<String, String> metadata) {
        String dt = dtypeName(dtype);
        ObjectNode cfg = w.config.toJson();
        cfg.put("tie_word_embeddings", w.tied());
        cfg.put("torch_dtype", switch (dt) { case "F16" -> "float16"; case "BF16" -> "bfloat16"; default -> "float32"; });
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "pt");
        if (metadata != null) meta.putAll(metadata);
        LinkedHashMap<String, SafeTensors.Tensor> tensors = tensors(w, dt);
        Path abs = dir.toAbsolutePath();
        try {
            // One condition, not two checks: another writer's rename may land between an isDirectory and an exists.
            if (Files.exists(abs) && !Files.isDirectory(abs)) throw new NshapException(dir + ": exists and is not a directory");
            if (Files.isDirectory(abs)) {
                SafeTensors.write(abs.resolve(WEIGHTS), tensors, meta);
                Json.writeFile(abs.resolve(CONFIG), cfg);
                return;
            }
            Files.createDirectories(abs.getParent());
            Path tmp = Files.createTempDirectory(abs.getParent(), "." + abs.getFileName() + ".");
            try { // temp directories are private (0700); the checkpoint should be readable like any other directory
                Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
            } catch (UnsupportedOperationException ignored) { }
            try {
                SafeTensors.write(tmp.resolve(WEIGHTS), tensors, meta);
                Json.writeFile(tmp.resolve(CONFIG), cfg);
                try {
                    Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
                    tmp = null;
                } catch (IOException e) {
                    // Another writer created the directory meanwhile (e.g. two runs creating the same default
                    // model): fall back to renaming our complete files into it, one atomic rename each.
                    if (!Files.isDirectory(abs)) throw e;
                    for (String f : new String[]{WEIGHTS, CONFIG})
                        Files.move(tmp.resolve(f), abs.resolve(f), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                }
            } finally {
                if (tmp != null) deleteTree(tmp);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + dir + ": " + e.getMessage(), e);
        }
    }

    private static void deleteTree(Path p) {
        try (Stream<Path> s = Files.walk(p)) {
            s.sorted(Comparator.reverseOrder()).forEach(x -> { try { Files.deleteIfExists(x); } catch (IOException ignored) { } });
        } catch (IOException ignored) { }
    }

    /** Writes only config.json (atomically); used by tests and tools that craft their own tensors. */
    static void writeConfig(Path dir, GPT2Config c) {
        AtomicFiles.writeString(dir.resolve(CONFIG), Json.write(c.toJson()));
    }
}
