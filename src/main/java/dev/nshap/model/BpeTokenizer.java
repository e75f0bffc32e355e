package dev.nshap.model;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * GPT-2 byte-level BPE from a checkpoint's own {@code vocab.json} + {@code merges.txt}: text is split by GPT-2's
 * pre-tokenisation regex, each piece's UTF-8 bytes are mapped to printable characters (bytes_to_unicode), then
 * merged pairwise by merge rank (lowest first) until no ranked pair is left.
 */
public final class BpeTokenizer implements Tokenizer {
    public static final String EOT_TEXT = "<|endoftext|>";

    /** GPT-2's split: contractions, letter runs, digit runs, other runs, each with an optional leading space. */
    static final Pattern PRETOKENIZE = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
            Pattern.UNICODE_CHARACTER_CLASS);

    static final char[] BYTE_TO_CHAR = new char[256];
    static final int[] CHAR_TO_BYTE = new int[512];

    static {
        java.util.Arrays.fill(CHAR_TO_BYTE, -1);
        int n = 0;
        for (int b = 0; b < 256; b++) {
            // Printable Latin-1 bytes stand for themselves; the rest are shifted up past 255 in byte order.
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + n++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    /** 16M ids: 300 times GPT-2's vocabulary, and a decoder table that still fits any heap. */
    static final int MAX_ID = 1 << 24;

    private final String name;
    private final Map<String, Integer> encoder;
    private final String[] decoder;
    private final Map<String, Integer> ranks; // "a b" -> rank
    private final int eot;
    private final Map<String, int[]> cache = new ConcurrentHashMap<>();

    public BpeTokenizer(String name, Map<String, Integer> vocab, List<String[]> merges) {
        this.name = name;
        this.encoder = new HashMap<>(vocab);
        int max = -1;
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            // Ids index the decoder and, later, the model's embedding rows: an id far past the vocabulary's size
            // (2^31-1) would overflow the decoder's length. Real vocabularies number their tokens 0..N-1.
            if (e.getValue() >= MAX_ID)
                throw new NshapException(name + ": id " + e.getValue() + " of token '" + e.getKey() + "' is beyond any GPT-2"
                        + " vocabulary (ids must be below " + MAX_ID + ")");
            max = Math.max(max, e.getValue());
        }
        decoder = new String[max + 1];
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            int id = e.getValue();
            if (id < 0) throw new NshapException(name + ": negative id " + id + " for token '" + e.getKey() + "'");
            if (decoder[id] != null)
                throw new NshapException(name + ": id " + id + " given to both '" + decoder[id] + "' and '" + e.getKey() + "'");
            decoder[id] = e.getKey();
        }
        ranks = new HashMap<>();
        for (int i = 0; i < merges.size(); i++) ranks.putIfAbsent(merges.get(i)[0] + " " + merges.get(i)[1], i);
        Integer e = vocab.get(EOT_TEXT);
        eot = e == null ? -1 : e;
    }

    /** Loads {@code dir/vocab.json} and {@code dir/merges.txt}. */
    public static BpeTokenizer load(Path dir) {
        Path vf = dir.resolve("vocab.json"), mf = dir.resolve("merges.txt");
        JsonNode v = Json.readTree(vf);
        if (v == null || !v.isObject()) throw new NshapException(vf + ": not a JSON object of token -> id");
        Map<String, Integer> vocab = new HashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> f = it.next();
            if (!f.getValue().canConvertToInt() || !f.getValue().isIntegralNumber())
                throw new NshapException(vf + ": id of token '" + f.getKey() + "' is not an integer");
            vocab.put(f.getKey(), f.getValue().asInt());
        }
        List<String> lines;
        try {
            lines = Files.readAllLines(mf, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new NshapException(mf + ": no such file");
        } catch (IOException e) {
            throw new NshapException(mf + ": cannot read: " + e.getMessage());
        }
        List<String[]> merges = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (line.isEmpty() || (i == 0 && line.startsWith("#version"))) continue;
            String[] p = line.split(" ", -1);
            if (p.length != 2 || p[0].isEmpty() || p[1].isEmpty())
                throw new NshapException(mf + ": line " + (i + 1) + ": expected two symbols separated by one space");
            merges.add(p);
        }
        return new BpeTokenizer("bpe:" + dir.getFileName(), vocab, merges);
    }

    @Override public int[] encode(String text) {
        List<Integer> out = new ArrayList<>();
        int from = 0;
        while (from <= text.length()) {
            int at = eot >= 0 ? text.indexOf(EOT_TEXT, from) : -1;
            String part = text.substring(from, at < 0 ? text.length() : at);
            encodeOrdinary(part, out);
            if (at < 0) break;
            out.add(eot);
            from = at + EOT_TEXT.length();
        }
        int[] r = new int[out.size()];
        for (int i = 0; i < r.length; i++) r[i] = out.get(i);
        return r;
    }

    private void encodeOrdinary(String text, List<Integer> out) {
        Matcher m = PRETOKENIZE.matcher(text);
        while (m.find()) {
            int[] ids = cache.computeIfAbsent(m.group(), this::encodePiece);
            for (int id : ids) out.add(id);
        }
    }

    private int[] encodePiece(String piece) {
        byte[] bytes = piece.getBytes(StandardCharsets.UTF_8);
        List<String> word = new ArrayList<>(bytes.length);
        for (byte b : bytes) word.add(String.valueOf(BYTE_TO_CHAR[b & 0xFF]));
        while (word.size() > 1) {
            int best = Integer.MAX_VALUE;
            String bestA = null, bestB = null;
            for (int i = 0; i + 1 < word.size(); i++) {
                Integer r = ranks.get(word.get(i) + " " + word.get(i + 1));
                if (r != null && r < best) {
                    best = r;
                    bestA = word.get(i);
                    bestB = word.get(i + 1);
                }
            }
            if (bestA == null) break;
            // Merge every left-to-right, non-overlapping occurrence of the best pair, as GPT-2's bpe() does.
            List<String> next = new ArrayList<>(word.size());
            for (int i = 0; i < word.size(); ) {
                if (i + 1 < word.size() && word.get(i).equals(bestA) && word.get(i + 1).equals(bestB)) {
                    next.add(bestA + bestB);
                    i += 2;
                } else {
                    next.add(word.get(i++));
                }
            }
            word = next;
        }
        int[] ids = new int[word.size()];
        for (int i = 0; i < ids.length; i++) {
            Integer id = encoder.get(word.get(i));
            if (id == null) throw new NshapException(name + ": symbol '" + word.get(i) + "' is not in vocab.json");
            ids[i] = id;
        }
        return ids;
    }

    @Override public String decode(int[] tokens) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        for (int t : tokens) {
            String s = t >= 0 && t < decoder.length ? decoder[t] : null;
            if (s == null) throw new NshapException(name + ": unknown token id " + t);
            if (t == eot) {
                bytes.writeBytes(EOT_TEXT.getBytes(StandardCharsets.UTF_8));
                continue;
            }
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                int b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
                if (b < 0) { // not a byte-level symbol (an added token): keep its text
                    bytes.writeBytes(String.valueOf(c).getBytes(StandardCharsets.UTF_8));
                } else {
                    bytes.write(b);
                }
            }
        }
        return new String(bytes.toByteArray(), StandardCharsets.UTF_8);
    }

    @Override public String decode(int token) { return decode(new int[]{token}); }
    @Override public int vocabSize() { return decoder.length; }
    @Override public int eotToken() { return eot; }
    @Override public String name() { return name; }
}
