package dev.nshap.model;

import dev.nshap.NshapException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class TokenizerTest {
    @TempDir Path tmp;

    // ------------------------------------------------------------------ r50k_base via jtokkit

    @Test void gpt2KnownIds() {
        Tokenizer t = JTokkitTokenizer.GPT2;
        assertArrayEquals(new int[]{15496, 995}, t.encode("Hello world"));
        assertArrayEquals(new int[]{262}, t.encode(" the"));
        // The first 94 GPT-2 tokens are the printable ASCII bytes '!'..'~' in order; 220 is a lone space, 198 "\n".
        assertArrayEquals(new int[]{0}, t.encode("!"));
        assertArrayEquals(new int[]{'~' - '!'}, t.encode("~"));
        assertArrayEquals(new int[]{220}, t.encode(" "));
        assertArrayEquals(new int[]{198}, t.encode("\n"));
        assertArrayEquals(new int[]{50256}, t.encode("<|endoftext|>"));
        assertEquals(50256, t.eotToken());
        assertEquals(50257, t.vocabSize());
        assertEquals(" world", t.decode(995));
        assertEquals("<|endoftext|>", t.decode(50256));
        String s = "Café naïve — 日本語 🙂 tabs\tand\n newlines<|endoftext|>next";
        assertEquals(s, t.decode(t.encode(s)));
        assertThrows(NshapException.class, () -> t.decode(new int[]{50257}));
    }

    // ------------------------------------------------------------------ BpeTokenizer, hand-built vocabularies

    private static String json(Map<String, Integer> vocab) {
        StringBuilder sb = new StringBuilder("{");
        vocab.forEach((k, v) -> {
            if (sb.length() > 1) sb.append(',');
            sb.append('"').append(k.replace("\\", "\\\\").replace("\"", "\\\"")).append("\":").append(v);
        });
        return sb.append('}').toString();
    }

    private Path dir(String name, Map<String, Integer> vocab, String merges) throws Exception {
        Path d = Files.createDirectories(tmp.resolve(name));
        Files.writeString(d.resolve("vocab.json"), json(vocab), StandardCharsets.UTF_8);
        Files.writeString(d.resolve("merges.txt"), merges, StandardCharsets.UTF_8);
        return d;
    }

    /** A small vocabulary in GPT-2's byte-level alphabet: "Ġ" is the space byte, "Ã©" the UTF-8 bytes of "é". */
    private Path handVocab() throws Exception {
        Map<String, Integer> v = new LinkedHashMap<>();
        String[] toks = {"h", "e", "l", "o", "Ġ", "w", "r", "d", "he", "ll", "hell", "'", "s", "'s", "Ġw", "or", "Ġwor",
                "el", "4", "2", "Ã", "©", "Ã©", "<|endoftext|>", "c", "f", "Ċ"};
        for (int i = 0; i < toks.length; i++) v.put(toks[i], i);
        String merges = "#version: 0.2\nh e\nl l\nhe ll\nĠ w\no r\nĠw or\ne l\n' s\nÃ ©\n";
        return dir("hand", v, merges);
    }

    @Test void bpeMergesByRankOnHandComputedCases() throws Exception {
        Tokenizer t = BpeTokenizer.load(handVocab());
        // "hello": h e l l o -(h e)-> he l l o -(l l)-> he ll o -(he ll)-> hell o
        assertArrayEquals(new int[]{10, 3}, t.encode("hello"));
        // " world" is one piece: Ġ w o r l d -(Ġ w)-> Ġw o r l d -(o r)-> Ġw or l d -(Ġw or)-> Ġwor l d
        assertArrayEquals(new int[]{10, 3, 16, 2, 7}, t.encode("hello world"));
        // "ello": "l l" (rank 1) beats "e l" (rank 6), after which "e ll" is no merge
        assertArrayEquals(new int[]{1, 9, 3}, t.encode("ello"));
        // merges are non-overlapping, left to right
        assertArrayEquals(new int[]{9, 2}, t.encode("lll"));
        // contractions split off: "he" + "'s"
        assertArrayEquals(new int[]{8, 13}, t.encode("he's"));
        // two spaces: the first stands alone (\s+(?!\S)), the second joins "world"
        assertArrayEquals(new int[]{10, 3, 4, 16, 2, 7}, t.encode("hello  world"));
        // digits form their own piece with the leading space: Ġ 4 2
        assertArrayEquals(new int[]{4, 18, 19}, t.encode(" 42"));
        // one letter piece; é = C3 A9 -> "Ã©" in the byte alphabet: c o r f Ã © -(o r)-> c or f Ã © -(Ã ©)-> c or f Ã©
        assertArrayEquals(new int[]{24, 15, 25, 22}, t.encode("corfé"));
        // newline byte 0x0A -> U+010A "Ċ"
        assertArrayEquals(new int[]{10, 3, 26}, t.encode("hello\n"));
        // <|endoftext|> is a special token, never split
        assertArrayEquals(new int[]{10, 3, 23, 8}, t.encode("hello<|endoftext|>he"));
        assertEquals(23, t.eotToken());
        assertEquals(27, t.vocabSize());
        assertEquals("hello world<|endoftext|>corfé\n", t.decode(new int[]{10, 3, 16, 2, 7, 23, 24, 15, 25, 22, 26}));
        assertEquals(" wor", t.decode(16));
    }

    @Test void bpeRefusesTextOutsideItsVocabularyAndBadFiles() throws Exception {
        Tokenizer t = BpeTokenizer.load(handVocab());
        NshapException e = assertThrows(NshapException.class, () -> t.encode("xyz"));
        assertTrue(e.getMessage().contains("'x' is not in vocab.json"), e.getMessage());
        assertThrows(NshapException.class, () -> t.decode(new int[]{99}));
        Path bad = dir("bad", Map.of("a", 0, "b", 1), "#version: 0.2\na b\nab\n");
        e = assertThrows(NshapException.class, () -> BpeTokenizer.load(bad));
        assertTrue(e.getMessage().contains("merges.txt: line 3"), e.getMessage());
        Path dupId = dir("dup", Map.of("a", 0, "b", 0), "");
        assertThrows(NshapException.class, () -> BpeTokenizer.load(dupId));
        Path badJson = dir("badjson", Map.of(), "");
        Files.writeString(badJson.resolve("vocab.json"), "{\"a\": \"x\"}");
        e = assertThrows(NshapException.class, () -> BpeTokenizer.load(badJson));
        assertTrue(e.getMessage().contains("not an integer"), e.getMessage());
    }

    /** GPT-2's bytes_to_unicode, written out from its definition. */
    private static char[] bytesToUnicode() {
        char[] m = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            m[b] = keep ? (char) b : (char) (256 + n++);
        }
        return m;
    }

    @Test void byteAlphabetIdsAreTheUtf8BytesAndUnicodeRoundTrips() throws Exception {
        char[] m = bytesToUnicode();
        assertEquals('Ġ', m[' ']);
        assertEquals('Ċ', m['\n']);
        assertEquals('Ń', m[0xAD]);
        Map<String, Integer> v = new LinkedHashMap<>();
        for (int b = 0; b < 256; b++) v.put(String.valueOf(m[b]), b);
        Path d = dir("bytes", v, "#version: 0.2\n");
        Tokenizer t = BpeTokenizer.load(d);
        String s = "Ünïcödé text — 日本語, emoji 🙂🚀, tabs\tand\r\nnewlines,   spaces; 'quotes' it's 1234.5 ­soft";
        byte[] utf8 = s.getBytes(StandardCharsets.UTF_8);
        int[] ids = t.encode(s);
        assertEquals(utf8.length, ids.length);
        for (int i = 0; i < ids.length; i++) assertEquals(utf8[i] & 0xFF, ids[i], "byte " + i);
        assertEquals(s, t.decode(ids));
        assertEquals(-1, t.eotToken());
        // With merges the ids change but the round trip does not.
        v.put("ĠÃ", 256);
        v.put("t" + "e", 257);
        Path d2 = dir("bytes2", v, "#version: 0.2\nt e\nĠ Ã\n");
        Tokenizer t2 = BpeTokenizer.load(d2);
        String s2 = "test Ünï téte 日本語 🙂";
        assertTrue(t2.encode(s2).length < s2.getBytes(StandardCharsets.UTF_8).length);
        assertEquals(s2, t2.decode(t2.encode(s2)));
    }

    @Test void checkpointUsesItsOwnVocabWhenPresent() throws Exception {
        Path d = handVocab();
        assertEquals("r50k_base", Checkpoint.tokenizerFor(tmp).name());
        assertArrayEquals(new int[]{10, 3}, Checkpoint.tokenizerFor(d).encode("hello"));
    }
}
