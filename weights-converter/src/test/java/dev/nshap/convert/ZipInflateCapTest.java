package dev.nshap.convert;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A torch.save zip whose 4-float tensor views a storage that inflates to 64 MB (a zip bomb: zeros deflate a
 * thousandfold): reading the tensor inflates only the 16 bytes it views, not the storage's declared size.
 */
class ZipInflateCapTest {
    @TempDir Path tmp;

    @Test void aSmallViewOfAHugeCompressedStorageInflatesOnlyWhatItReads() throws Exception {
        int numel = 16 << 20;                                       // 64 MB of F32
        byte[] storage = new byte[numel * 4];
        ByteBuffer.wrap(storage).order(ByteOrder.LITTLE_ENDIAN).putFloat(1f).putFloat(2f).putFloat(3f).putFloat(4f);
        byte[] pickle = Fixtures.statePickle(List.of(new Fixtures.TEntry("x", "FloatStorage", "0", numel, 0, new long[]{4}, new long[]{1})), false);
        Path zip = tmp.resolve("bomb.bin");
        try (OutputStream os = Files.newOutputStream(zip); ZipOutputStream z = new ZipOutputStream(os)) {
            for (String[] e : new String[][]{{"archive/data.pkl", null}, {"archive/byteorder", "little"}, {"archive/data/0", null}}) {
                z.putNextEntry(new ZipEntry(e[0]));                  // DEFLATED
                z.write(e[0].endsWith("pkl") ? pickle : e[1] != null ? e[1].getBytes(StandardCharsets.US_ASCII) : storage);
                z.closeEntry();
            }
        }
        assertTrue(Files.size(zip) < storage.length / 100, "the archive is a bomb: " + Files.size(zip) + " bytes");
        storage = null;
        List<SourceTensor> ts = TorchReader.readZip(zip);
        assertEquals(1, ts.size());
        float[] dst = new float[4];
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long before = mx.getThreadAllocatedBytes(Thread.currentThread().getId());
        ts.get(0).reader().read(dst);
        long allocated = mx.getThreadAllocatedBytes(Thread.currentThread().getId()) - before;
        assertArrayEquals(new float[]{1f, 2f, 3f, 4f}, dst);
        // reading the whole storage would allocate its 64 MB; the view needs 16 bytes plus the inflater's buffers
        assertTrue(allocated < 4 << 20, "allocated " + allocated + " bytes to read a 16-byte view");
    }
}
