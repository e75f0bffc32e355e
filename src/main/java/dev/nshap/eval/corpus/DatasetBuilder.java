package dev.nshap.eval.corpus;

import dev.nshap.NshapException;
import dev.nshap.eval.Prompt;
import dev.nshap.model.Tokenizer;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Builds a topic prompt set from labelled text, as the original experiments did: find the words most
 * over-represented in the topic's texts against the other texts, then cut each topic text just before an
 * occurrence of such a keyword. The prompt is the text leading up to it (the last few sentences, at most a number
 * of GPT-2 tokens), the answer is the keyword with its leading space, as GPT-2 sees a word mid-sentence.
 * <p>
 * Words are runs of letters (with inner apostrophes); they are counted case-folded, so "Football" and "football"
 * are one keyword, while an answer keeps the case it has in the text. Only occurrences preceded by a space are cut
 * (a keyword right after "(" or a quote would need an answer without its space).
 * <p>
 * Scoring: {@code log-odds} is the log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi &amp; Quinn
 * 2008) whose prior counts are the word's counts in the whole corpus, ranked by its z-score; {@code tfidf} treats the
 * topic and each other label as one document each and ranks by the topic's term frequency x ln(N / df).
 */
public final class DatasetBuilder {

    public enum Scoring {
        LOG_ODDS, TFIDF;

        public static Scoring parse(String s) {
            return switch (s.trim().toLowerCase(Locale.ROOT)) {
                case "log-odds", "logodds" -> LOG_ODDS;
                case "tfidf", "tf-idf" -> TFIDF;
                default -> throw new NshapException("unknown scoring '" + s + "' (log-odds|tfidf)");
            };
        }
    }

    /** What to build; see the CLI ({@code nshap datasets build}) for the meaning of each knob. */
    public static final class Options {
        public Set<String> topicLabels = Set.of();
        /** Labels the topic is compared with; empty = every other label. */
        public Set<String> backgroundLabels = Set.of();
        public String topicName;
        public Scoring scoring = Scoring.LOG_ODDS;
        public int keywords = 50;
        public int minLength = 3;
        /** A keyword must occur in at least this many topic documents. */
        public int minDocs = 5;
        public int maxPromptTokens = 60;
        public int maxSentences = 3;
        public int minPromptWords = 5;
        public int perKeyword = 20;
        public int perDocument = 2;
        public int maxPrompts = 200;
        public long seed = 1;
        public boolean foils = true;
        /** Leave function words ({@link #STOP_WORDS}) out of the keywords and foils. */
        public boolean skipStopWords = true;
    }

    /** English function words: over-represented in some topics (person bios say "his", "who"), never about them. */
    public static final Set<String> STOP_WORDS = Set.of(("a about above after again against all also am an and any are"
            + " as at be because been before being below between both but by can could did do does doing down during each"
            + " few for from further had has have having he her here hers herself him himself his how i if in into is it"
            + " its itself just me more most my myself no nor not now of off on once only or other our ours ourselves out"
            + " over own same she should so some such than that the their theirs them themselves then there these they"
            + " this those through to too under until up very was we were what when where which while who whom why will"
            + " with would you your yours yourself yourselves shall may might must upon via").split(" "));

    public record Keyword(String word, double score, long topicCount, long backgroundCount, int topicDocs) {}

    public record Result(List<Keyword> keywords, List<Keyword> foilWords, List<Prompt> prompts, int topicDocuments,
                         int backgroundDocuments, int candidates) {}

    static final Pattern WORD = Pattern.compile("\\p{L}+(?:['\u2019]\\p{L}+)*");
    private static final Pattern SENTENCE_END = Pattern.compile("[.!?][\"'\u201d\u2019)\\]]*\\s+");

    private DatasetBuilder() {}

    /** Whitespace runs (including line breaks) become one space; the cuts are made in this form. */
    public static String normalize(String text) {
        return text.replaceAll("\\s+", " ").strip();
    }

