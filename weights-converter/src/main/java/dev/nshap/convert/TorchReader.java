package dev.nshap.convert;

import dev.nshap.NshapException;
import dev.nshap.convert.RestrictedUnpickler.StorageRef;
import dev.nshap.convert.RestrictedUnpickler.StorageType;
import dev.nshap.convert.RestrictedUnpickler.TensorRef;
import dev.nshap.convert.RestrictedUnpickler.Tuple;
import dev.nshap.model.SafeTensors;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipFile;

/**
 * PyTorch {@code torch.save} files holding a state dict ({@code pytorch_model.bin}).
 * <ul>
 * <li>Zip format (PyTorch 1.6+): {@code PREFIX/data.pkl} (the pickle; tensors are persistent ids
 * {@code ('storage', torch.XStorage, key, location, numel)}), {@code PREFIX/data/KEY} (raw little-endian storage
 * bytes, stored uncompressed), {@code PREFIX/version}, optionally {@code PREFIX/byteorder}.</li>
 * <li>Legacy format (before 1.6): five pickles in a row (magic number, protocol version, system info, the object
 * with ids {@code ('storage', type, key, location, numel, view)}, the list of storage keys), then each storage as an
 * int64 element count and its raw bytes.</li>
 * </ul>
 * The pickle goes through {@link RestrictedUnpickler}; every view is checked against its storage before use.
 */
public final class TorchReader {
    /** A state dict's pickle is a few hundred kB even for GPT-2 xl; a larger one is not a checkpoint. */
    static final long MAX_PICKLE = 64L << 20;
    private static final java.math.BigInteger LEGACY_MAGIC = new java.math.BigInteger("1950a86a20f9469cfc6c", 16);
    private static final Pattern KEY = Pattern.compile("[A-Za-z0-9_.]{1,64}");

    private TorchReader() {}

    public static boolean isZip(byte[] head) {
        return head.length >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
    }

    /** Legacy torch.save files start with the pickled magic number: PROTO 2, LONG1 of 10 bytes. */
    public static boolean isLegacy(byte[] head) {
        return head.length >= 4 && (head[0] & 0xFF) == 0x80 && head[1] == 2 && (head[2] & 0xFF) == 0x8a && head[3] == 10;
    }

    // ------------------------------------------------------------------ zip

    public static List<SourceTensor> readZip(Path file) {
        String where = file.toString();
        try (ZipFile zip = openZip(file)) {
            Map<String, ZipEntry> entries = new LinkedHashMap<>();
            String prefix = null;
            for (Enumeration<? extends ZipEntry> en = zip.entries(); en.hasMoreElements(); ) {
                ZipEntry e = en.nextElement();
                String n = e.getName();
                checkEntryName(where, n);
                if (entries.put(n, e) != null) throw new NshapException(where + ": zip entry '" + n + "' appears twice");
                String top = n.substring(0, Math.max(0, n.indexOf('/')));
                if (top.isEmpty()) throw new NshapException(where + ": zip entry '" + n + "' is not inside the archive's folder");
                if (prefix == null) prefix = top;
                else if (!prefix.equals(top))
                    throw new NshapException(where + ": zip entries under both '" + prefix + "/' and '" + top + "/': not a torch.save archive");
            }
            if (prefix == null) throw new NshapException(where + ": empty zip archive");
            ZipEntry pkl = entries.get(prefix + "/data.pkl");
            if (pkl == null) throw new NshapException(where + ": no " + prefix + "/data.pkl: not a torch.save archive");
            ZipEntry order = entries.get(prefix + "/byteorder");
            if (order != null) {
                String bo = new String(readEntry(zip, order, 16, where), java.nio.charset.StandardCharsets.US_ASCII).trim();
                if (!bo.equals("little")) throw new NshapException(where + ": byteorder '" + bo + "' is not supported (only little-endian)");
            }
            byte[] pickle = readEntry(zip, pkl, MAX_PICKLE, where);
            final String pfx = prefix;
            Map<String, StorageRef> storages = new HashMap<>();
            Object root = RestrictedUnpickler.load(pickle, where + " (" + pkl.getName() + ")", pid -> {
                StorageRef s = storageId(where, pid, 5);
                ZipEntry data = entries.get(pfx + "/data/" + s.key());
                if (data == null) throw new NshapException(where + ": storage '" + s.key() + "' has no entry " + pfx + "/data/" + s.key());
                long want = Math.multiplyExact(s.numel(), s.type().elementSize());
                if (data.getSize() != want)
                    throw new NshapException(where + ": storage '" + s.key() + "' claims " + s.numel() + " x " + s.type().name()
                            + " (" + want + " bytes) but its entry holds " + data.getSize() + " bytes");
                StorageRef prev = storages.putIfAbsent(s.key(), s);
                if (prev != null && !prev.equals(s))
                    throw new NshapException(where + ": storage '" + s.key() + "' is described two different ways");
                return s;
            });
            Map<String, TensorRef> tensors = stateDict(where, root);
            List<SourceTensor> out = new ArrayList<>();
            for (Map.Entry<String, TensorRef> t : tensors.entrySet()) {
                TensorRef r = t.getValue();
                ZipEntry data = entries.get(pfx + "/data/" + r.storage().key());
                long bytes = data.getSize();
                // Inflate only the bytes this view reaches, never the storage's declared size: a crafted archive
                // can declare a tiny tensor over a storage that inflates to tens of gigabytes.
                long[] need = new long[1];
                // Each read opens the archive again, so no file handle outlives the conversion.
                SourceTensor st = view(where, t.getKey(), r, dst -> {
                    try (ZipFile z = openZip(file)) {
                        ZipEntry e = z.getEntry(data.getName());
                        if (e == null || e.getSize() != bytes) throw new NshapException(where + ": changed while being read");
                        gather(readPrefix(z, e, need[0], where), 0, r, dst);
                    } catch (IOException ex) {
                        throw new NshapException(where + ": cannot read: " + ex.getMessage());
                    }
                });
                need[0] = Math.multiplyExact(st.last() + 1, (long) r.storage().type().elementSize());
                out.add(st);
            }
            return out;
        } catch (IOException e) {
            throw new NshapException(where + ": cannot read: " + e.getMessage());
        }
    }

