package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.Prompt;
import dev.nshap.eval.corpus.CorpusReader;
import dev.nshap.eval.corpus.DatasetBuilder;
import dev.nshap.io.AtomicFiles;
import dev.nshap.io.Json;
import dev.nshap.model.JTokkitTokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;

@Command(name = "datasets", mixinStandardHelpOptions = true,
        description = "Topic prompt sets: build them from labelled corpora; tokenize training text.",
        subcommands = {DatasetsCommand.Build.class, DatasetsTokenizeCommand.class})
public final class DatasetsCommand implements Runnable {

    @Override public void run() {
        new picocli.CommandLine(this).usage(System.out);
    }

    /** Corpus options shared by the subcommands that read corpora (a picocli mixin). */
    public static final class CorpusOptions {
        // Not required here: `datasets tokenize` shares these options and reads --corpora without them.
        @Option(names = "--corpus", paramLabel = "FILE",
                description = "corpus file (repeatable: several files form one corpus)")
        public List<Path> corpus;

        @Option(names = "--format", description = "csv | jsonl | lines (default: from the file name)")
        public String format;

        @Option(names = "--text-column", description = "CSV header name or 1-based position, JSONL field (default: text)")
        public String textColumn;

        @Option(names = "--label-column", description = "CSV header name or 1-based position, JSONL field (default: none: the label is the file's name)")
        public String labelColumn;

        @Option(names = "--delimiter", description = "CSV field separator (default: ',' and tab for .tsv); 'tab' for a tab")
        public String delimiter;

        @Option(names = "--header", defaultValue = "auto",
                description = "CSV: yes | no | auto (auto: a header when a column is given by name) (default: ${DEFAULT-VALUE})")
        public String header;

        public CorpusReader.Options options() {
            Character d = null;
            if (delimiter != null) {
                String s = delimiter.equalsIgnoreCase("tab") ? "\t" : delimiter;
                if (s.length() != 1) throw new NshapException("--delimiter must be one character (or 'tab')");
                d = s.charAt(0);
            }
            Boolean h = switch (header.toLowerCase(Locale.ROOT)) {
                case "yes", "true" -> Boolean.TRUE;
                case "no", "false" -> Boolean.FALSE;
                case "auto" -> null;
                default -> throw new NshapException("--header must be yes, no or auto");
            };
            return new CorpusReader.Options(format == null ? null : CorpusReader.Format.parse(format), textColumn, labelColumn, d, h);
        }

        public List<CorpusReader.Document> readAll() {
            CorpusReader.Options o = options();
            List<CorpusReader.Document> docs = new ArrayList<>();
            for (Path p : corpus) docs.addAll(CorpusReader.read(p, o));
            if (docs.isEmpty()) throw new NshapException("the corpus " + corpus + " holds no texts");
            return docs;
        }
    }

    @Command(name = "build", mixinStandardHelpOptions = true,
            description = "Build a topic prompt set: find the words most over-represented in the topic's texts, cut each"
                    + " text just before an occurrence of one; prompt = the text before it, answer = the keyword.")
    static final class Build implements Callable<Integer> {
        @picocli.CommandLine.Mixin CorpusOptions corpus;

        @Option(names = "--topic", required = true, split = ",",
                description = "label value(s) whose texts form the topic (e.g. 13 for DBpedia Athlete; 0,1 for Davidson toxic)")
        List<String> topic;

        @Option(names = "--against", split = ",", description = "label value(s) to compare with (default: every other label)")
        List<String> against;

        @Option(names = "--name", description = "topic name written into the prompts (default: the label values)")
        String name;

        @Option(names = "--scoring", defaultValue = "log-odds", description = "log-odds | tfidf (default: ${DEFAULT-VALUE})")
        String scoring;

        @Option(names = "--keywords", defaultValue = "50", description = "keywords to cut at (default: ${DEFAULT-VALUE})")
        int keywords;

        @Option(names = "--min-docs", defaultValue = "5", description = "a keyword occurs in at least this many topic texts (default: ${DEFAULT-VALUE})")
        int minDocs;

        @Option(names = "--min-length", defaultValue = "3", description = "shortest keyword in letters (default: ${DEFAULT-VALUE})")
        int minLength;

        @Option(names = "--max-prompts", defaultValue = "200", description = "(default: ${DEFAULT-VALUE})")
        int maxPrompts;

        @Option(names = "--per-keyword", defaultValue = "20", description = "most prompts per keyword (default: ${DEFAULT-VALUE})")
        int perKeyword;

        @Option(names = "--per-document", defaultValue = "2", description = "most prompts per text (default: ${DEFAULT-VALUE})")
        int perDocument;

        @Option(names = "--max-prompt-tokens", defaultValue = "60", description = "GPT-2 tokens per prompt at most (default: ${DEFAULT-VALUE})")
        int maxPromptTokens;

        @Option(names = "--max-sentences", defaultValue = "3", description = "sentences per prompt at most (default: ${DEFAULT-VALUE})")
        int maxSentences;

        @Option(names = "--min-prompt-words", defaultValue = "5", description = "(default: ${DEFAULT-VALUE})")
        int minPromptWords;

