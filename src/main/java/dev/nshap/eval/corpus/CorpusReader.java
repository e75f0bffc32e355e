package dev.nshap.eval.corpus;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;

/**
 * Reads labelled (or unlabelled) text corpora as documents: CSV (RFC 4180: quoted fields, doubled quotes,
 * line breaks inside quotes; any one-character delimiter; with or without a header), JSONL (one object per line)
 * and plain lines (one document per non-blank line).
 * <p>
 * Columns are named by header name, or by 1-based position (DBpedia-14's CSV has no header: label is column 1, text
 * column 2). Without a label column every document's label is the file's name without its extension, so a corpus
 * split into one file per class needs no labels. Every error names the file and line.
 */
public final class CorpusReader {

    public enum Format {
        CSV, JSONL, LINES;

        public static Format parse(String s) {
            return switch (s.trim().toLowerCase(Locale.ROOT)) {
                case "csv", "tsv" -> CSV;
                case "jsonl", "ndjson" -> JSONL;
                case "lines", "txt", "text" -> LINES;
                default -> throw new NshapException("unknown corpus format '" + s + "' (csv|jsonl|lines)");
            };
        }

        /** From the file name: .csv/.tsv, .jsonl/.ndjson, anything else plain lines. */
        public static Format guess(Path file) {
            String n = file.getFileName().toString().toLowerCase(Locale.ROOT);
            if (n.endsWith(".csv") || n.endsWith(".tsv")) return CSV;
            if (n.endsWith(".jsonl") || n.endsWith(".ndjson")) return JSONL;
            return LINES;
        }
    }

    /**
     * One document.
     *
     * @param source file name and the line its record starts on ({@code test.csv:17})
     */
    public record Document(String text, String label, String source, long line) {}

    /**
     * How to read a corpus.
     *
     * @param format      null: guessed from the file name
     * @param textColumn  CSV: header name or 1-based position (default "text"), or several joined by '+' (their
     *                    non-blank fields are joined by a newline per record, e.g. "title+description"); JSONL: field (default "text")
     * @param labelColumn null: the label is the file's stem
     * @param delimiter   CSV field separator (default ',', and tab for .tsv)
     * @param header      CSV: true/false, or null to decide: a header when a column is given by name
     */
    public record Options(Format format, String textColumn, String labelColumn, Character delimiter, Boolean header) {
        public static Options defaults() { return new Options(null, null, null, null, null); }
    }

    private CorpusReader() {}

    public static List<Document> read(Path file, Options o) {
        List<Document> out = new ArrayList<>();
        forEach(file, o, out::add);
        return out;
    }