    private static ZipFile openZip(Path file) {
        try {
            return new ZipFile(file.toFile());
        } catch (ZipException e) {
            throw new NshapException(file + ": not a readable zip archive: " + e.getMessage());
        } catch (IOException e) {
            throw new NshapException(file + ": cannot read: " + e.getMessage());
        }
    }

    static void checkEntryName(String where, String n) {
        boolean bad = n.isEmpty() || n.startsWith("/") || n.contains("\\") || n.contains("\0") || n.contains(":")
                || n.length() > 512;
        for (String part : n.split("/", -1)) if (part.equals("..") || part.equals(".")) bad = true;
        if (bad) throw new NshapException(where + ": zip entry name '" + printable(n) + "' is unsafe (absolute path or "
                + "path traversal); refusing the archive");
    }

    private static String printable(String s) {
        StringBuilder b = new StringBuilder();
        for (char ch : s.toCharArray()) b.append(ch >= 0x20 && ch < 0x7F ? ch : '?');
        return b.length() > 100 ? b.substring(0, 100) + "..." : b.toString();
    }

    /** The first {@code bytes} inflated bytes of an entry, inflating no further. */
    static byte[] readPrefix(ZipFile zip, ZipEntry e, long bytes, String where) {
        if (bytes > Integer.MAX_VALUE - 8)
            throw new NshapException(where + ": zip entry '" + e.getName() + "': " + bytes + " bytes are too many for one tensor");
        if (e.getSize() < bytes) throw new NshapException(where + ": zip entry '" + e.getName() + "' is truncated");
        byte[] b = new byte[(int) bytes];
        try (InputStream in = zip.getInputStream(e)) {
            int off = 0;
            while (off < b.length) {
                int n = in.read(b, off, b.length - off);
                if (n < 0) throw new NshapException(where + ": zip entry '" + e.getName() + "' is truncated");
                off += n;
            }
        } catch (IOException ex) {
            throw new NshapException(where + ": cannot read zip entry '" + e.getName() + "': " + ex.getMessage());
        }
        return b;
    }

    private static byte[] readEntry(ZipFile zip, ZipEntry e, long max, String where) {
        long size = e.getSize();
        if (size > max || size < 0)
            throw new NshapException(where + ": zip entry '" + e.getName() + "' is " + size + " bytes, over the limit of " + max);
        byte[] b = new byte[(int) size];
        try (InputStream in = zip.getInputStream(e)) {
            int off = 0;
            while (off < b.length) {
                int n = in.read(b, off, b.length - off);
                if (n < 0) throw new NshapException(where + ": zip entry '" + e.getName() + "' is truncated");
                off += n;
            }
            if (in.read() >= 0) throw new NshapException(where + ": zip entry '" + e.getName() + "' holds more bytes than its header says");
        } catch (IOException ex) {
            throw new NshapException(where + ": cannot read zip entry '" + e.getName() + "': " + ex.getMessage());
        }
        return b;
    }

    // ------------------------------------------------------------------ legacy