    public static Result build(List<CorpusReader.Document> docs, Options o, Tokenizer tok) {
        if (o.topicLabels.isEmpty()) throw new NshapException("--topic: no label given");
        String name = o.topicName != null ? o.topicName : String.join("+", o.topicLabels);
        List<String> topicTexts = new ArrayList<>(), bgTexts = new ArrayList<>();
        List<CorpusReader.Document> topicDocs = new ArrayList<>();
        List<String> bgLabels = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        for (CorpusReader.Document d : docs) {
            seen.add(d.label());
            String t = normalize(d.text());
            if (o.topicLabels.contains(d.label())) {
                topicTexts.add(t);
                topicDocs.add(d);
            } else if (o.backgroundLabels.isEmpty() || o.backgroundLabels.contains(d.label())) {
                bgTexts.add(t);
                bgLabels.add(d.label());
            }
        }
        for (String l : o.topicLabels)
            if (!seen.contains(l))
                throw new NshapException("unknown topic label '" + l + "' (the corpus has: " + String.join(", ", sorted(seen)) + ")");
        for (String l : o.backgroundLabels)
            if (!seen.contains(l))
                throw new NshapException("unknown background label '" + l + "' (the corpus has: " + String.join(", ", sorted(seen)) + ")");
        if (bgTexts.isEmpty())
            throw new NshapException("no background texts: the topic needs other labels to be compared with");

        Map<String, long[]> counts = new HashMap<>(); // word -> {topic, background, topic docs}
        Map<String, Map<String, Integer>> surface = new HashMap<>();
        for (String t : topicTexts) {
            Set<String> inDoc = new HashSet<>();
            for (Matcher m = WORD.matcher(t); m.find(); ) {
                String w = m.group().toLowerCase(Locale.ROOT);
                counts.computeIfAbsent(w, k -> new long[3])[0]++;
                if (inDoc.add(w)) counts.get(w)[2]++;
            }
        }
        Map<String, Set<String>> labelsOf = new HashMap<>();
        for (int i = 0; i < bgTexts.size(); i++)
            for (Matcher m = WORD.matcher(bgTexts.get(i)); m.find(); ) {
                String w = m.group().toLowerCase(Locale.ROOT);
                counts.computeIfAbsent(w, k -> new long[3])[1]++;
                surface.computeIfAbsent(w, k -> new HashMap<>()).merge(m.group(), 1, Integer::sum);
                labelsOf.computeIfAbsent(w, k -> new HashSet<>()).add(bgLabels.get(i));
            }
        Map<String, Double> score = score(counts, labelsOf, new HashSet<>(bgLabels).size(), o.scoring);

        List<Keyword> kws = new ArrayList<>(), foilWords = new ArrayList<>();
        List<String> words = new ArrayList<>(score.keySet());
        words.sort(Comparator.comparingDouble((String w) -> -score.get(w)).thenComparing(w -> w));
        for (String w : words) {
            long[] c = counts.get(w);
            if (kws.size() >= o.keywords) break;
            if (w.length() < o.minLength || c[2] < o.minDocs || !(score.get(w) > 0)) continue;
            if (o.skipStopWords && STOP_WORDS.contains(w)) continue;
            kws.add(new Keyword(w, score.get(w), c[0], c[1], (int) c[2]));
        }
        if (kws.isEmpty()) throw new NshapException("no keyword is over-represented in the topic's " + topicTexts.size()
                + " texts (try a lower --min-docs)");
        if (o.foils) {
            // The counter-topic's own keywords: most over-represented in the background (log-odds / tf-idf reversed).
            Map<String, Double> rev = score(swap(counts), null, 0, Scoring.LOG_ODDS);
            List<String> rw = new ArrayList<>(rev.keySet());
            rw.sort(Comparator.comparingDouble((String w) -> -rev.get(w)).thenComparing(w -> w));
            for (String w : rw) {
                if (foilWords.size() >= o.keywords) break;
                long[] c = counts.get(w);
                if (w.length() < o.minLength || c[1] < o.minDocs || !(rev.get(w) > 0)) continue;
                if (o.skipStopWords && STOP_WORDS.contains(w)) continue;
                foilWords.add(new Keyword(w, rev.get(w), c[0], c[1], 0));
            }
        }
        Set<String> kwSet = new HashSet<>();
        for (Keyword k : kws) kwSet.add(k.word());

        // Every place a keyword could be cut at; prompts are made only for the sampled ones (tokenising is the cost).
        record Cut(int doc, int at, String word, String surface) {}
        List<Cut> cuts = new ArrayList<>();
        for (int d = 0; d < topicTexts.size(); d++) {
            String t = topicTexts.get(d);
            for (Matcher m = WORD.matcher(t); m.find(); ) {
                String w = m.group().toLowerCase(Locale.ROOT);
                if (!kwSet.contains(w) || m.start() == 0 || t.charAt(m.start() - 1) != ' ') continue;
                cuts.add(new Cut(d, m.start(), w, m.group()));
            }
        }
        List<Cut> order = new ArrayList<>(cuts);
        Random rnd = new Random(o.seed);
        Collections.shuffle(order, rnd);
        Map<String, Integer> perKw = new HashMap<>();
        Map<Integer, Integer> perDoc = new HashMap<>();
        Map<Cut, String> promptOf = new HashMap<>();
        Set<String> prompts = new HashSet<>();
        List<Cut> chosen = new ArrayList<>();
        for (Cut c : order) {
            if (chosen.size() >= o.maxPrompts) break;
            if (perKw.getOrDefault(c.word, 0) >= o.perKeyword || perDoc.getOrDefault(c.doc, 0) >= o.perDocument) continue;
            String prompt = promptBefore(topicTexts.get(c.doc), c.at, o, tok);
            if (prompt == null || !prompts.add(prompt)) continue;
            perKw.merge(c.word, 1, Integer::sum);
            perDoc.merge(c.doc, 1, Integer::sum);
            promptOf.put(c, prompt);
            chosen.add(c);
        }
        chosen.sort(Comparator.comparingInt((Cut c) -> c.doc).thenComparingInt(c -> c.at));
        List<Prompt> out = new ArrayList<>();
        Random foilRnd = new Random(o.seed * 31 + 7);
        int width = Math.max(4, Integer.toString(chosen.size()).length());
        for (int i = 0; i < chosen.size(); i++) {
            Cut c = chosen.get(i);
            String answer = " " + c.surface;
            String foil = o.foils ? foil(answer, foilWords, surface, foilRnd, tok) : null;
            String id = name + "-" + String.format(Locale.ROOT, "%0" + width + "d", i + 1);
            out.add(new Prompt(id, name, promptOf.get(c), answer, foil, topicDocs.get(c.doc).source()));
        }
        return new Result(List.copyOf(kws), List.copyOf(foilWords), List.copyOf(out), topicTexts.size(), bgTexts.size(), cuts.size());
    }

