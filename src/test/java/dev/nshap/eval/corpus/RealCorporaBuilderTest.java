package dev.nshap.eval.corpus;

import dev.nshap.eval.Prompt;
import dev.nshap.model.JTokkitTokenizer;
import dev.nshap.testutil.Corpora;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** The builder on the real corpora the original experiments used (skipped where ../shared/corpora is absent). */
class RealCorporaBuilderTest {

    /** Every prompt + answer is the text of its source document, cut right before the keyword. */
    static void checkCuts(List<CorpusReader.Document> docs, DatasetBuilder.Result r, int maxTokens) {
        Map<String, String> bySource = new HashMap<>();
        for (CorpusReader.Document d : docs) bySource.put(d.source(), DatasetBuilder.normalize(d.text()));
        Set<String> kw = new HashSet<>();
        for (DatasetBuilder.Keyword k : r.keywords()) kw.add(k.word());
        Set<String> seen = new HashSet<>();
        for (Prompt p : r.prompts()) {
            String text = bySource.get(p.source());
            assertNotNull(text, p.source());
            String cut = p.prompt() + p.answer();
            int at = text.indexOf(cut);
            assertTrue(at >= 0, "not a cut of its source: " + cut);
            int end = at + cut.length();
            assertTrue(end == text.length() || !Character.isLetter(text.charAt(end)), "answer is a whole word: " + cut);
            assertTrue(kw.contains(p.answer().substring(1).toLowerCase(java.util.Locale.ROOT)), p.answer());
            assertTrue(JTokkitTokenizer.GPT2.encode(p.prompt()).length <= maxTokens, p.prompt());
            assertTrue(seen.add(p.prompt()), "duplicate prompt " + p.prompt());
        }
    }

    @Test void dbpediaAthlete() {
        Path test = Corpora.require("dbpedia14/test.csv");
        List<CorpusReader.Document> docs = CorpusReader.read(test, new CorpusReader.Options(null, "2", "1", null, null));
        assertEquals(5000, docs.size());
        DatasetBuilder.Options o = new DatasetBuilder.Options();
        o.topicLabels = Set.of("13");
        o.topicName = "athlete";
        o.maxPrompts = 100;
        DatasetBuilder.Result r = DatasetBuilder.build(docs, o, JTokkitTokenizer.GPT2);
        List<String> top = r.keywords().subList(0, 15).stream().map(DatasetBuilder.Keyword::word).toList();
        for (String w : List.of("football", "played", "league", "player")) assertTrue(top.contains(w), top.toString());
        assertEquals(100, r.prompts().size());
        checkCuts(docs, r, o.maxPromptTokens);
        Map<String, Integer> perKw = new HashMap<>();
        for (Prompt p : r.prompts()) perKw.merge(p.answer().toLowerCase(java.util.Locale.ROOT), 1, Integer::sum);
        for (int n : perKw.values()) assertTrue(n <= o.perKeyword);
        for (Prompt p : r.prompts()) assertNotNull(p.foil());
    }

    @Test void davidsonToxicAgainstHarmless() {
        Path f = Corpora.require("davidson-hate-offensive/labeled_data.csv");
        List<CorpusReader.Document> docs = CorpusReader.read(f, new CorpusReader.Options(null, "tweet", "class", null, null));
        assertEquals(24783, docs.size());
        DatasetBuilder.Options o = new DatasetBuilder.Options();
        o.topicLabels = Set.of("0", "1");
        o.backgroundLabels = Set.of("2");
        o.topicName = "toxic";
        o.maxPrompts = 60;
        DatasetBuilder.Result r = DatasetBuilder.build(docs, o, JTokkitTokenizer.GPT2);
        List<String> top = r.keywords().subList(0, 10).stream().map(DatasetBuilder.Keyword::word).toList();
        assertTrue(top.contains("bitch") || top.contains("hoes") || top.contains("bitches"), top.toString());
        assertEquals(60, r.prompts().size());
        checkCuts(docs, r, o.maxPromptTokens);
        assertEquals(docs.stream().filter(d -> !d.label().equals("2")).count(), r.topicDocuments());
    }
}
