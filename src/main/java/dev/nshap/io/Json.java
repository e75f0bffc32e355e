package dev.nshap.io;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectReader;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.nshap.NshapException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * One shared Jackson mapper, and the one place every JSON input is read: bounded in nesting depth and size, one
 * document per file (or per JSONL line), and every reading error a one-line {@link NshapException} naming the file
 * and line.
 */
public final class Json {
    /**
     * Deeper than any file nshap writes or reads (a result nests 4 levels); far below the depth at which a
     * recursive tree build could exhaust the stack.
     */
    public static final int MAX_DEPTH = 64;
    /** Config, game, cluster, checkpoint and result files: the biggest real one (a checkpoint of 100k players) is tens of MB. */
    public static final long MAX_FILE_BYTES = 512L << 20;

    public static final ObjectMapper MAPPER = new ObjectMapper(JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(MAX_DEPTH).build()).build())
            .enable(SerializationFeature.INDENT_OUTPUT);

    /** Exactly one JSON value: trailing tokens (a second object, garbage) are an error, not silently dropped. */
    private static final ObjectReader ONE = MAPPER.readerFor(JsonNode.class)
            .with(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .with(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private Json() {}

    public static JsonNode readTree(Path file) {
        long size;
        try {
            size = Files.size(file);
        } catch (NoSuchFileException e) {
            throw new NshapException(file + ": no such file");
        } catch (IOException e) {
            throw new NshapException(file + ": cannot read: " + e.getMessage());
        }
        if (Files.isDirectory(file)) throw new NshapException(file + ": is a directory, not a JSON file");
        if (size > MAX_FILE_BYTES)
            throw new NshapException(file + ": " + size + " bytes is too large for a JSON file nshap reads (at most "
                    + (MAX_FILE_BYTES >> 20) + " MiB)");
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new NshapException(file + ": no such file");
        } catch (IOException e) {
            throw new NshapException(file + ": cannot read: " + e.getMessage());
        }
        return parse(text, file.toString());
    }

    /**
     * Parses one JSON document; {@code where} names it in errors (a file, or {@code file:line} for JSONL).
     * Empty input is an error too (Jackson would return a MissingNode that later reads as null).
     */
    public static JsonNode parse(String text, String where) {
        JsonNode n;
        try {
            n = ONE.readValue(text);
        } catch (JsonProcessingException e) {
            String m = e.getOriginalMessage();
            if (m != null && m.startsWith("Trailing token"))
                m = "more than one JSON value: something follows the first (one document per file, one object per JSONL line)";
            throw new NshapException(where + ": invalid JSON" + at(e) + ": " + m);
        } catch (IOException e) {
            throw new NshapException(where + ": cannot read: " + e.getMessage());
        } catch (StackOverflowError e) {
            throw new NshapException(where + ": invalid JSON: nested too deeply");
        }
        if (n == null || n.isMissingNode()) throw new NshapException(where + ": empty, not a JSON document");
        return n;
    }

    /** One JSONL line: exactly one JSON object, nothing before or after it on the line. */
    public static JsonNode parseLine(String line, String where) {
        JsonNode n = parse(line, where);
        if (!n.isObject()) throw new NshapException(where + ": not a JSON object");
        return n;
    }

    private static String at(JsonProcessingException e) {
        JsonLocation l = e.getLocation();   // null for some constraint violations (nesting depth)
        return l == null || l.getLineNr() < 1 ? "" : " at line " + l.getLineNr();
    }

    public static <T> T read(Path file, Class<T> type) {
        try {
            return MAPPER.treeToValue(readTree(file), type);
        } catch (JsonProcessingException e) {
            throw new NshapException(file + ": " + e.getOriginalMessage());
        }
    }

    public static String write(Object value) {
        try {
            return MAPPER.writeValueAsString(value) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Serialises and writes atomically. */
    public static void writeFile(Path file, Object value) {
        AtomicFiles.writeString(file, write(value));
    }
}