    /**
     * Whether the prompts of the text with this source go to the held-out split: a hash of (seed, source), so
     * the split is stable across runs and prompt counts, and every prompt of one text lands on one side.
     */
    public static boolean heldOut(String source, long seed, double fraction) {
        long h = seed * 0x9E3779B97F4A7C15L;
        for (int i = 0; i < source.length(); i++) h = (h ^ source.charAt(i)) * 0x100000001B3L;
        h ^= h >>> 33; h *= 0xFF51AFD7ED558CCDL; h ^= h >>> 33;
        return (h >>> 11) * 0x1.0p-53 < fraction;
    }

    private static Map<String, long[]> swap(Map<String, long[]> counts) {
        Map<String, long[]> s = new HashMap<>();
        counts.forEach((w, c) -> s.put(w, new long[]{c[1], c[0], 0}));
        return s;
    }

    private static List<String> sorted(Set<String> s) {
        List<String> l = new ArrayList<>(s);
        Collections.sort(l);
        return l;
    }

    /** Score of every word for the topic (column 0) against the background (column 1). */
    static Map<String, Double> score(Map<String, long[]> counts, Map<String, Set<String>> bgLabelsOf, int bgLabelCount, Scoring s) {
        long ni = 0, nj = 0;
        for (long[] c : counts.values()) {
            ni += c[0];
            nj += c[1];
        }
        Map<String, Double> out = new HashMap<>();
        if (s == Scoring.LOG_ODDS) {
            double a0 = ni + nj;
            for (Map.Entry<String, long[]> e : counts.entrySet())
                out.put(e.getKey(), logOddsZ(e.getValue()[0], e.getValue()[1], ni, nj, e.getValue()[0] + e.getValue()[1], a0));
        } else {
            int n = 1 + bgLabelCount;
            for (Map.Entry<String, long[]> e : counts.entrySet()) {
                long[] c = e.getValue();
                if (c[0] == 0) continue;
                int df = 1 + (bgLabelsOf.containsKey(e.getKey()) ? bgLabelsOf.get(e.getKey()).size() : 0);
                out.put(e.getKey(), (double) c[0] / ni * Math.log((double) n / df));
            }
        }
        return out;
    }

