package dev.nshap.model;

import dev.nshap.NshapException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class SafeTensorsTest {
    @TempDir Path tmp;

    /** The raw data bytes of a single-tensor file, located from the file's own header length. */
    private static byte[] dataBytes(Path f) throws Exception {
        byte[] all = Files.readAllBytes(f);
        long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        byte[] d = new byte[(int) (all.length - 8 - n)];
        System.arraycopy(all, (int) (8 + n), d, 0, d.length);
        return d;
    }

    private static int[] shorts(byte[] d) {
        int[] r = new int[d.length / 2];
        for (int i = 0; i < r.length; i++) r[i] = (d[2 * i] & 0xFF) | ((d[2 * i + 1] & 0xFF) << 8);
        return r;
    }

    private Path writeOne(String dtype, float[] v) {
        LinkedHashMap<String, SafeTensors.Tensor> t = new LinkedHashMap<>();
        t.put("x", new SafeTensors.Tensor(dtype, new long[]{v.length}, v));
        Path f = tmp.resolve(dtype + ".safetensors");
        SafeTensors.write(f, t, Map.of("k", "v"));
        return f;
    }

    @Test void f32RoundTripIsExactAndKeepsShapesAndMetadata() {
        float[] a = {1f, -2.5f, Float.MIN_VALUE, Float.MAX_VALUE, 0.1f, -0f};
        float[] b = new float[2 * 3 * 4];
        for (int i = 0; i < b.length; i++) b[i] = (float) Math.sin(i) * 7;
        LinkedHashMap<String, SafeTensors.Tensor> t = new LinkedHashMap<>();
        t.put("a", new SafeTensors.Tensor("F32", new long[]{6}, a));
        t.put("b.weight", new SafeTensors.Tensor("F32", new long[]{2, 3, 4}, b));
        Path f = tmp.resolve("m.safetensors");
        SafeTensors.write(f, t, Map.of("format", "pt"));
        SafeTensors st = SafeTensors.open(f);
        assertEquals(java.util.List.of("a", "b.weight"), st.names());
        assertArrayEquals(new long[]{2, 3, 4}, st.shape("b.weight"));
        assertEquals("F32", st.dtype("a"));
        assertEquals(Map.of("format", "pt"), st.metadata());
        assertArrayEquals(a, st.readFloats("a"));
        assertArrayEquals(b, st.readFloats("b.weight"));
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(st.readFloats("a")[5]));
    }

    @Test void headerIsPaddedTo8BytesAndDataIsLittleEndianF32() throws Exception {
        Path f = writeOne("F32", new float[]{1f, -2f});
        byte[] all = Files.readAllBytes(f);
        long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, n % 8);
        // 1.0f = 0x3F800000, -2.0f = 0xC0000000, little-endian
        assertArrayEquals(new byte[]{0, 0, (byte) 0x80, 0x3F, 0, 0, 0, (byte) 0xC0}, dataBytes(f));
    }

    @Test void f16BitPatternsMatchIeeeBinary16WithRoundToNearestEven() throws Exception {
        float[] v = {
                1f,                       // 0x3C00
                -2.5f,                    // 1.25 * 2^1 -> exp 16, mant 0x100, sign -> 0xC100
                65504f,                   // largest half 0x7BFF
                0x1.0p-24f,               // smallest subnormal 0x0001
                0x1.0p-25f,               // half of it: tie -> even (0) -> 0x0000
                0x1.8p-24f,               // 1.5 units: tie between 1 and 2 -> 2 -> 0x0002
                0x1.0p-14f,               // smallest normal 0x0400
                1f + 0x1.0p-11f,          // tie between 0x3C00 and 0x3C01 -> even 0x3C00
                1f + 3 * 0x1.0p-11f,      // tie between 0x3C01 and 0x3C02 -> even 0x3C02
                1f + 0x1.0p-11f + 0x1.0p-20f, // just above the tie -> 0x3C01
                Float.NEGATIVE_INFINITY,  // 0xFC00
                -0f,                      // 0x8000
                1e-10f,                   // underflows to 0
        };
        int[] want = {0x3C00, 0xC100, 0x7BFF, 0x0001, 0x0000, 0x0002, 0x0400, 0x3C00, 0x3C02, 0x3C01, 0xFC00,
                0x8000, 0x0000};
        Path f = writeOne("F16", v);
        assertArrayEquals(want, shorts(dataBytes(f)));
        // Reading decodes the stored halves exactly.
        float[] back = SafeTensors.open(f).readFloats("x");
        float[] wantBack = {1f, -2.5f, 65504f, 0x1.0p-24f, 0f, 0x1.0p-23f, 0x1.0p-14f, 1f,
                1f + 0x1.0p-9f, 1f + 0x1.0p-10f, Float.NEGATIVE_INFINITY, -0f, 0f};
        assertArrayEquals(wantBack, back);
        // halfway 65504..65536 -> even -> overflows to +inf 0x7C00; the conversion says so, and writing refuses it
        assertEquals((short) 0x7C00, SafeTensors.floatToHalf(65520f));
        NshapException e = assertThrows(NshapException.class, () -> writeOne("F16", new float[]{1f, 2f, 65520f}));
        assertTrue(e.getMessage().contains("tensor 'x' element 2 = 65520.0 overflows F16"), e.getMessage());
        assertEquals(0x7E00 & 0x7C00, SafeTensors.floatToHalf(Float.NaN) & 0x7C00);
        assertTrue(Float.isNaN(SafeTensors.halfToFloat(SafeTensors.floatToHalf(Float.NaN))));
    }

    @Test void bf16BitPatternsAreTheTopHalfRoundedToNearestEven() throws Exception {
        float[] v = {
                1f,                  // 0x3F800000 -> 0x3F80
                -2.5f,               // 0xC0200000 -> 0xC020
                65504f,              // 0x477FE000: low half 0xE000 > 0x8000 -> up -> 0x4780
                1f + 0x1.0p-8f,      // 0x3F808000: exact tie, even -> 0x3F80
                1f + 3 * 0x1.0p-8f,  // 0x3F818000: tie, 0x3F81 odd -> 0x3F82
                Float.MIN_VALUE,     // 0x00000001 -> 0x0000 (below half of a bf16 subnormal ulp)
                0x1.0p-133f,         // 0x00010000 (float subnormal on the bf16 grid) -> 0x0001
        };
        int[] want = {0x3F80, 0xC020, 0x4780, 0x3F80, 0x3F82, 0x0000, 0x0001};
        Path f = writeOne("BF16", v);
        assertArrayEquals(want, shorts(dataBytes(f)));
        float[] back = SafeTensors.open(f).readFloats("x");
        assertArrayEquals(new float[]{1f, -2.5f, 65536f, 1f, 1f + 0x1.0p-6f, 0f, 0x1.0p-133f}, back);
        assertEquals((short) 0x7F80, SafeTensors.floatToBf16(Float.MAX_VALUE));   // 0x7F7FFFFF rounds up to +inf
        assertThrows(NshapException.class, () -> writeOne("BF16", new float[]{Float.MAX_VALUE}));
        // an infinity already in the source is not an overflow of the conversion (load refuses it, by name)
        assertArrayEquals(new int[]{0x7F80}, shorts(dataBytes(writeOne("BF16", new float[]{Float.POSITIVE_INFINITY}))));
        assertTrue(Float.isNaN(SafeTensors.bf16ToFloat(SafeTensors.floatToBf16(Float.NaN))));
    }

    @Test void f64IsReadAsFloat() throws Exception {
        ByteBuffer d = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putDouble(0.5).putDouble(-3.25);
        Path f = raw("{\"x\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", d.array());
        assertArrayEquals(new float[]{0.5f, -3.25f}, SafeTensors.open(f).readFloats("x"));
    }

    // ------------------------------------------------------------------ malformed files, crafted byte by byte

    static byte[] file(String header, byte[] data) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).array());
        o.writeBytes(h);
        o.writeBytes(data);
        return o.toByteArray();
    }

    private Path raw(String header, byte[] data) throws Exception {
        Path f = tmp.resolve("bad.safetensors");
        Files.write(f, file(header, data));
        return f;
    }

    private String refused(byte[] bytes) throws Exception {
        Path f = tmp.resolve("bad.safetensors");
        Files.write(f, bytes);
        NshapException e = assertThrows(NshapException.class, () -> SafeTensors.open(f));
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
        return e.getMessage();
    }

    private static final String T1 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

    @Test void acceptsTheWellFormedBaseCase() throws Exception {
        assertArrayEquals(new float[]{0f, 0f}, SafeTensors.open(raw(T1, new byte[8])).readFloats("a"));
    }

    @Test void refusesAFileShorterThanTheLengthPrefix() throws Exception {
        assertTrue(refused(new byte[5]).contains("truncated"));
    }

    @Test void refusesAHeaderLengthBeyondTheFile() throws Exception {
        byte[] b = file(T1, new byte[8]);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 10_000);
        assertTrue(refused(b).contains("runs past the end of the file"));
    }

    @Test void refusesAnAbsurdHeaderLength() throws Exception {
        byte[] b = file(T1, new byte[8]);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, -1L);
        assertTrue(refused(b).contains("not plausible"));
    }

    @Test void refusesTruncatedData() throws Exception {
        String m = refused(file(T1, new byte[5]));
        assertTrue(m.contains("truncated: the header describes 8 bytes of tensor data but the file has 5"), m);
    }

    @Test void refusesTrailingBytes() throws Exception {
        assertTrue(refused(file(T1, new byte[12])).contains("4 bytes after the last tensor"));
    }

    @Test void refusesAHeaderLengthThatCutsTheJson() throws Exception {
        byte[] b = file(T1, new byte[8]);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, T1.length() - 3);
        assertTrue(refused(b).contains("not valid JSON"));
    }

    @Test void refusesAHeaderLengthThatSwallowsData() throws Exception {
        byte[] b = file(T1, new byte[]{1, 2, 3, 4, 5, 6, 7, 8});
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, T1.length() + 4);
        String m = refused(b);
        assertTrue(m.contains("not valid JSON"), m);
    }

    @Test void refusesAHeaderThatIsNotAnObject() throws Exception {
        assertTrue(refused(file("[1,2]", new byte[0])).contains("not a JSON object"));
    }

    @Test void refusesReversedOffsets() throws Exception {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}";
        assertTrue(refused(file(h, new byte[8])).contains("reversed data_offsets"));
    }

    @Test void refusesOffsetsOutOfRange() throws Exception {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[100,108]}}";
        String m = refused(file(h, new byte[8]));
        assertTrue(m.contains("data_offsets [100, 108] out of range: the data section has 8 bytes"), m);
    }

    @Test void refusesByteSizeThatDisagreesWithShape() throws Exception {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}";
        String m = refused(file(h, new byte[8]));
        assertTrue(m.contains("span 8 bytes") && m.contains("needs 12"), m);
    }

    @Test void refusesOverlappingTensors() throws Exception {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
        String m = refused(file(h, new byte[12]));
        assertTrue(m.contains("'a' and 'b' overlap"), m);
    }

    @Test void refusesAHoleBetweenTensors() throws Exception {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
        assertTrue(refused(file(h, new byte[12])).contains("unaccounted bytes before tensor 'b'"));
    }

    @Test void refusesUnknownDtype() throws Exception {
        String h = "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        assertTrue(refused(file(h, new byte[8])).contains("unknown dtype 'Q4'"));
    }

    @Test void refusesDuplicateNames() throws Exception {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
        assertTrue(refused(file(h, new byte[8])).contains("Duplicate field 'a'"));
    }

    @Test void refusesNegativeOrFractionalShape() throws Exception {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}";
        assertTrue(refused(file(h, new byte[8])).contains("bad shape"));
        String h2 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}";
        assertTrue(refused(file(h2, new byte[8])).contains("bad shape"));
    }

    @Test void refusesMissingFields() throws Exception {
        assertTrue(refused(file("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[8])).contains("has no dtype"));
        assertTrue(refused(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", new byte[8])).contains("data_offsets"));
        assertTrue(refused(file("{\"__metadata__\":{\"a\":1}}", new byte[0])).contains("not a string"));
    }

    @Test void refusesAMissingFile() {
        NshapException e = assertThrows(NshapException.class, () -> SafeTensors.open(tmp.resolve("nope.safetensors")));
        assertTrue(e.getMessage().contains("no such file"));
    }

    @Test void unknownTensorNameIsRefusedOnRead() throws Exception {
        SafeTensors st = SafeTensors.open(raw(T1, new byte[8]));
        assertThrows(NshapException.class, () -> st.readFloats("zz"));
    }
}