    public static List<SourceTensor> readLegacy(Path file) {
        String where = file.toString();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long end = ch.size();
            // The five pickles come first and are small; only this prefix is read up front, the storages later one
            // by one, so files past 2 GB (GPT-2 large and xl as saved in 2019) work.
            byte[] pre = readAt(ch, 0, (int) Math.min(end, 2 * MAX_PICKLE), where);
            int lim = pre.length;
            Object[] r = RestrictedUnpickler.loadAt(pre, 0, lim, where, null);
            if (!LEGACY_MAGIC.equals(r[0])) throw new NshapException(where + ": not a torch.save file (bad magic number)");
            r = RestrictedUnpickler.loadAt(pre, (int) r[1], lim, where, null);
            if (!(r[0] instanceof Long v) || v != 1001L) throw new NshapException(where + ": unsupported legacy protocol version " + r[0]);
            r = RestrictedUnpickler.loadAt(pre, (int) r[1], lim, where, null);
            if (r[0] instanceof Map<?, ?> sys && Boolean.FALSE.equals(sys.get("little_endian")))
                throw new NshapException(where + ": big-endian checkpoint is not supported");
            Map<String, StorageRef> storages = new LinkedHashMap<>();
            int start = (int) r[1];
            r = RestrictedUnpickler.loadAt(pre, start, (int) Math.min(lim, start + MAX_PICKLE), where, pid -> {
                StorageRef s = storageId(where, pid, 6);
                StorageRef prev = storages.putIfAbsent(s.key(), s);
                if (prev != null && !prev.equals(s)) throw new NshapException(where + ": storage '" + s.key() + "' is described two different ways");
                return s;
            });
            Map<String, TensorRef> tensors = stateDict(where, r[0]);
            start = (int) r[1];
            r = RestrictedUnpickler.loadAt(pre, start, (int) Math.min(lim, start + MAX_PICKLE), where, null);
            if (!(r[0] instanceof List<?> keys)) throw new NshapException(where + ": legacy storage key list is missing");
            Map<String, Long> dataAt = new HashMap<>();
            long p = (int) r[1];
            ByteBuffer count = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            for (Object k : keys) {
                StorageRef s = k instanceof String ks ? storages.get(ks) : null;
                if (s == null) throw new NshapException(where + ": storage key list names unknown storage " + k);
                if (end - p < 8) throw new NshapException(where + ": truncated at storage '" + s.key() + "'");
                count.clear();
                while (count.hasRemaining()) if (ch.read(count, p + count.position()) < 0) break;
                long numel = count.getLong(0);
                if (numel != s.numel())
                    throw new NshapException(where + ": storage '" + s.key() + "' holds " + numel + " elements but the pickle says " + s.numel());
                long bytes = Math.multiplyExact(numel, s.type().elementSize());
                if (bytes > end - p - 8)
                    throw new NshapException(where + ": storage '" + s.key() + "' (" + bytes + " bytes) runs past the end of the file");
                if (dataAt.put(s.key(), p + 8) != null) throw new NshapException(where + ": storage '" + s.key() + "' stored twice");
                p += 8 + bytes;
            }
            if (p != end) throw new NshapException(where + ": " + (end - p) + " stray bytes after the last storage");
            List<SourceTensor> out = new ArrayList<>();
            for (Map.Entry<String, TensorRef> t : tensors.entrySet()) {
                TensorRef ref = t.getValue();
                Long at = dataAt.get(ref.storage().key());
                if (at == null) throw new NshapException(where + ": tensor '" + t.getKey() + "' uses storage '" + ref.storage().key() + "', which the file does not hold");
                long bytes = ref.storage().numel() * ref.storage().type().elementSize();
                if (bytes > Integer.MAX_VALUE - 8) throw new NshapException(where + ": storage '" + ref.storage().key() + "' is over 2 GB");
                out.add(view(where, t.getKey(), ref, dst -> {
                    try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ)) {
                        gather(readAt(c, at, (int) bytes, where), 0, ref, dst);
                    } catch (IOException e) {
                        throw new NshapException(where + ": cannot read: " + e.getMessage());
                    }
                }));
            }
            return out;
        } catch (IOException e) {
            throw new NshapException(where + ": cannot read: " + e.getMessage());
        }
    }

    private static byte[] readAt(FileChannel ch, long pos, int n, String where) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining()) {
            if (ch.read(b, pos + b.position()) < 0) throw new NshapException(where + ": truncated (changed while being read?)");
        }
        return b.array();
    }

    // ------------------------------------------------------------------ shared

    /** ('storage', type, key, location, numel[, view_metadata]) -> StorageRef. */
    private static StorageRef storageId(String where, Object pid, int arity) {
        if (!(pid instanceof Tuple t) || t.size() != arity || !"storage".equals(t.get(0)))
            throw new NshapException(where + ": persistent id is not a ('storage', ...) tuple of " + arity);
        if (!(t.get(1) instanceof StorageType type)) throw new NshapException(where + ": persistent id names no storage type");
        if (!(t.get(2) instanceof String key) || !KEY.matcher(key).matches())
            throw new NshapException(where + ": storage key " + t.get(2) + " is not a plain name");
        if (!(t.get(4) instanceof Long numel) || numel < 0) throw new NshapException(where + ": storage '" + key + "' has a bad size");
        if (arity == 6 && t.get(5) != RestrictedUnpickler.NONE)
            throw new NshapException(where + ": storage views (legacy view_metadata) are not supported");
        return new StorageRef(type, key, numel);
    }

    /** The root object's tensors: a state dict, or a training checkpoint's {"state_dict"|"model": state dict}. */
    private static Map<String, TensorRef> stateDict(String where, Object root) {
        if (root instanceof Map<?, ?> m && !m.isEmpty() && !(m.values().iterator().next() instanceof TensorRef)) {
            for (String k : new String[]{"state_dict", "model", "module"})
                if (m.get(k) instanceof Map<?, ?> inner) { root = inner; break; }
        }
        if (!(root instanceof Map<?, ?> m)) throw new NshapException(where + ": the pickle does not hold a state dict");
        Map<String, TensorRef> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (!(e.getKey() instanceof String k)) throw new NshapException(where + ": state dict key " + e.getKey() + " is not a string");
            if (!(e.getValue() instanceof TensorRef t)) throw new NshapException(where + ": state dict entry '" + k + "' is not a tensor");
            out.put(k, t);
        }
        if (out.isEmpty()) throw new NshapException(where + ": the state dict is empty");
        return out;
    }

    /** Checks the view lies inside its storage and wraps it as a SourceTensor. */
    private static SourceTensor view(String where, String name, TensorRef r, SourceTensor.Reader reader) {
        long numel = r.storage().numel();
        long n = 1, last = r.offset();
        for (int i = 0; i < r.size().length; i++) {
            long d = r.size()[i], s = r.stride()[i];
            if (d < 0 || s < 0) throw new NshapException(where + ": tensor '" + name + "' has a negative size or stride");
            try {
                n = Math.multiplyExact(n, d);
                if (d > 0) last = Math.addExact(last, Math.multiplyExact(d - 1, s));
            } catch (ArithmeticException e) {
                throw new NshapException(where + ": tensor '" + name + "' has an impossibly large shape");
            }
        }
        if (n == 0) last = r.offset() - 1;
        if (r.offset() < 0 || (n > 0 && last >= numel))
            throw new NshapException(where + ": tensor '" + name + "' reads elements " + r.offset() + ".." + last
                    + " of storage '" + r.storage().key() + "', which holds only " + numel + ": out of range");
        if (n > Integer.MAX_VALUE - 8) throw new NshapException(where + ": tensor '" + name + "' is too large for one array");
        return new SourceTensor(name, r.size().clone(), r.storage().type().dtype(), reader, r.storage().key(), r.offset(), last);
    }

    /** Copies the strided view out of the storage bytes (starting at {@code base}) into dst, as floats. */
    static void gather(byte[] bytes, int base, TensorRef r, float[] dst) {
        StorageType t = r.storage().type();
        ByteBuffer bb = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long[] size = r.size(), stride = r.stride();
        int rank = size.length;
        boolean contiguous = true;
        long expect = 1;
        for (int i = rank - 1; i >= 0; i--) {
            if (size[i] != 1 && stride[i] != expect) contiguous = false;
            expect *= size[i];
        }
        int n = dst.length;
        if (contiguous && t.dtype().equals("F32")) {
            bb.position(base + (int) (r.offset() * 4));
            bb.asFloatBuffer().get(dst, 0, n);
            return;
        }
        long[] idx = new long[rank];
        long off = r.offset();
        for (int i = 0; i < n; i++) {
            int at = base + (int) (off * t.elementSize());
            dst[i] = switch (t.dtype()) {
                case "F32" -> bb.getFloat(at);
                case "F16" -> SafeTensors.halfToFloat(bb.getShort(at));
                case "BF16" -> SafeTensors.bf16ToFloat(bb.getShort(at));
                case "F64" -> (float) bb.getDouble(at);
                default -> throw new NshapException("tensor of " + t.name() + " cannot be read as floats");
            };
            for (int d = rank - 1; d >= 0; d--) {
                if (++idx[d] < size[d]) { off += stride[d]; break; }
                off -= (size[d] - 1) * stride[d];
                idx[d] = 0;
            }
        }
    }

    /** Reads the first bytes of a file, for format sniffing. */
    public static byte[] head(Path file, int n) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate((int) Math.min(n, ch.size()));
            while (b.hasRemaining() && ch.read(b) > 0) { }
            return b.array();
        } catch (IOException e) {
            throw new NshapException(file + ": cannot read: " + e.getMessage());
        }
    }

    static Set<String> floatDtypes() { return new HashSet<>(List.of("F32", "F16", "BF16", "F64")); }
}
