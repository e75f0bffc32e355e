package dev.nshap.convert;

import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * Writes tiny GPT-2 checkpoints in the foreign formats, independently of the readers under test: the pickle
 * opcodes and container layouts are spelled out here by hand, following what torch.save and llm.c emit.
 */
final class Fixtures {
    private Fixtures() {}

    static GPT2Config config() {
        return new GPT2Config(2, 4, 32, 16, 101, 1e-5, "gelu_new");
    }

    /** Random weights with every tensor distinct (LayerNorm around 1, biases non-zero), head tied to wte as in GPT-2. */
    static GPT2Weights weights(GPT2Config c, long seed) {
        GPT2Weights w = new GPT2Weights(c, true);
        Random r = new Random(seed);
        for (float[] a : arrays(w).values()) for (int i = 0; i < a.length; i++) a[i] = (float) (r.nextGaussian() * 0.3);
        for (GPT2Weights.Block b : w.blocks) { addOne(b.ln1W); addOne(b.ln2W); }
        addOne(w.lnfW);
        return w;
    }

    private static void addOne(float[] a) { for (int i = 0; i < a.length; i++) a[i] += 1f; }

    static final String[] BLOCK = {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
            "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
            "mlp.c_proj.weight", "mlp.c_proj.bias"};

    /** HF GPT-2 parameter names (no prefix) -> the weight arrays, with the [in, out] Conv1D shapes. */
    static LinkedHashMap<String, float[]> arrays(GPT2Weights w) {
        LinkedHashMap<String, float[]> m = new LinkedHashMap<>();
        m.put("wte.weight", w.wte);
        m.put("wpe.weight", w.wpe);
        for (int l = 0; l < w.blocks.length; l++) {
            GPT2Weights.Block b = w.blocks[l];
            float[][] a = {b.ln1W, b.ln1B, b.attnW, b.attnB, b.attnProjW, b.attnProjB, b.ln2W, b.ln2B, b.fcW, b.fcB, b.projW, b.projB};
            for (int i = 0; i < BLOCK.length; i++) m.put("h." + l + "." + BLOCK[i], a[i]);
        }
        m.put("ln_f.weight", w.lnfW);
        m.put("ln_f.bias", w.lnfB);
        return m;
    }

    static long[] shape(GPT2Config c, String name) {
        long C = c.nEmbd();
        if (name.equals("wte.weight")) return new long[]{c.vocabSize(), C};
        if (name.equals("wpe.weight")) return new long[]{c.nPositions(), C};
        if (name.endsWith("c_attn.weight")) return new long[]{C, 3 * C};
        if (name.endsWith("c_attn.bias")) return new long[]{3 * C};
        if (name.endsWith("attn.c_proj.weight")) return new long[]{C, C};
        if (name.endsWith("c_fc.weight")) return new long[]{C, 4 * C};
        if (name.endsWith("c_fc.bias")) return new long[]{4 * C};
        if (name.endsWith("mlp.c_proj.weight")) return new long[]{4 * C, C};
        return new long[]{C};
    }

    // ------------------------------------------------------------------ element encodings

    static short bf16(float f) { // round to nearest even
        int b = Float.floatToRawIntBits(f);
        return (short) ((b + 0x7FFF + ((b >>> 16) & 1)) >>> 16);
    }

    static float fromBf16(short h) { return Float.intBitsToFloat((h & 0xFFFF) << 16); }

