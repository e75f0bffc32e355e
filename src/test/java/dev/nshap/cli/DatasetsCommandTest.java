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
}
