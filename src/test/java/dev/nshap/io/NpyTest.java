package dev.nshap.io;

import dev.nshap.NshapException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class NpyTest {
    @TempDir Path tmp;

    @Test void writesTheNumpyV1LayoutByteForByte() throws Exception {
        Path f = tmp.resolve("a.npy");
        Npy.write(f, new float[]{1f, -2f, 0.5f, 3f, 0f, -0.25f}, 2, 3);
        byte[] b = Files.readAllBytes(f);
        assertEquals((byte) 0x93, b[0]);
        assertEquals("NUMPY", new String(b, 1, 5, StandardCharsets.US_ASCII));
        assertEquals(1, b[6]);
        assertEquals(0, b[7]);
        int hlen = (b[8] & 0xFF) | ((b[9] & 0xFF) << 8);
        assertEquals(0, (10 + hlen) % 64, "data aligned to 64 bytes");
        String h = new String(b, 10, hlen, StandardCharsets.US_ASCII);
        assertTrue(h.startsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"), h);
        assertTrue(h.endsWith("\n"));
        assertEquals(10 + hlen + 24, b.length);
        ByteBuffer d = ByteBuffer.wrap(b, 10 + hlen, 24).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(1f, d.getFloat());
        assertEquals(-2f, d.getFloat());
        // -2.0f = 0xC0000000 little-endian: last byte 0xC0
        assertEquals((byte) 0xC0, b[10 + hlen + 7]);
    }

    @Test void oneDimensionalShapeHasATrailingCommaAndRoundTrips() throws Exception {
        Path f = tmp.resolve("v.npy");
        float[] v = new float[70_000];
        for (int i = 0; i < v.length; i++) v[i] = i * 0.5f - 7;
        Npy.write(f, v, v.length);
        String h = new String(Files.readAllBytes(f), 10, 60, StandardCharsets.US_ASCII);
        assertTrue(h.contains("'shape': (70000,)"), h);
        Npy.Array a = Npy.read(f);
        assertArrayEquals(new int[]{70_000}, a.shape());
        assertArrayEquals(v, a.data());
        Npy.write(f, new float[]{4f});
        assertArrayEquals(new int[0], Npy.read(f).shape());
    }

    @Test void readerRefusesOtherDtypesAndTruncation() throws Exception {
        Path f = tmp.resolve("x.npy");
        Npy.write(f, new float[]{1, 2, 3, 4}, 4);
        byte[] b = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(b, b.length - 1));
        assertTrue(assertThrows(NshapException.class, () -> Npy.read(f)).getMessage().contains("needs 16 bytes"));
        String s = new String(b, StandardCharsets.ISO_8859_1).replace("<f4", "<f8");
        Files.write(f, s.getBytes(StandardCharsets.ISO_8859_1));
        assertTrue(assertThrows(NshapException.class, () -> Npy.read(f)).getMessage().contains("expected <f4"));
        Files.writeString(f, "hello");
        assertTrue(assertThrows(NshapException.class, () -> Npy.read(f)).getMessage().contains("bad magic"));
        assertThrows(IllegalArgumentException.class, () -> Npy.write(f, new float[3], 2, 2));
    }
}
