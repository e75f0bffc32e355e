package dev.nshap.eval.corpus;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.io.AtomicFiles;
import dev.nshap.io.Json;
import dev.nshap.model.Tokenizer;
import dev.nshap.util.Progress;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.IntStream;

/**
 * Training token files for a GPU machine that has PyTorch but no tokenizer and no network: GPT-2 ids as uint16
 * little-endian, each document preceded by {@code <|endoftext|>}, split into train and validation by a stable hash of
 * each document's text (so the split does not depend on file order, and duplicates always land on the same side).
 */
public final class TokenCorpus {

    /** One source's documents, already cleaned; {@code valFraction} of them (by hash) are held out. */
    public record SourceDocs(String name, String what, String licence, double valFraction, List<String> documents) {}

    public record SourceStats(String name, String what, String licence, double valFraction, int documentsRead,
                              int duplicatesDropped, int trainDocuments, int valDocuments, long trainTokens,
                              long valTokens, long characters) {}

    /** Token ids of both splits (uint16 range) and per-source figures. */
    public record Result(char[] train, char[] val, List<SourceStats> sources, long seed, int eot) {
        public int trainDocuments() { return sources.stream().mapToInt(SourceStats::trainDocuments).sum(); }
        public int valDocuments() { return sources.stream().mapToInt(SourceStats::valDocuments).sum(); }
    }

    public static final String SPLIT_RULE = "a document is validation when the first 8 bytes of SHA-256(seed as 8 bytes"
            + " big-endian || UTF-8 text), read as an unsigned big-endian integer, divided by 2^64 fall below the"
            + " source's validation fraction; exact duplicate documents are dropped (first occurrence kept, sources in"
            + " order); within each split documents are ordered by SHA-256(seed+1 || text), a deterministic shuffle";

    private TokenCorpus() {}

    /** The document's position in [0, 1) under {@code seed}: validation when below the fraction. */
    public static double unitHash(long seed, String text) {
        byte[] h = sha256(seed, text);
        long v = ByteBuffer.wrap(h, 0, 8).getLong();
        return (v >>> 11) * 0x1.0p-53;
    }

    public static boolean isValidation(long seed, String text, double valFraction) {
        return unitHash(seed, text) < valFraction;
    }

    private static byte[] sha256(long seed, String text) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(ByteBuffer.allocate(8).putLong(seed).array());
            md.update(text.getBytes(StandardCharsets.UTF_8));
            return md.digest();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private record Doc(int source, String text, byte[] order) {}

    public static Result build(List<SourceDocs> sources, Tokenizer tok, long seed) {
        int eot = tok.eotToken();
        if (eot < 0) throw new NshapException("the tokenizer " + tok.name() + " has no <|endoftext|> token");
        if (tok.vocabSize() > 65536) throw new NshapException("vocabulary of " + tok.vocabSize() + " does not fit uint16");
        Set<String> seen = new HashSet<>();
        List<Doc> train = new ArrayList<>(), val = new ArrayList<>();
        int[] dups = new int[sources.size()];
        for (int s = 0; s < sources.size(); s++) {
            SourceDocs sd = sources.get(s);
            if (sd.valFraction() < 0 || sd.valFraction() >= 1)
                throw new NshapException("validation fraction of " + sd.name() + " must be in [0, 1), got " + sd.valFraction());
            for (String t : sd.documents()) {
                if (t.isBlank()) continue;
                if (!seen.add(t)) {
                    dups[s]++;
                    continue;
                }
                Doc d = new Doc(s, t, sha256(seed + 1, t));
                (isValidation(seed, t, sd.valFraction()) ? val : train).add(d);
            }
        }
        if (train.isEmpty()) throw new NshapException("the corpus holds no documents");
        Comparator<Doc> byOrder = (a, b) -> Arrays.compareUnsigned(a.order(), b.order());
        train.sort(byOrder);
        val.sort(byOrder);

        long[] trainTok = new long[sources.size()], valTok = new long[sources.size()], chars = new long[sources.size()];
        int[] trainDocs = new int[sources.size()], valDocs = new int[sources.size()];
        Progress progress = new Progress("[nshap] tokenizing documents", train.size() + val.size());
        long[] done = {0};
        char[] trainIds = tokenize(train, tok, eot, trainTok, trainDocs, chars, progress, done);
        char[] valIds = tokenize(val, tok, eot, valTok, valDocs, chars, progress, done);
        List<SourceStats> stats = new ArrayList<>();
        for (int s = 0; s < sources.size(); s++) {
            SourceDocs sd = sources.get(s);
            stats.add(new SourceStats(sd.name(), sd.what(), sd.licence(), sd.valFraction(), sd.documents().size(), dups[s],
                    trainDocs[s], valDocs[s], trainTok[s], valTok[s], chars[s]));
        }
        return new Result(trainIds, valIds, stats, seed, eot);
    }

