package dev.nshap.io;

import dev.nshap.NshapException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** NumPy {@code .npy} files of float32 ('&lt;f4', C order), so researchers can {@code np.load} our arrays. */
public final class Npy {
    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};

    private Npy() {}

    public record Array(int[] shape, float[] data) {}

    /** Writes {@code data} with the given shape (C order) atomically, as format version 1.0. */
    public static void write(Path file, float[] data, int... shape) {
        long n = count(shape);
        if (n != data.length)
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " does not hold " + data.length + " values");
        byte[] header = header(shape);
        AtomicFiles.write(file, out -> {
            out.write(header);
            ByteBuffer bb = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < data.length; ) {
                bb.clear();
                int k = Math.min(bb.capacity() / 4, data.length - i);
                bb.asFloatBuffer().put(data, i, k);
                out.write(bb.array(), 0, 4 * k);
                i += k;
            }
        });
    }

    private static long count(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            n *= d;
        }
        return n;
    }

    /** Magic, version 1.0, header length and the dict, padded so the data starts on a 64-byte boundary. */
    private static byte[] header(int[] shape) {
        StringBuilder sh = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) sh.append(i > 0 ? ", " : "").append(shape[i]);
        if (shape.length == 1) sh.append(',');
        sh.append(')');
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + sh + ", }";
        // numpy pads with spaces and ends with '\n' so that the data starts on a 64-byte boundary.
        int unpadded = MAGIC.length + 2 + 2 + dict.length() + 1;
        int total = (unpadded + 63) / 64 * 64;
        String h = dict + " ".repeat(total - unpadded) + "\n";
        if (h.length() > 0xFFFF) throw new IllegalArgumentException("npy header too long");
        ByteBuffer b = ByteBuffer.allocate(total);
        b.put(MAGIC).put((byte) 1).put((byte) 0).put((byte) (h.length() & 0xFF)).put((byte) (h.length() >>> 8));
        b.put(h.getBytes(StandardCharsets.US_ASCII));
        return b.array();
    }

    /**
     * A .npy file written row block by row block, for arrays too big to hold: the shape is fixed up front, the data
     * goes to a temp file beside the target, and {@link #commit} checks the count and renames it into place (a reader
     * never sees half a file; {@link #close} without commit deletes the temp file).
     */
    public static final class Stream implements AutoCloseable {
        private final Path target, tmp;
        private final FileChannel ch;
        private final long expected;
        private long written;
        private final ByteBuffer bb = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);

        public Stream(Path file, int... shape) {
            target = file.toAbsolutePath();
            expected = count(shape);
            try {
                java.nio.file.Files.createDirectories(target.getParent());
                tmp = java.nio.file.Files.createTempFile(target.getParent(), "." + target.getFileName(), ".tmp");
                ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
                ch.write(ByteBuffer.wrap(header(shape)));
            } catch (IOException e) {
                throw new java.io.UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
            }
        }

        public void append(float[] data, int off, int len) {
            if (written + len > expected) throw new IllegalStateException(target + ": more values than its shape holds");
            try {
                for (int i = 0; i < len; ) {
                    bb.clear();
                    int k = Math.min(bb.capacity() / 4, len - i);
                    bb.asFloatBuffer().put(data, off + i, k);
                    bb.limit(4 * k);
                    while (bb.hasRemaining()) ch.write(bb);
                    i += k;
                }
            } catch (IOException e) {
                throw new java.io.UncheckedIOException("cannot write " + target + ": " + e.getMessage(), e);
            }
            written += len;
        }

        public void commit() {
            if (written != expected) throw new IllegalStateException(target + ": " + written + " of " + expected + " values written");
            try {
                ch.close();
                try {
                    java.nio.file.Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
                } catch (UnsupportedOperationException ignored) { }
                java.nio.file.Files.move(tmp, target, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                        java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException("cannot write " + target + ": " + e.getMessage(), e);
            }
        }

        @Override public void close() {
            try {
                if (ch.isOpen()) ch.close();
                java.nio.file.Files.deleteIfExists(tmp);
            } catch (IOException ignored) { }
        }
    }

    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

    /** Reads a float32 C-order .npy (versions 1.0-3.0); anything else is refused. */
    public static Array read(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            ByteBuffer pre = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
            while (pre.hasRemaining() && ch.read(pre) > 0) { }
            if (pre.position() < 10 || !Arrays.equals(Arrays.copyOf(pre.array(), 6), MAGIC))
                throw new NshapException(file + ": not a .npy file (bad magic)");
            int major = pre.get(6);
            long hlen;
            int prefix;
            if (major == 1) { hlen = pre.getShort(8) & 0xFFFF; prefix = 10; }
            else if (major == 2 || major == 3) { hlen = pre.getInt(8) & 0xFFFFFFFFL; prefix = 12; }
            else throw new NshapException(file + ": unsupported .npy version " + major);
            if (prefix + hlen > size) throw new NshapException(file + ": truncated .npy header");
            ByteBuffer hb = ByteBuffer.allocate((int) hlen);
            ch.position(prefix);
            while (hb.hasRemaining() && ch.read(hb) > 0) { }
            String h = new String(hb.array(), major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
            Matcher d = DESCR.matcher(h), f = FORTRAN.matcher(h), s = SHAPE.matcher(h);
            if (!d.find() || !f.find() || !s.find()) throw new NshapException(file + ": malformed .npy header: " + h.strip());
            if (!d.group(1).equals("<f4")) throw new NshapException(file + ": dtype " + d.group(1) + ", expected <f4");
            if (f.group(1).equals("True")) throw new NshapException(file + ": Fortran order is not supported");
            String[] parts = s.group(1).split(",");
            int[] shape = Arrays.stream(parts).map(String::strip).filter(x -> !x.isEmpty()).mapToInt(x -> {
                try { return Integer.parseInt(x); } catch (NumberFormatException e) {
                    throw new NshapException(file + ": bad shape (" + s.group(1) + ")");
                }
            }).toArray();
            long n = 1;
            for (int x : shape) n *= x;
            long dataBytes = size - prefix - hlen;
            if (dataBytes != 4 * n)
                throw new NshapException(file + ": shape " + Arrays.toString(shape) + " needs " + 4 * n + " bytes of data, file has " + dataBytes);
            if (n > Integer.MAX_VALUE - 8) throw new NshapException(file + ": array too large");
            float[] data = new float[(int) n];
            ByteBuffer bb = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
            int i = 0;
            while (i < n) {
                bb.clear();
                bb.limit((int) Math.min(bb.capacity(), 4 * (n - i)));
                while (bb.hasRemaining()) if (ch.read(bb) < 0) throw new NshapException(file + ": truncated data");
                bb.flip();
                int k = bb.remaining() / 4;
                bb.asFloatBuffer().get(data, i, k);
                i += k;
            }
            return new Array(shape, data);
        } catch (NoSuchFileException e) {
            throw new NshapException(file + ": no such file");
        } catch (IOException e) {
            throw new NshapException(file + ": cannot read: " + e.getMessage());
        }
    }
}
