package dev.nshap.eval;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.Tokenizer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * A topic prompt set: JSONL, one {@code {"id","topic","prompt","answer","foil"?,"source"?}} per line.
 * Every problem is reported with its line number.
 */
public record Dataset(String name, Path file, List<Prompt> prompts) {

    public static Dataset load(Path file) { return load(file, null); }

    /** Loads a JSONL prompt set; with {@code topic} non-null, keeps only that topic (which must occur). */
    public static Dataset load(Path file, String topic) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new NshapException(file + ": no such dataset");
        } catch (IOException e) {
            throw new NshapException(file + ": cannot read: " + e.getMessage());
        }
        List<Prompt> out = new ArrayList<>();
        Set<String> ids = new HashSet<>();
        Set<String> topics = new TreeSet<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).strip();
            if (line.isEmpty()) continue;
            String where = file + ":" + (i + 1);
            JsonNode n = Json.parseLine(line, where);
            String id = text(n, "id", where, false);
            if (id == null) id = Integer.toString(i + 1);
            if (!ids.add(id)) throw new NshapException(where + ": duplicate id '" + id + "'");
            String t = text(n, "topic", where, true);
            String prompt = text(n, "prompt", where, true);
            String answer = text(n, "answer", where, true);
            String foil = text(n, "foil", where, false);
            String source = text(n, "source", where, false);
            topics.add(t);
            if (topic == null || topic.equals(t)) out.add(new Prompt(id, t, prompt, answer, foil, source));
        }
        if (topic != null && out.isEmpty())
            throw new NshapException(file + ": unknown topic '" + topic + "' (the file has: " + String.join(", ", topics) + ")");
        if (out.isEmpty()) throw new NshapException(file + ": the dataset has no prompts");
        String name = file.getFileName().toString().replaceFirst("\\.jsonl$", "");
        return new Dataset(topic == null ? name : name + ":" + topic, file, List.copyOf(out));
    }

    private static String text(JsonNode n, String key, String where, boolean required) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) {
            if (required) throw new NshapException(where + ": missing \"" + key + "\"");
            return null;
        }
        if (!v.isTextual() && !v.isNumber()) throw new NshapException(where + ": \"" + key + "\" must be a string");
        String s = v.asText();
        if (required && s.isBlank()) throw new NshapException(where + ": empty \"" + key + "\"");
        return s;
    }

    /** Where a prompt is in the file, for error messages: {@code file:line: prompt 'id'} (the line when it can be found). */
    public String where(Prompt p) {
        try {
            List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            for (int i = 0; i < lines.size(); i++) {
                String line = lines.get(i).strip();
                if (line.isEmpty()) continue;
                try {
                    JsonNode n = Json.parseLine(line, file.toString());
                    String id = n.hasNonNull("id") ? n.get("id").asText() : Integer.toString(i + 1);
                    if (id.equals(p.id())) return file + ":" + (i + 1) + ": prompt '" + p.id() + "'";
                } catch (NshapException ignored) { }
            }
        } catch (IOException ignored) { }
        return file + ": prompt '" + p.id() + "'";
    }

    /** The most common topic label (datasets normally hold one). */
    public String topic() {
        java.util.Map<String, Integer> count = new java.util.HashMap<>();
        for (Prompt p : prompts) count.merge(p.topic(), 1, Integer::sum);
        return count.entrySet().stream().max(java.util.Map.Entry.comparingByValue()).orElseThrow().getKey();
    }

    public TokenizedDataset tokenize(Tokenizer tok, GPT2Config cfg) {
        return TokenizedDataset.of(this, tok, cfg);
    }
}