    /**
     * z-score of the log-odds ratio of a word between corpus i and j with Dirichlet prior count {@code a} for the
     * word and {@code a0} in all (Monroe et al. 2008, eq. 16 and 18).
     */
    public static double logOddsZ(double yi, double yj, double ni, double nj, double a, double a0) {
        double delta = Math.log((yi + a) / (ni + a0 - yi - a)) - Math.log((yj + a) / (nj + a0 - yj - a));
        double var = 1 / (yi + a) + 1 / (yj + a);
        return delta / Math.sqrt(var);
    }

    /**
     * The text before {@code at}: the last {@code maxSentences} sentences (the one the keyword is in counts), then
     * whole words dropped from the front until it is at most {@code maxPromptTokens} tokens; null when fewer than
     * {@code minPromptWords} words remain.
     */
    static String promptBefore(String text, int at, Options o, Tokenizer tok) {
        String before = text.substring(0, at).stripTrailing();
        List<Integer> starts = new ArrayList<>();
        starts.add(0);
        for (Matcher m = SENTENCE_END.matcher(before); m.find(); ) if (m.end() < before.length()) starts.add(m.end());
        int from = starts.get(Math.max(0, starts.size() - Math.max(1, o.maxSentences)));
        String p = before.substring(from);
        if (tok != null && tok.encode(p).length > o.maxPromptTokens) {
            // Word starts, then the earliest start that fits (token counts shrink as the start moves right).
            List<Integer> ws = new ArrayList<>();
            for (int i = 1; i < p.length(); i++) if (p.charAt(i - 1) == ' ' && p.charAt(i) != ' ') ws.add(i);
            int lo = 0, hi = ws.size() - 1, best = -1;
            while (lo <= hi) {
                int mid = (lo + hi) >>> 1;
                if (tok.encode(p.substring(ws.get(mid))).length <= o.maxPromptTokens) {
                    best = mid;
                    hi = mid - 1;
                } else lo = mid + 1;
            }
            if (best < 0) return null;
            p = p.substring(ws.get(best));
        }
        int words = 0;
        for (Matcher m = WORD.matcher(p); m.find(); ) words++;
        return words >= o.minPromptWords ? p : null;
    }

    /** A counter-topic keyword (its most common spelling) whose first token differs from the answer's. */
    private static String foil(String answer, List<Keyword> foilWords, Map<String, Map<String, Integer>> surface,
                               Random rnd, Tokenizer tok) {
        if (foilWords.isEmpty()) return null;
        int first = tok != null ? tok.encode(answer)[0] : -1;
        for (int tries = 0; tries < 20; tries++) {
            String w = foilWords.get(rnd.nextInt(foilWords.size())).word();
            Map<String, Integer> forms = surface.getOrDefault(w, Map.of());
            String form = forms.entrySet().stream().max(Map.Entry.<String, Integer>comparingByValue()
                    .thenComparing(Map.Entry.comparingByKey(Comparator.reverseOrder()))).map(Map.Entry::getKey).orElse(w);
            String f = " " + form;
            if (tok == null || tok.encode(f)[0] != first) return f;
        }
        return null;
    }
}
