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
        long n = 1;
        for (int d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            n *= d;
        }
        if (n != data.length)
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " does not hold " + data.length + " values");
        StringBuilder sh = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) sh.append(i > 0 ? ", " : "").append(shape[i]);
        if (shape.length == 1) sh.append(',');
        sh.append(')');
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + sh + ", }";
        // numpy pads with spaces and ends with '\n' so that the data starts on a 64-byte boundary.
        int unpadded = MAGIC.length + 2 + 2 + dict.length() + 1;
        int total = (unpadded + 63) / 64 * 64;
        String header = dict + " ".repeat(total - unpadded) + "\n";
        if (header.length() > 0xFFFF) throw new IllegalArgumentException("npy header too long");
        AtomicFiles.write(file, out -> {
            out.write(MAGIC);
            out.write(1);
            out.write(0);
            out.write(header.length() & 0xFF);
            out.write(header.length() >>> 8);
            out.write(header.getBytes(StandardCharsets.US_ASCII));
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
