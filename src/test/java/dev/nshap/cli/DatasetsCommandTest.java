package dev.nshap.cli;

import dev.nshap.eval.Dataset;
import dev.nshap.eval.Prompt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class DatasetsCommandTest {

    @Test void buildWritesALoadableTopicSetFromPlainLineFilesAndRefusesBadInput(@TempDir Path dir) throws Exception {
        // One file per class: the label is the file name.
        Path sport = dir.resolve("sport.txt"), art = dir.resolve("art.txt");
        Files.writeString(sport, """
                The young striker scored a late goal for the club.
                She joined the league after college. The team won the league title.
                He scored the winning goal in the final match of the season.
                Fans cheered when the keeper saved a penalty and the team won the league.
                """);
        Files.writeString(art, """
                The painter showed a new painting at the museum.
                The museum bought the painting after the artist died.
                Her painting of the river hangs in the city museum.
                The artist was known for the colours of the painting.
                """);
        Path out = dir.resolve("out").resolve("sport.jsonl");
        NeuronShapleyCliTest.Run r = NeuronShapleyCliTest.cli("datasets", "build", "--corpus", sport.toString(), "--corpus", art.toString(),
                "--topic", "sport", "--keywords", "2", "--min-docs", "2", "--min-prompt-words", "3", "--max-sentences", "1",
                "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("league("), r.out());
        Dataset d = Dataset.load(out, "sport");
        assertEquals(5, d.prompts().size());
        Prompt p = d.prompts().get(0);
        assertEquals("The young striker scored a late", p.prompt());
        assertEquals(" goal", p.answer());
        assertTrue(p.source().endsWith("sport.txt:1"), p.source());
        assertNotNull(p.foil());

        Path none = dir.resolve("none.jsonl");
        r = NeuronShapleyCliTest.cli("datasets", "build", "--corpus", sport.toString(), "--corpus", art.toString(),
                "--topic", "music", "--out", none.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown topic label 'music'"), r.err());
        r = NeuronShapleyCliTest.cli("datasets", "build", "--corpus", sport.toString(), "--topic", "sport", "--out", none.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("no background texts"), r.err());
        r = NeuronShapleyCliTest.cli("datasets", "build", "--corpus", dir.resolve("missing.csv").toString(), "--topic", "1", "--out", none.toString());
        assertEquals(2, r.code());
        assertFalse(Files.exists(none));
    }

    /** Prompts split by source text: no text feeds both files, the union is the unsplit set, the split is stable. */
    @Test void holdoutSplitsByTextAndNeverSharesOne(@TempDir Path dir) throws Exception {
        StringBuilder sport = new StringBuilder(), art = new StringBuilder();
        for (int i = 0; i < 40; i++) {
            sport.append("Player ").append(i).append(" scored a goal for the club and the team won the league.\n");
            art.append("Painter ").append(i).append(" showed a painting at the museum of the city.\n");
        }
        Path s = dir.resolve("sport.txt"), a = dir.resolve("art.txt");
        Files.writeString(s, sport);
        Files.writeString(a, art);
        String[] common = {"datasets", "build", "--corpus", s.toString(), "--corpus", a.toString(), "--topic", "sport",
                "--keywords", "3", "--min-docs", "2", "--min-prompt-words", "2", "--max-prompts", "500", "--seed", "4"};
        Path all = dir.resolve("all.jsonl"), sel = dir.resolve("sel.jsonl"), held = dir.resolve("held.jsonl");
        assertEquals(0, NeuronShapleyCliTest.cli(cat(common, "--out", all.toString())).code());
        NeuronShapleyCliTest.Run r = NeuronShapleyCliTest.cli(cat(common, "--holdout", "0.5", "--holdout-out", held.toString(), "--out", sel.toString()));
        assertEquals(0, r.code(), r.err());
        java.util.List<Prompt> ps = Dataset.load(sel, "sport").prompts(), ph = Dataset.load(held, "sport").prompts();
        java.util.Set<String> selSources = new java.util.HashSet<>();
        for (Prompt p : ps) selSources.add(p.source());
        for (Prompt p : ph) assertFalse(selSources.contains(p.source()), "text in both splits: " + p.source());
        assertTrue(ps.size() > 10 && ph.size() > 10, ps.size() + " / " + ph.size());
        java.util.Set<String> union = new java.util.HashSet<>();
        for (Prompt p : ps) union.add(p.id() + p.prompt());
        for (Prompt p : ph) union.add(p.id() + p.prompt());
        java.util.Set<String> want = new java.util.HashSet<>();
        for (Prompt p : Dataset.load(all, "sport").prompts()) want.add(p.id() + p.prompt());
        assertEquals(want, union);
        // Same seed, same split.
        Path sel2 = dir.resolve("sel2.jsonl"), held2 = dir.resolve("held2.jsonl");
        assertEquals(0, NeuronShapleyCliTest.cli(cat(common, "--holdout", "0.5", "--holdout-out", held2.toString(), "--out", sel2.toString())).code());
        assertEquals(Files.readString(sel), Files.readString(sel2));
        // Bad fractions and a missing partner option: one line, exit 2, nothing written.
        Path none = dir.resolve("none.jsonl");
        for (String[] bad : new String[][]{{"--holdout", "1.5", "--holdout-out", held2.toString()}, {"--holdout", "0.3"},
                {"--holdout", "0.3", "--holdout-out", none.toString()}}) {
            String[] args = cat(cat(common, bad), "--out", bad.length == 4 && bad[3].equals(none.toString()) ? none.toString() : dir.resolve("x.jsonl").toString());
            r = NeuronShapleyCliTest.cli(args);
            assertEquals(2, r.code(), String.join(" ", bad));
            assertEquals(1, r.err().strip().lines().count(), r.err());
        }
        assertFalse(Files.exists(dir.resolve("x.jsonl")));
        assertFalse(Files.exists(none));
    }

    private static String[] cat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
