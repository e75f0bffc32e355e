package dev.nshap.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.io.AtomicFiles;
import dev.nshap.io.Json;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reader and writer for the safetensors format: u64 little-endian header length, a JSON header
 * ({@code name -> {dtype, shape, data_offsets}} plus an optional {@code __metadata__} of strings), then the data.
 * The reader validates every claim of the header against the file before any tensor is read, and reads tensors
 * through a {@link FileChannel} (GPT-2 xl is 6 GB, far past the 2 GB of one byte[]).
 */
public final class SafeTensors {
    /** The reference implementation refuses headers above 100 MB; so do we, before allocating anything. */
    static final long MAX_HEADER = 100L << 20;

    public record Tensor(String dtype, long[] shape, float[] data) {
        public Tensor {
            dtypeSize(dtype, "tensor");
            if (product(shape) != data.length)
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " does not hold "
                        + data.length + " values");
        }
    }

    private record Entry(String name, String dtype, long[] shape, long begin, long end) {}

    private final Path file;
    private final long dataStart;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;

    private SafeTensors(Path file, long dataStart, Map<String, Entry> entries, Map<String, String> metadata) {
        this.file = file;
        this.dataStart = dataStart;
        this.entries = entries;
        this.metadata = metadata;
    }

    /** Size in bytes of one element; unknown dtypes are bad input. */
    public static int dtypeSize(String dtype, String where) {
        return switch (dtype) {
            case "F64", "I64", "U64" -> 8;
            case "F32", "I32", "U32" -> 4;
            case "F16", "BF16", "I16", "U16" -> 2;
            case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2" -> 1;
            default -> throw new NshapException(where + ": unknown dtype '" + dtype + "'");
        };
    }

    static long product(long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) return -1;
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    // ------------------------------------------------------------------ reading

    public static SafeTensors open(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw new NshapException(file + ": truncated: " + size + " bytes, not even the 8-byte header length");
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0);
            long headerLen = lenBuf.getLong(0);
            if (headerLen < 2 || headerLen > MAX_HEADER)
                throw new NshapException(file + ": header length " + Long.toUnsignedString(headerLen) + " is not plausible");
            if (headerLen > size - 8)
                throw new NshapException(file + ": header length " + headerLen + " runs past the end of the file ("
                        + size + " bytes): truncated file or lying header");
            ByteBuffer hb = ByteBuffer.allocate((int) headerLen);
            readFully(ch, hb, 8);
            String json = new String(hb.array(), StandardCharsets.UTF_8);
            long dataStart = 8 + headerLen;
            return parse(file, json, dataStart, size - dataStart);
        } catch (NoSuchFileException e) {
            throw new NshapException(file + ": no such file");
        } catch (IOException e) {
            throw new NshapException(file + ": cannot read: " + e.getMessage());
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long pos) throws IOException {
        while (buf.hasRemaining()) {
            int n = ch.read(buf, pos);
            if (n < 0) throw new IOException("unexpected end of file");
            pos += n;
        }
    }

    private static SafeTensors parse(Path file, String json, long dataStart, long dataLen) {
        JsonNode root;
        try {
            // Trailing spaces pad the header to an 8-byte boundary; the JSON itself must end there.
            root = Json.MAPPER.readerFor(JsonNode.class)
                    .with(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_TRAILING_TOKENS).readValue(json);
        } catch (JsonProcessingException e) {
            throw new NshapException(file + ": header is not valid JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) throw new NshapException(file + ": header is not a JSON object");
        Map<String, String> metadata = new LinkedHashMap<>();
        Map<String, Entry> entries = new LinkedHashMap<>();
        checkDuplicateKeys(file, json);
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> f = it.next();
            String name = f.getKey();
            JsonNode v = f.getValue();
            if (name.equals("__metadata__")) {
                if (!v.isObject()) throw new NshapException(file + ": __metadata__ is not a JSON object");
                for (Iterator<Map.Entry<String, JsonNode>> m = v.fields(); m.hasNext(); ) {
                    Map.Entry<String, JsonNode> kv = m.next();
                    if (!kv.getValue().isTextual())
                        throw new NshapException(file + ": __metadata__ value '" + kv.getKey() + "' is not a string");
                    metadata.put(kv.getKey(), kv.getValue().asText());
                }
                continue;
            }
            String where = file + ": tensor '" + name + "'";
            if (!v.isObject()) throw new NshapException(where + " is not a JSON object");
            JsonNode dt = v.get("dtype"), sh = v.get("shape"), off = v.get("data_offsets");
            if (dt == null || !dt.isTextual()) throw new NshapException(where + " has no dtype");
            if (sh == null || !sh.isArray()) throw new NshapException(where + " has no shape array");
            if (off == null || !off.isArray() || off.size() != 2)
                throw new NshapException(where + " has no data_offsets [begin, end]");
            String dtype = dt.asText();
            int esize = dtypeSize(dtype, where);
            long[] shape = new long[sh.size()];
            for (int i = 0; i < shape.length; i++) {
                JsonNode d = sh.get(i);
                if (!d.canConvertToLong() || !d.isIntegralNumber() || d.asLong() < 0)
                    throw new NshapException(where + " has a bad shape " + sh);
                shape[i] = d.asLong();
            }
            for (JsonNode o : off)
                if (!o.isIntegralNumber() || !o.canConvertToLong() || o.asLong() < 0)
                    throw new NshapException(where + " has bad data_offsets " + off);
            long begin = off.get(0).asLong(), end = off.get(1).asLong();
            if (end < begin)
                throw new NshapException(where + " has reversed data_offsets [" + begin + ", " + end + "]");
            long bytes;
            try {
                bytes = Math.multiplyExact(product(shape), esize);
            } catch (ArithmeticException e) {
                throw new NshapException(where + " has an impossibly large shape " + sh);
            }
            if (end - begin != bytes)
                throw new NshapException(where + ": data_offsets span " + (end - begin) + " bytes but shape "
                        + Arrays.toString(shape) + " x " + dtype + " needs " + bytes);
            entries.put(name, new Entry(name, dtype, shape, begin, end));
        }
        // The ranges must tile the data section exactly: no overlap (two tensors sharing bytes), no holes, no
        // tensor outside it. A file cut short still tiles, but needs more bytes than it has.
        List<Entry> sorted = new ArrayList<>(entries.values());
        sorted.sort((a, b) -> a.begin != b.begin ? Long.compare(a.begin, b.begin) : Long.compare(a.end, b.end));
        long pos = 0;
        Entry prev = null;
        for (Entry e : sorted) {
            if (e.begin < pos)
                throw new NshapException(file + ": tensors '" + prev.name + "' and '" + e.name + "' overlap (bytes "
                        + e.begin + ".." + pos + " of the data section)");
            if (e.begin > pos) {
                if (e.end > dataLen)
                    throw new NshapException(file + ": tensor '" + e.name + "' has data_offsets [" + e.begin + ", " + e.end
                            + "] out of range: the data section has " + dataLen + " bytes");
                throw new NshapException(file + ": " + (e.begin - pos) + " unaccounted bytes before tensor '" + e.name
                        + "' (offset " + pos + "): offsets do not tile the data section");
            }
            pos = e.end;
            prev = e;
        }
        if (pos > dataLen)
            throw new NshapException(file + ": truncated: the header describes " + pos + " bytes of tensor data but the file has "
                    + dataLen + " (" + (pos - dataLen) + " missing)");
        if (pos < dataLen)
            throw new NshapException(file + ": " + (dataLen - pos) + " bytes after the last tensor: header length or offsets"
                    + " disagree with the file size");
        return new SafeTensors(file, dataStart, Collections.unmodifiableMap(entries), Collections.unmodifiableMap(metadata));
    }

    /** Jackson keeps the last of two equal keys silently; a header naming one tensor twice is malformed. */
    private static void checkDuplicateKeys(Path file, String json) {
        try (var p = Json.MAPPER.getFactory().createParser(json)) {
            p.enable(com.fasterxml.jackson.core.JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
            while (p.nextToken() != null) { }
        } catch (JsonProcessingException e) {
            throw new NshapException(file + ": header: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public Path file() { return file; }
    public List<String> names() { return List.copyOf(entries.keySet()); }
    public boolean has(String name) { return entries.containsKey(name); }
    public Map<String, String> metadata() { return metadata; }
    public String dtype(String name) { return entry(name).dtype; }
    public long[] shape(String name) { return entry(name).shape.clone(); }
    public long byteSize(String name) { Entry e = entry(name); return e.end - e.begin; }
    public long elementCount(String name) { return product(entry(name).shape); }

    private Entry entry(String name) {
        Entry e = entries.get(name);
        if (e == null) throw new NshapException(file + ": no tensor '" + name + "'");
        return e;
    }

    public float[] readFloats(String name) {
        Entry e = entry(name);
        long n = product(e.shape);
        if (n > Integer.MAX_VALUE - 8) throw new NshapException(file + ": tensor '" + name + "' is too large for one array");
        float[] out = new float[(int) n];
        readFloats(name, out, 0);
        return out;
    }

    /** Reads tensor {@code name}, converted to float, into {@code dst[off..]}. */
    public void readFloats(String name, float[] dst, int off) {
        Entry e = entry(name);
        long n = product(e.shape);
        if (off + n > dst.length) throw new IllegalArgumentException("destination too small for " + name);
        if (n == 0) return;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long pos = dataStart + e.begin;
            int esize = dtypeSize(e.dtype, name);
            // Map in pieces well below 2 GB; a piece holds a whole number of elements.
            long chunkElems = (1L << 28) / esize;
            long done = 0;
            while (done < n) {
                long k = Math.min(chunkElems, n - done);
                MappedByteBuffer mb = ch.map(FileChannel.MapMode.READ_ONLY, pos + done * esize, k * esize);
                mb.order(ByteOrder.LITTLE_ENDIAN);
                int o = (int) (off + done);
                switch (e.dtype) {
                    case "F32" -> mb.asFloatBuffer().get(dst, o, (int) k);
                    case "F16" -> { for (int i = 0; i < k; i++) dst[o + i] = halfToFloat(mb.getShort(2 * i)); }
                    case "BF16" -> { for (int i = 0; i < k; i++) dst[o + i] = bf16ToFloat(mb.getShort(2 * i)); }
                    case "F64" -> { for (int i = 0; i < k; i++) dst[o + i] = (float) mb.getDouble(8 * i); }
                    default -> throw new NshapException(file + ": tensor '" + name + "' has dtype " + e.dtype
                            + "; only F32, F16, BF16 and F64 can be read as floats");
                }
                done += k;
            }
        } catch (IOException ex) {
            throw new NshapException(file + ": cannot read tensor '" + name + "': " + ex.getMessage());
        }
    }

    // ------------------------------------------------------------------ conversions

    public static float bf16ToFloat(short h) {
        return Float.intBitsToFloat((h & 0xFFFF) << 16);
    }

    /** float -> bfloat16, round to nearest even; NaN stays a (quiet) NaN. */
    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) return (short) ((bits >>> 16) | 0x0040);
        int lsb = (bits >>> 16) & 1;
        return (short) ((bits + 0x7FFF + lsb) >>> 16);
    }

    public static float halfToFloat(short h) {
        int s = (h & 0x8000) << 16;
        int e = (h >>> 10) & 0x1F;
        int m = h & 0x3FF;
        if (e == 0x1F) return Float.intBitsToFloat(s | 0x7F800000 | (m << 13));
        if (e == 0) {
            float v = m * 0x1.0p-24f; // subnormal: exact in float
            return s != 0 ? -v : v;
        }
        return Float.intBitsToFloat(s | ((e - 15 + 127) << 23) | (m << 13));
    }

    /** float -> IEEE binary16, round to nearest even, overflow to infinity, gradual underflow. */
    public static short floatToHalf(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int exp = (bits >>> 23) & 0xFF;
        int mant = bits & 0x7FFFFF;
        if (exp == 0xFF) return (short) (sign | 0x7C00 | (mant != 0 ? 0x200 | (mant >>> 13) : 0));
        int e = exp - 127 + 15;
        if (e >= 0x1F) return (short) (sign | 0x7C00);
        if (e <= 0) {
            if (e < -10) return (short) sign; // below half the smallest subnormal (ties included: rounds to 0)
            int m = mant | 0x800000;            // implicit bit
            int shift = 14 - e;                 // 14..24
            int q = m >>> shift;
            int rem = m & ((1 << shift) - 1);
            int half = 1 << (shift - 1);
            if (rem > half || (rem == half && (q & 1) != 0)) q++;
            return (short) (sign | q);          // q may carry into the smallest normal: still correct
        }
        int q = (e << 10) | (mant >>> 13);
        int rem = mant & 0x1FFF;
        if (rem > 0x1000 || (rem == 0x1000 && (q & 1) != 0)) q++; // carry may reach 0x7C00 = infinity: correct
        return (short) (sign | q);
    }

    // ------------------------------------------------------------------ writing

    /** A finite weight that becomes infinite in the narrower dtype would make the written model compute NaN. */
    private static NshapException overflow(String name, String dtype, long index, float v) {
        return new NshapException("tensor '" + name + "' element " + index + " = " + v + " overflows " + dtype
                + " (largest finite " + (dtype.equals("F16") ? "65504" : "3.39e38") + "): keep f32 (--dtype f32)");
    }

    /**
     * Writes the tensors, in the given order, converting each to its dtype (F32, F16 or BF16), atomically.
     * The header is padded with spaces to a multiple of 8 bytes, as the reference implementation does.
     */
    public static void write(Path target, LinkedHashMap<String, Tensor> tensors, Map<String, String> metadata) {
        ObjectNode header = Json.MAPPER.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode m = header.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        long pos = 0;
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            Tensor t = e.getValue();
            if (!t.dtype.equals("F32") && !t.dtype.equals("F16") && !t.dtype.equals("BF16"))
                throw new NshapException("cannot write dtype " + t.dtype + " (only F32, F16, BF16)");
            long bytes = (long) t.data.length * dtypeSize(t.dtype, e.getKey());
            ObjectNode o = header.putObject(e.getKey());
            o.put("dtype", t.dtype);
            var sh = o.putArray("shape");
            for (long d : t.shape) sh.add(d);
            o.putArray("data_offsets").add(pos).add(pos + bytes);
            pos += bytes;
        }
        byte[] hjson;
        try {
            hjson = Json.MAPPER.writer().without(com.fasterxml.jackson.databind.SerializationFeature.INDENT_OUTPUT)
                    .writeValueAsBytes(header);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        int padded = (hjson.length + 7) & ~7;
        byte[] hbytes = Arrays.copyOf(hjson, padded);
        Arrays.fill(hbytes, hjson.length, padded, (byte) ' ');
        AtomicFiles.write(target, out -> {
            ByteBuffer lb = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, padded);
            out.write(lb.array());
            out.write(hbytes);
            for (Map.Entry<String, Tensor> e : tensors.entrySet()) writeData(out, e.getKey(), e.getValue());
        });
    }

    private static void writeData(OutputStream out, String name, Tensor t) throws IOException {
        int esize = dtypeSize(t.dtype, "tensor");
        int chunk = 1 << 16;
        ByteBuffer bb = ByteBuffer.allocate(chunk * esize).order(ByteOrder.LITTLE_ENDIAN);
        float[] d = t.data;
        for (int i = 0; i < d.length; i += chunk) {
            int k = Math.min(chunk, d.length - i);
            bb.clear();
            switch (t.dtype) {
                case "F32" -> { for (int j = 0; j < k; j++) bb.putFloat(d[i + j]); }
                case "F16" -> {
                    for (int j = 0; j < k; j++) {
                        short h = floatToHalf(d[i + j]);
                        if ((h & 0x7C00) == 0x7C00 && Float.isFinite(d[i + j])) throw overflow(name, t.dtype, i + j, d[i + j]);
                        bb.putShort(h);
                    }
                }
                case "BF16" -> {
                    for (int j = 0; j < k; j++) {
                        short h = floatToBf16(d[i + j]);
                        if ((h & 0x7F80) == 0x7F80 && Float.isFinite(d[i + j])) throw overflow(name, t.dtype, i + j, d[i + j]);
                        bb.putShort(h);
                    }
                }
                default -> throw new IllegalStateException(t.dtype);
            }
            out.write(bb.array(), 0, k * esize);
        }
    }
}
