package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.eval.corpus.CorpusReader;
import dev.nshap.eval.corpus.TokenCorpus;
import dev.nshap.eval.corpus.TrainingCorpora;
import dev.nshap.model.JTokkitTokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code nshap datasets tokenize}: the training corpora as GPT-2 token files for a GPU machine without a tokenizer. */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        description = {"Tokenize training text with GPT-2's BPE into uint16 token files: OUT (train), OUT.val.bin"
                + " (held-out validation) and OUT.json (counts per source, licences, the split rule).",
                "Every document is preceded by <|endoftext|> (50256). Default input: every source of the shared corpora"
                        + " folder (../shared/corpora beside the repository)."})
public final class DatasetsTokenizeCommand implements Callable<Integer> {

    @Option(names = "--corpora", paramLabel = "DIR",
            description = "shared corpora folder (layout of its README.md); default: ../shared/corpora beside the repository")
    Path corpora;

    @Option(names = "--sources", split = ",", paramLabel = "NAME",
            description = "sources of --corpora to read (default: all: dbpedia14, agnews, brown, davidson-hate-offensive, ethos, jigsaw-sample, toxigen)")
    List<String> sources;

    /** --corpus FILE (instead of --corpora) with its --format/--text-column/--delimiter/--header, as `datasets build` reads them. */
    @picocli.CommandLine.Mixin DatasetsCommand.CorpusOptions corpusOptions;

    @Option(names = "--val-fraction", paramLabel = "F",
            description = "share of documents held out for validation, for every source (default: 0.10 for dbpedia14, 0.02 otherwise)")
    Double valFraction;

    @Option(names = "--seed", defaultValue = "0", description = "seed of the split and the document order (default: ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--out", required = true, paramLabel = "FILE.bin", description = "train token file; .val.bin and .json go beside it")
    Path out;

    @Override public Integer call() {
        long t0 = System.nanoTime();
        if (valFraction != null && (valFraction < 0 || valFraction >= 1))
            throw new NshapException("--val-fraction must be in [0, 1), got " + valFraction);
        List<TokenCorpus.SourceDocs> docs = new ArrayList<>();
        String origin;
        List<Path> corpus = corpusOptions.corpus;
        if (corpus != null && !corpus.isEmpty()) {
            if (corpora != null || sources != null) throw new NshapException("give either --corpus FILE or --corpora DIR, not both");
            CorpusReader.Options o = corpusOptions.options();
            for (Path p : corpus) {
                List<String> texts = new ArrayList<>();
                CorpusReader.forEach(p, o, d -> texts.add(TrainingCorpora.clean(d.text())));
                texts.removeIf(String::isBlank);
                if (texts.isEmpty()) throw new NshapException(p + ": the corpus holds no texts");
                docs.add(new TokenCorpus.SourceDocs(p.getFileName().toString(), p.toString(), "unknown (given with --corpus)",
                        valFraction != null ? valFraction : 0.02, texts));
            }
            origin = corpus.toString();
        } else {
            if (corpusOptions.format != null || corpusOptions.textColumn != null || corpusOptions.delimiter != null
                    || corpusOptions.labelColumn != null)
                throw new NshapException("--format, --text-column, --label-column and --delimiter go with --corpus FILE");
            Path root = corpora != null ? corpora : defaultCorpora();
            if (!Files.isDirectory(root)) throw new NshapException("--corpora " + root + ": no such directory");
            List<TrainingCorpora.Source> chosen = new ArrayList<>();
            if (sources == null) chosen.addAll(TrainingCorpora.SOURCES);
            else for (String s : sources) chosen.add(TrainingCorpora.source(s.strip()));
            for (TrainingCorpora.Source s : chosen) {
                long ts = System.nanoTime();
                List<String> texts = TrainingCorpora.read(root, s);
                if (texts.isEmpty()) throw new NshapException(root.resolve(s.name()) + ": the source holds no texts");
                System.err.printf(Locale.ROOT, "[nshap] read %-24s %7d documents (%.1f s)%n", s.name(), texts.size(), (System.nanoTime() - ts) / 1e9);
                docs.add(new TokenCorpus.SourceDocs(s.name(), s.what(), s.licence(), valFraction != null ? valFraction : s.valFraction(), texts));
            }
            origin = root.toAbsolutePath().normalize().toString();
        }
        TokenCorpus.Result r = TokenCorpus.build(docs, JTokkitTokenizer.GPT2, seed);
        if (r.val().length == 0)
            System.err.println("[nshap] WARNING: no document fell into the validation split (corpus too small or --val-fraction 0)");
        double secs = (System.nanoTime() - t0) / 1e9;
        ObjectNode j = TokenCorpus.write(r, out, "r50k_base (GPT-2 BPE, via jtokkit)", origin, secs);
        System.out.printf(Locale.ROOT, "%-24s %9s %9s %11s %9s %11s%n", "source", "docs", "dups", "train tok", "val docs", "val tok");
        for (TokenCorpus.SourceStats s : r.sources())
            System.out.printf(Locale.ROOT, "%-24s %9d %9d %11d %9d %11d%n", s.name(), s.documentsRead(), s.duplicatesDropped(),
                    s.trainTokens(), s.valDocuments(), s.valTokens());
        System.out.printf(Locale.ROOT, "wrote %s (%d tokens, %d documents), %s (%d tokens, %d documents), %s in %.1f s%n",
                out, r.train().length, r.trainDocuments(), TokenCorpus.valPath(out), r.val().length, r.valDocuments(),
                TokenCorpus.summaryPath(out), j.get("seconds").asDouble());
        return 0;
    }

    /** ../shared/corpora beside the repository root (found like the tests find it), else relative to the working dir. */
    static Path defaultCorpora() {
        List<Path> starts = List.of(ModelOptions.projectRoot(), Path.of("").toAbsolutePath());
        for (Path start : starts)
            for (Path p = start.toAbsolutePath(); p != null; p = p.getParent()) {
                Path c = p.resolveSibling("shared").resolve("corpora");
                if (p.getParent() != null && Files.isDirectory(c)) return c;
            }
        return Path.of("..", "shared", "corpora");
    }
}