    private static char[] tokenize(List<Doc> docs, Tokenizer tok, int eot, long[] tokens, int[] counts, long[] chars,
                                   Progress progress, long[] done) {
        int[][] ids = new int[docs.size()][];
        int block = 2048;
        for (int from = 0; from < docs.size(); from += block) {
            int to = Math.min(docs.size(), from + block);
            IntStream.range(from, to).parallel().forEach(i -> ids[i] = tok.encode(docs.get(i).text()));
            done[0] += to - from;
            progress.update(done[0]);
        }
        long total = 0;
        for (int i = 0; i < ids.length; i++) {
            Doc d = docs.get(i);
            tokens[d.source()] += ids[i].length + 1;
            counts[d.source()]++;
            chars[d.source()] += d.text().length();
            total += ids[i].length + 1;
        }
        if (total > Integer.MAX_VALUE - 16) throw new NshapException("more than 2^31 tokens: split the corpus");
        char[] out = new char[(int) total];
        int p = 0;
        for (int[] a : ids) {
            out[p++] = (char) eot;
            for (int id : a) {
                if (id < 0 || id > 0xFFFF) throw new NshapException("token id " + id + " does not fit uint16");
                out[p++] = (char) id;
            }
        }
        return out;
    }

    /** The validation and summary files that go beside {@code out}: tokens.bin -> tokens.val.bin, tokens.json. */
    public static Path valPath(Path out) { return sibling(out, ".val.bin"); }

    public static Path summaryPath(Path out) { return sibling(out, ".json"); }

    private static Path sibling(Path out, String suffix) {
        String n = out.getFileName().toString();
        String stem = n.toLowerCase(Locale.ROOT).endsWith(".bin") ? n.substring(0, n.length() - 4) : n;
        return out.resolveSibling(stem + suffix);
    }

    public static byte[] uint16le(char[] ids) {
        ByteBuffer b = ByteBuffer.allocate(ids.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (char c : ids) b.putChar(c);
        return b.array();
    }

    /** Reads a uint16 little-endian token file back (tests, checks). */
    public static int[] readUint16(Path file) {
        try {
            byte[] b = Files.readAllBytes(file);
            if (b.length % 2 != 0) throw new NshapException(file + ": odd number of bytes, not a uint16 token file");
            ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
            int[] out = new int[b.length / 2];
            for (int i = 0; i < out.length; i++) out[i] = bb.getChar();
            return out;
        } catch (IOException e) {
            throw new NshapException(file + ": cannot read: " + e.getMessage());
        }
    }

    /** Writes train, validation and summary files (each atomically; the summary last, so it vouches for both). */
    public static ObjectNode write(Result r, Path out, String tokenizerName, String origin, double seconds) {
        byte[] train = uint16le(r.train()), val = uint16le(r.val());
        Path valOut = valPath(out), summary = summaryPath(out);
        AtomicFiles.writeBytes(out, train);
        AtomicFiles.writeBytes(valOut, val);
        ObjectNode j = Json.MAPPER.createObjectNode();
        j.put("what", "GPT-2 token ids for training, uint16 little-endian; every document is preceded by <|endoftext|>");
        j.put("tokenizer", tokenizerName);
        j.put("eot", r.eot());
        j.put("origin", origin);
        ObjectNode split = j.putObject("split");
        split.put("seed", r.seed());
        split.put("rule", SPLIT_RULE);
        ObjectNode tr = j.putObject("train");
        tr.put("file", out.getFileName().toString());
        tr.put("tokens", r.train().length);
        tr.put("documents", r.trainDocuments());
        tr.put("sha256", hex(train));
        ObjectNode va = j.putObject("val");
        va.put("file", valOut.getFileName().toString());
        va.put("tokens", r.val().length);
        va.put("documents", r.valDocuments());
        va.put("sha256", hex(val));
        ArrayNode src = j.putArray("sources");
        for (SourceStats s : r.sources()) {
            ObjectNode o = src.addObject();
            o.put("name", s.name());
            o.put("what", s.what());
            o.put("licence", s.licence());
            o.put("val_fraction", s.valFraction());
            o.put("documents_read", s.documentsRead());
            o.put("duplicates_dropped", s.duplicatesDropped());
            o.put("train_documents", s.trainDocuments());
            o.put("val_documents", s.valDocuments());
            o.put("train_tokens", s.trainTokens());
            o.put("val_tokens", s.valTokens());
            o.put("characters", s.characters());
        }
        j.put("seconds", Math.round(seconds * 10) / 10.0);
        Json.writeFile(summary, j);
        return j;
    }

    private static String hex(byte[] data) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
