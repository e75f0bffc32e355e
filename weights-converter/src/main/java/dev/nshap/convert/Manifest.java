package dev.nshap.convert;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * {@code manifest.json}: the SHA-256 and size of every file of a model directory, so a copy can be checked
 * ({@code nshap model verify}) before hours of attribution are spent on a silently corrupted file.
 */
public final class Manifest {
    public static final String FILE = "manifest.json";
    public static final String FORMAT = "nshap-manifest/1";
    private static final Pattern PLAIN = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,200}");

    private Manifest() {}

    /** Writes manifest.json for {@code files} (plain names inside dir); {@code source} describes the origin. */
    public static void write(Path dir, List<String> files, Map<String, String> source) {
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.put("format", FORMAT);
        if (source != null && !source.isEmpty()) {
            ObjectNode s = root.putObject("source");
            source.forEach(s::put);
        }
        ObjectNode fs = root.putObject("files");
        for (String f : files) {
            Path p = dir.resolve(f);
            ObjectNode o = fs.putObject(f);
            try {
                o.put("bytes", Files.size(p));
            } catch (IOException e) {
                throw new NshapException(p + ": cannot read: " + e.getMessage());
            }
            o.put("sha256", Checkpoint.sha256(p));
        }
        Json.writeFile(dir.resolve(FILE), root);
    }

    /** Checks every file the manifest lists; returns how many, or throws naming the first that differs. */
    public static int verify(Path dir) {
        Path mf = dir.resolve(FILE);
        if (!Files.isDirectory(dir)) throw new NshapException(dir + ": no such directory");
        if (!Files.isRegularFile(mf)) throw new NshapException(dir + ": no " + FILE + " to verify against");
        JsonNode root = Json.readTree(mf);
        JsonNode files = root == null ? null : root.get("files");
        if (files == null || !files.isObject() || files.isEmpty()) throw new NshapException(mf + ": no \"files\" object");
        int n = 0;
        for (Iterator<Map.Entry<String, JsonNode>> it = files.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            if (!PLAIN.matcher(name).matches() || name.contains(".."))
                throw new NshapException(mf + ": file name '" + name + "' is not a plain name inside the directory");
            JsonNode sha = e.getValue().get("sha256"), bytes = e.getValue().get("bytes");
            if (sha == null || !sha.isTextual() || !sha.asText().matches("[0-9a-f]{64}"))
                throw new NshapException(mf + ": '" + name + "' has no valid sha256");
            Path p = dir.resolve(name);
            if (!Files.isRegularFile(p)) throw new NshapException(dir + ": " + name + " is missing (listed in " + FILE + ")");
            try {
                if (bytes != null && bytes.canConvertToLong() && Files.size(p) != bytes.asLong())
                    throw new NshapException(dir + ": " + name + " has " + Files.size(p) + " bytes but the manifest says "
                            + bytes.asLong() + ": file differs");
            } catch (IOException ex) {
                throw new NshapException(p + ": cannot read: " + ex.getMessage());
            }
            String got = Checkpoint.sha256(p);
            if (!got.equals(sha.asText()))
                throw new NshapException(dir + ": " + name + " has SHA-256 " + got + " but the manifest says " + sha.asText()
                        + ": file differs");
            n++;
        }
        return n;
    }
}