        @Option(names = "--no-foils", description = "do not add a foil (a keyword of the other texts) to each prompt")
        boolean noFoils;

        @Option(names = "--keep-stop-words", description = "allow function words (the, his, who, ...) as keywords and foils")
        boolean keepStopWords;

        @Option(names = "--seed", defaultValue = "1") long seed;

        @Option(names = "--out", required = true, description = "prompt set to write (JSONL)")
        Path out;

        @Option(names = "--holdout", defaultValue = "0", paramLabel = "F",
                description = "fraction of the source texts whose prompts go to --holdout-out instead (split by a stable hash of each text's source, so no text feeds both files; default: ${DEFAULT-VALUE})")
        double holdout;

        @Option(names = "--holdout-out", paramLabel = "FILE", description = "held-out prompt set to write (JSONL), with --holdout")
        Path holdoutOut;

        @Override public Integer call() {
            if (corpus.corpus == null || corpus.corpus.isEmpty()) throw new NshapException("--corpus FILE is required");
            if (!(holdout >= 0 && holdout < 1)) throw new NshapException("--holdout must be in [0, 1), got " + holdout);
            if ((holdout > 0) != (holdoutOut != null)) throw new NshapException("--holdout and --holdout-out go together");
            if (holdoutOut != null && holdoutOut.toAbsolutePath().normalize().equals(out.toAbsolutePath().normalize()))
                throw new NshapException("--holdout-out must differ from --out");
            if (maxPrompts < 1 || perKeyword < 1 || perDocument < 1 || keywords < 1 || maxPromptTokens < 1 || maxSentences < 1)
                throw new NshapException("--max-prompts, --per-keyword, --per-document, --keywords, --max-prompt-tokens and --max-sentences must be positive");
            DatasetBuilder.Options o = new DatasetBuilder.Options();
            o.topicLabels = new LinkedHashSet<>(topic);
            o.backgroundLabels = against == null ? Set.of() : new LinkedHashSet<>(against);
            for (String t : o.topicLabels)
                if (o.backgroundLabels.contains(t)) throw new NshapException("label '" + t + "' is both --topic and --against");
            o.topicName = name;
            o.scoring = DatasetBuilder.Scoring.parse(scoring);
            o.keywords = keywords;
            o.minDocs = minDocs;
            o.minLength = minLength;
            o.maxPrompts = maxPrompts;
            o.perKeyword = perKeyword;
            o.perDocument = perDocument;
            o.maxPromptTokens = maxPromptTokens;
            o.maxSentences = maxSentences;
            o.minPromptWords = minPromptWords;
            o.foils = !noFoils;
            o.skipStopWords = !keepStopWords;
            o.seed = seed;
            List<CorpusReader.Document> docs = corpus.readAll();
            DatasetBuilder.Result r = DatasetBuilder.build(docs, o, JTokkitTokenizer.GPT2);
            if (r.prompts().isEmpty()) throw new NshapException("no prompt could be cut (texts too short? try --min-prompt-words)");
            List<Prompt> kept = new java.util.ArrayList<>(), held = new java.util.ArrayList<>();
            for (Prompt p : r.prompts()) (holdout > 0 && DatasetBuilder.heldOut(p.source(), seed, holdout) ? held : kept).add(p);
            if (kept.isEmpty() || (holdoutOut != null && held.isEmpty()))
                throw new NshapException("--holdout " + holdout + " leaves one split empty (" + kept.size() + " kept, " + held.size() + " held out)");
            // Both files are complete before either is published, and each must load.
            String keptText = jsonl(kept), heldText = holdoutOut == null ? null : jsonl(held);
            AtomicFiles.writeString(out, keptText);
            Dataset.load(out);
            if (holdoutOut != null) {
                AtomicFiles.writeString(holdoutOut, heldText);
                Dataset.load(holdoutOut);
            }
            System.err.printf(Locale.ROOT, "[nshap] %d topic texts vs %d others; %d cuts at %d keywords%n",
                    r.topicDocuments(), r.backgroundDocuments(), r.candidates(), r.keywords().size());
            StringBuilder kw = new StringBuilder("keywords (" + o.scoring.name().toLowerCase(Locale.ROOT).replace('_', '-') + "):");
            for (DatasetBuilder.Keyword k : r.keywords())
                kw.append(String.format(Locale.ROOT, " %s(%.1f)", k.word(), k.score()));
            System.out.println(kw);
            System.out.printf(Locale.ROOT, "wrote %s: %d prompts%n", out, kept.size());
            if (holdoutOut != null) System.out.printf(Locale.ROOT, "wrote %s: %d held-out prompts%n", holdoutOut, held.size());
            return 0;
        }

        private static String jsonl(List<Prompt> prompts) {
            StringBuilder sb = new StringBuilder();
            for (Prompt p : prompts) {
                ObjectNode n = Json.MAPPER.createObjectNode();
                n.put("id", p.id());
                n.put("topic", p.topic());
                n.put("prompt", p.prompt());
                n.put("answer", p.answer());
                if (p.foil() != null) n.put("foil", p.foil());
                n.put("source", p.source());
                sb.append(n.toString()).append('\n');
            }
            return sb.toString();
        }
    }
}