    static byte[] encode(float[] a, String dtype) {
        int es = dtype.equals("F32") ? 4 : 2;
        ByteBuffer b = ByteBuffer.allocate(a.length * es).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : a) {
            switch (dtype) {
                case "F32" -> b.putFloat(f);
                case "BF16" -> b.putShort(bf16(f));
                case "F16" -> b.putShort(dev.nshap.model.SafeTensors.floatToHalf(f));
                default -> throw new IllegalArgumentException(dtype);
            }
        }
        return b.array();
    }

    // ------------------------------------------------------------------ pickle (protocol 2)

    static final class Pickle {
        final ByteArrayOutputStream b = new ByteArrayOutputStream();
        int memo = 0;

        Pickle op(int... bytes) { for (int x : bytes) b.write(x); return this; }
        Pickle proto() { return op(0x80, 2); }
        Pickle global(String module, String name) {
            b.write('c');
            b.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
            return this;
        }
        Pickle str(String s) {
            byte[] u = s.getBytes(StandardCharsets.UTF_8);
            b.write('X');
            b.writeBytes(le32(u.length));
            b.writeBytes(u);
            return this;
        }
        Pickle integer(long v) {
            if (v >= 0 && v < 256) return op('K', (int) v);
            if (v >= 0 && v < 65536) return op('M', (int) (v & 0xFF), (int) (v >> 8));
            if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) { b.write('J'); b.writeBytes(le32((int) v)); return this; }
            byte[] l = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
            op(0x8a, 8);
            b.writeBytes(l);
            return this;
        }
        Pickle tuple(long... xs) {
            if (xs.length == 0) return op(')');
            op('(');
            for (long x : xs) integer(x);
            return op('t');
        }
        Pickle mark() { return op('('); }
        Pickle put() {
            int i = memo++;
            if (i < 256) return op('q', i);
            b.write('r');
            b.writeBytes(le32(i));
            return this;
        }
        Pickle get(int i) {
            if (i < 256) return op('h', i);
            b.write('j');
            b.writeBytes(le32(i));
            return this;
        }
        Pickle reduce() { return op('R'); }
        Pickle stop() { return op('.'); }
        byte[] bytes() { return b.toByteArray(); }
    }

    static byte[] le32(int v) { return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array(); }

    /** One state-dict entry: a strided view into storage {@code key}. */
    record TEntry(String name, String storageType, String key, long numel, long offset, long[] size, long[] stride) {}

    /** The pickle torch.save writes for an OrderedDict state dict (with the `_metadata` BUILD it carries). */
    static byte[] statePickle(List<TEntry> entries, boolean legacy) {
        Pickle p = new Pickle().proto();
        p.global("collections", "OrderedDict").put().op(')').reduce().put();
        p.mark();
        Map<String, Integer> storageMemo = new LinkedHashMap<>();
        for (TEntry e : entries) {
            p.str(e.name).put();
            p.global("torch._utils", "_rebuild_tensor_v2").put();
            p.mark();
            if (storageMemo.containsKey(e.key)) {
                p.get(storageMemo.get(e.key)); // BINGET the storage already rebuilt (tied weights)
            } else {
                p.mark().str("storage").global("torch", e.storageType).put().str(e.key).str("cpu").integer(e.numel);
                if (legacy) p.op('N');
                p.op('t').put();
                p.op('Q');
                storageMemo.put(e.key, p.memo);
                p.put();
            }
            p.integer(e.offset).tuple(e.size).tuple(e.stride).op(0x89); // requires_grad False
            p.global("collections", "OrderedDict").put().op(')').reduce().put(); // backward hooks
            p.op('t').put().reduce().put();
        }
        p.op('u');
        // state_dict._metadata = {'': {'version': 1}} arrives as BUILD state
        p.op('}').str("_metadata").op('}').str("").op('}').str("version").integer(1).op('s').op('s').op('s');
        p.op('b');
        return p.stop().bytes();
    }

    /** A torch.save zip: PREFIX/data.pkl, PREFIX/byteorder, PREFIX/data/KEY (stored), PREFIX/version. */
    static void writeTorchZip(Path file, String prefix, byte[] pickle, Map<String, byte[]> storages) throws IOException {
        Map<String, byte[]> entries = new LinkedHashMap<>();
        entries.put(prefix + "/data.pkl", pickle);
        entries.put(prefix + "/byteorder", "little".getBytes(StandardCharsets.US_ASCII));
        storages.forEach((k, v) -> entries.put(prefix + "/data/" + k, v));
        entries.put(prefix + "/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        writeZip(file, entries);
    }

    static void writeZip(Path file, Map<String, byte[]> entries) throws IOException {
        try (OutputStream os = Files.newOutputStream(file); ZipOutputStream z = new ZipOutputStream(os)) {
            for (Map.Entry<String, byte[]> e : entries.entrySet()) {
                ZipEntry ze = new ZipEntry(e.getKey());
                ze.setMethod(ZipEntry.STORED);
                ze.setSize(e.getValue().length);
                CRC32 crc = new CRC32();
                crc.update(e.getValue());
                ze.setCrc(crc.getValue());
                z.putNextEntry(ze);
                z.write(e.getValue());
                z.closeEntry();
            }
        }
    }

    /** The legacy (pre-1.6) torch.save stream: magic, protocol, sys info, the object, the key list, the storages. */
    static void writeTorchLegacy(Path file, List<TEntry> entries, Map<String, byte[]> storages, Map<String, Integer> elemSize)
            throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Pickle magic = new Pickle().proto();
        magic.op(0x8a, 10);
        // 0x1950a86a20f9469cfc6c little-endian
        magic.op(0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19).stop();
        out.writeBytes(magic.bytes());
        out.writeBytes(new Pickle().proto().integer(1001).stop().bytes());
        Pickle sys = new Pickle().proto().op('}').mark().str("protocol_version").integer(1001).str("little_endian").op(0x88)
                .str("type_sizes").op('}').mark().str("short").integer(2).str("int").integer(4).str("long").integer(4).op('u')
                .op('u').stop();
        out.writeBytes(sys.bytes());
        out.writeBytes(statePickle(entries, true));
        Pickle keys = new Pickle().proto().op(']').mark();
        for (String k : storages.keySet()) keys.str(k);
        out.writeBytes(keys.op('e').stop().bytes());
        for (Map.Entry<String, byte[]> s : storages.entrySet()) {
            long numel = s.getValue().length / elemSize.get(s.getKey());
            out.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(numel).array());
            out.writeBytes(s.getValue());
        }
        Files.write(file, out.toByteArray());
    }

    static String storageType(String dtype) {
        return switch (dtype) { case "F32" -> "FloatStorage"; case "F16" -> "HalfStorage"; case "BF16" -> "BFloat16Storage";
            default -> throw new IllegalArgumentException(dtype); };
    }

    /**
     * A GPT2LMHeadModel state dict as torch.save writes it: "transformer." names, one storage per tensor, the
     * causal-mask buffers as uint8 storages, lm_head sharing wte's storage. Two twists exercise the view logic:
     * layer 0's c_attn weight is stored transposed (stride (1, C)), and each ln_1 weight and bias share one storage.
     */
    static final class TorchDict {
        final List<TEntry> entries = new ArrayList<>();
        final Map<String, byte[]> storages = new LinkedHashMap<>();
        final Map<String, Integer> elemSize = new LinkedHashMap<>();
    }

    static TorchDict torchDict(GPT2Weights w, String dtype, boolean withHead) {
        GPT2Config c = w.config;
        TorchDict d = new TorchDict();
        String st = storageType(dtype);
        int es = dtype.equals("F32") ? 4 : 2;
        int key = 0;
        LinkedHashMap<String, float[]> arrs = arrays(w);
        String wteKey = null;
        for (Map.Entry<String, float[]> e : arrs.entrySet()) {
            String name = e.getKey();
            float[] a = e.getValue();
            long[] shape = shape(c, name);
            if (name.endsWith("ln_1.bias")) continue; // packed with ln_1.weight below
            String k = String.valueOf(key++);
            if (name.equals("h.0.attn.c_attn.weight")) {
                int C = c.nEmbd(), N = 3 * C;
                float[] t = new float[a.length]; // storage holds [3C, C]; the tensor [C, 3C] views it with stride (1, C)
                for (int i = 0; i < C; i++) for (int j = 0; j < N; j++) t[j * C + i] = a[i * N + j];
                d.storages.put(k, encode(t, dtype));
                d.entries.add(new TEntry("transformer." + name, st, k, a.length, 0, shape, new long[]{1, C}));
            } else if (name.endsWith("ln_1.weight")) {
                String layer = name.substring(0, name.length() - "ln_1.weight".length());
                float[] bias = arrs.get(layer + "ln_1.bias");
                float[] both = new float[a.length + bias.length];
                System.arraycopy(a, 0, both, 0, a.length);
                System.arraycopy(bias, 0, both, a.length, bias.length);
                d.storages.put(k, encode(both, dtype));
                d.entries.add(new TEntry("transformer." + name, st, k, both.length, 0, shape, new long[]{1}));
                d.entries.add(new TEntry("transformer." + layer + "ln_1.bias", st, k, both.length, a.length, shape, new long[]{1}));
            } else {
                d.storages.put(k, encode(a, dtype));
                long[] stride = shape.length == 2 ? new long[]{shape[1], 1} : new long[]{1};
                d.entries.add(new TEntry("transformer." + name, st, k, a.length, 0, shape, stride));
                if (name.equals("wte.weight")) wteKey = k;
            }
            d.elemSize.put(k, es);
            if (name.endsWith("attn.c_proj.bias")) { // after the attention parameters, the causal mask buffer
                String mk = String.valueOf(key++);
                int P = c.nPositions();
                byte[] mask = new byte[P * P];
                for (int i = 0; i < P; i++) for (int j = 0; j <= i; j++) mask[i * P + j] = 1;
                d.storages.put(mk, mask);
                d.elemSize.put(mk, 1);
                String layer = name.substring(0, name.length() - "attn.c_proj.bias".length());
                d.entries.add(new TEntry("transformer." + layer + "attn.bias", "ByteStorage", mk, (long) P * P, 0,
                        new long[]{1, 1, P, P}, new long[]{(long) P * P, (long) P * P, P, 1}));
            }
        }
        if (withHead)
            d.entries.add(new TEntry("lm_head.weight", st, wteKey, w.wte.length, 0, shape(c, "wte.weight"), new long[]{c.nEmbd(), 1}));
        return d;
    }

    static void writeTorchZip(Path file, GPT2Weights w, String dtype) throws IOException {
        TorchDict d = torchDict(w, dtype, true);
        writeTorchZip(file, "archive", statePickle(d.entries, false), d.storages);
    }

    // ------------------------------------------------------------------ llm.c

    /** llm.c layout: header, then wte padded to Vp rows (padding filled with junk), Linear [out, in] weights. */
    static void writeLlmc(Path file, GPT2Weights w, boolean bf16, int Vp) throws IOException {
        GPT2Config c = w.config;
        int C = c.nEmbd(), L = c.nLayer(), V = c.vocabSize();
        int[] h = new int[256];
        h[0] = 20240326; h[1] = bf16 ? 5 : 3; h[2] = c.nPositions(); h[3] = V; h[4] = L; h[5] = c.nHead(); h[6] = C; h[7] = Vp;
        List<float[]> parts = new ArrayList<>();
        float[] wte = new float[Vp * C];
        System.arraycopy(w.wte, 0, wte, 0, V * C);
        for (int i = V * C; i < wte.length; i++) wte[i] = 1000f + i; // padding rows must be dropped
        parts.add(wte);
        parts.add(w.wpe);
        int[][] sel = {{0}, {1}, {2, 3 * C, C}, {3}, {4, C, C}, {5}, {6}, {7}, {8, 4 * C, C}, {9}, {10, C, 4 * C}, {11}};
        for (int[] s : sel) {
            for (int l = 0; l < L; l++) {
                GPT2Weights.Block b = w.blocks[l];
                float[][] a = {b.ln1W, b.ln1B, b.attnW, b.attnB, b.attnProjW, b.attnProjB, b.ln2W, b.ln2B, b.fcW, b.fcB, b.projW, b.projB};
                float[] src = a[s[0]];
                if (s.length == 1) { parts.add(src); continue; }
                int out = s[1], in = s[2]; // Conv1D [in, out] -> Linear [out, in]
                float[] t = new float[src.length];
                for (int i = 0; i < in; i++) for (int o = 0; o < out; o++) t[o * in + i] = src[i * out + o];
                parts.add(t);
            }
        }
        parts.add(w.lnfW);
        parts.add(w.lnfB);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteBuffer hb = ByteBuffer.allocate(1024).order(ByteOrder.LITTLE_ENDIAN);
        for (int x : h) hb.putInt(x);
        out.writeBytes(hb.array());
        for (float[] p : parts) out.writeBytes(encode(p, bf16 ? "BF16" : "F32"));
        Files.write(file, out.toByteArray());
    }
}