    /** Streams the documents of a file in order (blank texts are skipped). */
    public static void forEach(Path file, Options o, Consumer<Document> sink) {
        Format f = o.format() != null ? o.format() : Format.guess(file);
        String stem = file.getFileName().toString().replaceFirst("\\.[^.]+$", "");
        try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            switch (f) {
                case CSV -> readCsv(file, in, o, stem, sink);
                case JSONL -> readJsonl(file, in, o, stem, sink);
                case LINES -> {
                    if (o.labelColumn() != null)
                        throw new NshapException(file + ": plain-lines corpora have no columns; the label is the file name");
                    String line;
                    long n = 0;
                    while ((line = in.readLine()) != null) {
                        n++;
                        if (n == 1 && line.startsWith("\uFEFF")) line = line.substring(1);
                        if (!line.isBlank()) sink.accept(new Document(line.strip(), stem, name(file) + ":" + n, n));
                    }
                }
            }
        } catch (NoSuchFileException e) {
            throw new NshapException(file + ": no such corpus file");
        } catch (java.nio.charset.MalformedInputException e) {
            throw new NshapException(file + ": not UTF-8 text");
        } catch (IOException e) {
            throw new NshapException(file + ": cannot read: " + e.getMessage());
        }
    }

    private static String name(Path file) {
        Path parent = file.toAbsolutePath().normalize().getParent();
        return (parent != null && parent.getFileName() != null ? parent.getFileName() + "/" : "") + file.getFileName();
    }

    private static void readJsonl(Path file, BufferedReader in, Options o, String stem, Consumer<Document> sink) throws IOException {
        String textKey = o.textColumn() != null ? o.textColumn() : "text";
        String line;
        long n = 0;
        while ((line = in.readLine()) != null) {
            n++;
            if (line.isBlank()) continue;
            String where = file + ":" + n;
            JsonNode node = Json.parseLine(line, where);
            JsonNode t = node.get(textKey);
            if (t == null || t.isNull()) throw new NshapException(where + ": no \"" + textKey + "\" field");
            String label = stem;
            if (o.labelColumn() != null) {
                JsonNode l = node.get(o.labelColumn());
                if (l == null || l.isNull()) throw new NshapException(where + ": no \"" + o.labelColumn() + "\" field");
                label = l.asText();
            }
            String text = t.asText();
            if (!text.isBlank()) sink.accept(new Document(text, label, name(file) + ":" + n, n));
        }
    }

    private static void readCsv(Path file, BufferedReader in, Options o, String stem, Consumer<Document> sink) throws IOException {
        char delim = o.delimiter() != null ? o.delimiter()
                : file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".tsv") ? '\t' : ',';
        String textCol = o.textColumn() != null ? o.textColumn() : "text";
        String labelCol = o.labelColumn();
        boolean header = o.header() != null ? o.header() : !isPosition(textCol) || (labelCol != null && !isPosition(labelCol));
        CsvRecords rec = new CsvRecords(in, delim, file);
        String[] textCols = textCol.split("\\+");
        int[] textIdx = new int[textCols.length];
        int labelIdx = -1;
        if (header) {
            List<String> h = rec.next();
            if (h == null) throw new NshapException(file + ": empty CSV (no header)");
            if (!h.isEmpty() && h.get(0).startsWith("\uFEFF")) h.set(0, h.get(0).substring(1));
            for (int i = 0; i < textCols.length; i++) textIdx[i] = column(h, textCols[i], file);
            if (labelCol != null) labelIdx = column(h, labelCol, file);
        } else {
            for (int i = 0; i < textCols.length; i++) textIdx[i] = position(textCols[i], file);
            if (labelCol != null) labelIdx = position(labelCol, file);
        }
        int need = labelIdx + 1;
        for (int t : textIdx) need = Math.max(need, t + 1);
        List<String> r;
        while ((r = rec.next()) != null) {
            long line = rec.recordLine;
            if (r.size() == 1 && r.get(0).isEmpty()) continue; // blank line
            if (r.size() < need)
                throw new NshapException(file + ":" + line + ": " + r.size() + " fields, the text/label columns need " + need);
            StringBuilder text = new StringBuilder();
            for (int t : textIdx) {
                String f = r.get(t);
                if (f.isBlank()) continue;
                if (text.length() > 0) text.append('\n');
                text.append(textIdx.length > 1 ? f.strip() : f);
            }
            String label = labelIdx >= 0 ? r.get(labelIdx).strip() : stem;
            if (!text.toString().isBlank()) sink.accept(new Document(text.toString(), label, name(file) + ":" + line, line));
        }
    }

    private static boolean isPosition(String c) { return c.matches("\\d+"); }

    private static int position(String c, Path file) {
        if (!isPosition(c))
            throw new NshapException(file + ": column '" + c + "' is a name, but the file is read without a header (--header yes?)");
        int p = dev.nshap.backend.NeuronId.number(c, "column", c);
        if (p < 1) throw new NshapException(file + ": column positions start at 1");
        return p - 1;
    }

    private static int column(List<String> header, String c, Path file) {
        for (int i = 0; i < header.size(); i++) if (header.get(i).strip().equals(c)) return i;
        if (isPosition(c)) {
            int p = c.length() > 9 ? -1 : Integer.parseInt(c);
            if (p >= 1 && p <= header.size()) return p - 1;
        }
        throw new NshapException(file + ": no column '" + c + "' in the header (" + String.join(", ", header) + ")");
    }

    /** RFC 4180 records from a reader; {@link #recordLine} is the line the last record started on. */
    static final class CsvRecords {
        private final Reader in;
        private final char delim;
        private final Path file;
        private long line = 1;
        long recordLine;
        private int peeked = -2;

        CsvRecords(Reader in, char delim, Path file) {
            this.in = in;
            this.delim = delim;
            this.file = file;
        }

        private int read() throws IOException {
            if (peeked != -2) {
                int c = peeked;
                peeked = -2;
                return c;
            }
            return in.read();
        }

        private int peek() throws IOException {
            if (peeked == -2) peeked = in.read();
            return peeked;
        }

        /** The next record's fields, or null at the end of the input. */
        List<String> next() throws IOException {
            int c = read();
            if (c == -1) return null;
            recordLine = line;
            List<String> fields = new ArrayList<>();
            StringBuilder f = new StringBuilder();
            boolean quoted = false, wasQuoted = false;
            while (true) {
                if (quoted) {
                    if (c == -1) throw new NshapException(file + ":" + recordLine + ": unterminated quoted field");
                    if (c == '"') {
                        if (peek() == '"') {
                            read();
                            f.append('"');
                        } else quoted = false;
                    } else {
                        if (c == '\n') line++;
                        f.append((char) c);
                    }
                } else if (c == -1 || c == '\n' || c == '\r') {
                    if (c == '\r' && peek() == '\n') read();
                    if (c != -1) line++;
                    fields.add(f.toString());
                    return fields;
                } else if (c == delim) {
                    fields.add(f.toString());
                    f.setLength(0);
                    wasQuoted = false;
                } else if (c == '"' && f.isEmpty() && !wasQuoted) {
                    quoted = true;
                    wasQuoted = true;
                } else {
                    f.append((char) c);
                }
                c = read();
            }
        }
    }
}
