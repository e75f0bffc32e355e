package dev.nshap.eval.corpus;

import dev.nshap.NshapException;
import dev.nshap.eval.Prompt;
import dev.nshap.model.JTokkitTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

class DatasetBuilderTest {

    static final String CORPUS = """
            label,text
            sport,"The young striker scored a late goal for the club."
            sport,"She joined the league after college. The team won the league title."
            sport,"He scored the winning goal in the final match of the season."
            sport,"Fans cheered when the keeper saved a penalty and the team won the league."
            art,"The painter showed a new painting at the museum."
            art,"The museum bought the painting after the artist died."
            art,"Her painting of the river hangs in the city museum."
            art,"The artist was known for the colours of the painting."
            """;

    List<CorpusReader.Document> docs(Path dir, String text) throws Exception {
        Path f = dir.resolve("corpus.csv");
        Files.writeString(f, text);
        return CorpusReader.read(f, new CorpusReader.Options(null, "text", "label", null, null));
    }

    DatasetBuilder.Options opts() {
        DatasetBuilder.Options o = new DatasetBuilder.Options();
        o.topicLabels = Set.of("sport");
        o.topicName = "sport";
        o.keywords = 2;
        o.minDocs = 2;
        o.minPromptWords = 3;
        o.maxSentences = 1;
        o.perKeyword = 10;
        o.perDocument = 10;
        return o;
    }

    @Test void keywordsAndCutsOnAHandMadeCorpus(@TempDir Path dir) throws Exception {
        DatasetBuilder.Result r = DatasetBuilder.build(docs(dir, CORPUS), opts(), JTokkitTokenizer.GPT2);
        // league: 3 times in 2 sport texts; goal, scored, team, won: twice each (ties go alphabetically); none in art.
        assertEquals(List.of("league", "goal"), r.keywords().stream().map(DatasetBuilder.Keyword::word).toList());
        // Word counts by hand: sport texts 10 + 12 + 12 + 14 = 48 words, art texts 9 + 9 + 10 + 10 = 38.
        double a = 3, yi = 3, yj = 0, ni = 48, nj = 38, a0 = 86;
        double delta = Math.log((yi + a) / (ni + a0 - yi - a)) - Math.log((yj + a) / (nj + a0 - yj - a));
        assertEquals(delta / Math.sqrt(1 / (yi + a) + 1 / (yj + a)), r.keywords().get(0).score(), 1e-12);
        assertEquals(3, r.keywords().get(0).topicCount());
        assertEquals(0, r.keywords().get(0).backgroundCount());

        List<String> got = new ArrayList<>();
        for (Prompt p : r.prompts()) got.add(p.prompt() + "|" + p.answer());
        assertEquals(List.of(
                "The young striker scored a late| goal",
                "She joined the| league",
                "The team won the| league",
                "He scored the winning| goal",
                "Fans cheered when the keeper saved a penalty and the team won the| league"), got);
        assertEquals("sport-0001", r.prompts().get(0).id());
        assertEquals("corpus.csv:2", r.prompts().get(0).source().replaceFirst("^.*/", ""));
        assertEquals("corpus.csv:5", r.prompts().get(4).source().replaceFirst("^.*/", ""));
        // Foils are the art texts' own keywords: painting (4 texts), museum (3).
        for (Prompt p : r.prompts()) assertTrue(Set.of(" painting", " museum").contains(p.foil()), p.foil());
    }

    @Test void sentenceAndTokenBoundsCapsDedupAndSeeds(@TempDir Path dir) throws Exception {
        DatasetBuilder.Options o = opts();
        o.maxSentences = 2;
        o.maxPromptTokens = 5;
        DatasetBuilder.Result r = DatasetBuilder.build(docs(dir, CORPUS), o, JTokkitTokenizer.GPT2);
        List<String> got = r.prompts().stream().map(Prompt::prompt).toList();
        // Two sentences would give "She joined the league after college. The team won the"; 5 tokens keep its tail.
        assertTrue(got.contains("and the team won the"), got.toString());
        assertTrue(got.contains("The team won the"), got.toString());
        assertTrue(got.contains("young striker scored a late"), got.toString());
        for (String p : got) assertTrue(JTokkitTokenizer.GPT2.encode(p).length <= 5, p);

        o = opts();
        o.perKeyword = 1;
        o.foils = false;
        DatasetBuilder.Result one = DatasetBuilder.build(docs(dir, CORPUS), o, JTokkitTokenizer.GPT2);
        assertEquals(2, one.prompts().size());
        assertNotEquals(one.prompts().get(0).answer(), one.prompts().get(1).answer());
        assertNull(one.prompts().get(0).foil());
        assertEquals(one.prompts(), DatasetBuilder.build(docs(dir, CORPUS), o, JTokkitTokenizer.GPT2).prompts());
        boolean differs = false;
        for (long s = 2; s < 12 && !differs; s++) {
            o.seed = s;
            differs = !one.prompts().equals(DatasetBuilder.build(docs(dir, CORPUS), o, JTokkitTokenizer.GPT2).prompts());
        }
        assertTrue(differs, "other seeds sample other cuts");

        o = opts();
        o.perDocument = 1;
        String dup = CORPUS + "sport,\"The young striker scored a late goal for the club.\"\n";
        DatasetBuilder.Result d = DatasetBuilder.build(docs(dir, dup), o, JTokkitTokenizer.GPT2);
        assertEquals(d.prompts().size(), d.prompts().stream().map(Prompt::prompt).distinct().count());
        assertEquals(1, d.prompts().stream().filter(p -> p.prompt().equals("The young striker scored a late")).count());
        assertEquals(4, d.prompts().size()); // one per text, the duplicate text adds nothing
    }

    @Test void tfidfScoresOnlyWhatTheOtherLabelsLack(@TempDir Path dir) throws Exception {
        DatasetBuilder.Options o = opts();
        o.scoring = DatasetBuilder.Scoring.TFIDF;
        DatasetBuilder.Result r = DatasetBuilder.build(docs(dir, CORPUS), o, JTokkitTokenizer.GPT2);
        assertEquals(List.of("league", "goal"), r.keywords().stream().map(DatasetBuilder.Keyword::word).toList());
        assertEquals(3.0 / 48 * Math.log(2), r.keywords().get(0).score(), 1e-12);
    }

    @Test void refusesUnknownLabelsAndTopicsWithoutKeywords(@TempDir Path dir) throws Exception {
        DatasetBuilder.Options o = opts();
        o.topicLabels = Set.of("music");
        NshapException e = assertThrows(NshapException.class, () -> DatasetBuilder.build(docs(dir, CORPUS), o, JTokkitTokenizer.GPT2));
        assertTrue(e.getMessage().contains("unknown topic label 'music'"), e.getMessage());
        DatasetBuilder.Options o2 = opts();
        o2.minDocs = 9;
        assertThrows(NshapException.class, () -> DatasetBuilder.build(docs(dir, CORPUS), o2, JTokkitTokenizer.GPT2));
    }
}
