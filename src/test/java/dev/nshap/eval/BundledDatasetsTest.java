package dev.nshap.eval;

import dev.nshap.model.GPT2Config;
import dev.nshap.model.JTokkitTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Validates the prompt sets shipped in {@code datasets/}: the loader accepts them, they are big enough,
 * every prompt fits the demo model's context with room to spare, the keywords are varied, and the
 * general control set shares no keyword with the topic sets.
 */
class BundledDatasetsTest {
    static final String[] TOPICS = {"athlete", "artist", "company"};
    static final int MIN_PROMPTS = 150;
    static final int MAX_TOKENS = 100;     // prompt + answer; the demo model's context is 128
    static final int MAX_PER_KEYWORD = 12; // one keyword must not dominate a set's attribution

    static Path file(String name) {
        // Surefire runs in the module root; walk up in case the test runs from elsewhere.
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            Path f = d.resolve("datasets").resolve(name + ".jsonl");
            if (Files.isRegularFile(f)) return f;
        }
        return fail("datasets/" + name + ".jsonl not found above " + Path.of("").toAbsolutePath());
    }

    static Set<String> answers(Dataset d) {
        Set<String> s = new TreeSet<>();
        for (Prompt p : d.prompts()) s.add(p.answer());
        return s;
    }

    @ParameterizedTest
    @ValueSource(strings = {"athlete", "artist", "company", "general"})
    void bundledSetIsWellFormed(String name) {
        Dataset d = Dataset.load(file(name));
        List<Prompt> ps = d.prompts();
        assertTrue(ps.size() >= MIN_PROMPTS, name + ": " + ps.size() + " prompts, want >= " + MIN_PROMPTS);
        assertEquals(name, d.topic());

        Set<String> ids = new HashSet<>();
        Set<String> prompts = new HashSet<>();
        Map<String, Integer> perKeyword = new TreeMap<>();
        List<String> problems = new ArrayList<>();
        for (Prompt p : ps) {
            String at = name + " " + p.id() + ": ";
            if (!ids.add(p.id())) problems.add(at + "duplicate id");
            if (!prompts.add(p.prompt())) problems.add(at + "duplicate prompt");
            if (!name.equals(p.topic())) problems.add(at + "topic '" + p.topic() + "'");
            if (!p.prompt().equals(p.prompt().strip())) problems.add(at + "prompt has leading/trailing whitespace");
            // GPT-2 sees a mid-sentence word as " word": one leading space, then one word.
            if (!p.answer().matches(" \\S+")) problems.add(at + "answer '" + p.answer() + "' is not ' word'");
            if (p.foil() == null || !p.foil().matches(" \\S+")) problems.add(at + "foil '" + p.foil() + "' is not ' word'");
            else if (p.foil().equals(p.answer())) problems.add(at + "foil equals answer");
            perKeyword.merge(p.answer(), 1, Integer::sum);
        }
        perKeyword.forEach((k, c) -> {
            if (c > MAX_PER_KEYWORD) problems.add(name + ": keyword '" + k + "' used " + c + " times");
        });

        // A foil names another topic, so it must not be one of this set's own keywords.
        Set<String> own = answers(d);
        for (Prompt p : ps)
            if (p.foil() != null && own.contains(p.foil())) problems.add(name + " " + p.id() + ": foil '" + p.foil() + "' is a keyword of this set");

        // Tokenise exactly as the evaluator does; the tiny preset has the demo model's 128-token context.
        TokenizedDataset t = d.tokenize(JTokkitTokenizer.GPT2, GPT2Config.preset("tiny"));
        for (int i = 0; i < t.size(); i++) {
            Prompt p = ps.get(i);
            int total = t.sequences[i].length + 1; // the sequence holds all but the answer's last token
            assertEquals(JTokkitTokenizer.GPT2.encode(p.prompt()).length + JTokkitTokenizer.GPT2.encode(p.answer()).length, total);
            if (total > MAX_TOKENS) problems.add(name + " " + p.id() + ": " + total + " tokens, want <= " + MAX_TOKENS);
            // Logit difference compares first tokens: equal ones would make the metric identically zero.
            if (t.foils[i] == t.answers[i][0]) problems.add(name + " " + p.id() + ": foil and answer share their first token");
            assertEquals(p.answer(), JTokkitTokenizer.GPT2.decode(t.answers[i]), "answer tokens round-trip");
        }
        assertTrue(problems.isEmpty(), String.join("\n", problems));
    }

    @Test
    void generalSharesNoKeywordWithTopicSets() {
        Set<String> general = answers(Dataset.load(file("general")));
        for (String topic : TOPICS) {
            Set<String> shared = new TreeSet<>(answers(Dataset.load(file(topic))));
            shared.retainAll(general);
            assertTrue(shared.isEmpty(), "general shares keywords with " + topic + ": " + shared);
        }
    }

    @Test
    void topicSetsHaveDistinctKeywords() {
        // Topic attributions are compared with each other, so a keyword must identify one topic.
        for (int a = 0; a < TOPICS.length; a++)
            for (int b = a + 1; b < TOPICS.length; b++) {
                Set<String> shared = new TreeSet<>(answers(Dataset.load(file(TOPICS[a]))));
                shared.retainAll(answers(Dataset.load(file(TOPICS[b]))));
                assertTrue(shared.isEmpty(), TOPICS[a] + " and " + TOPICS[b] + " share keywords: " + shared);
            }
    }
}
