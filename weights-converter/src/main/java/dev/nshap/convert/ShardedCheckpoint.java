package dev.nshap.convert;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;
import dev.nshap.model.SafeTensors;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Sharded Hugging Face checkpoints: {@code model.safetensors.index.json} or {@code pytorch_model.bin.index.json},
 * whose {@code weight_map} maps each tensor name to the shard file (in the same directory) that holds it. The map
 * and the shards must agree exactly: every tensor of a shard is listed for that shard, every listed tensor exists.
 */
public final class ShardedCheckpoint {
    private static final Pattern SHARD = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,200}");

    private ShardedCheckpoint() {}

    /** Shard file names in first-use order, validated to be plain names inside the index's directory. */
    public static Map<String, List<String>> shards(Path index) {
        JsonNode root = Json.readTree(index);
        JsonNode wm = root == null ? null : root.get("weight_map");
        if (wm == null || !wm.isObject() || wm.isEmpty())
            throw new NshapException(index + ": no weight_map object (not a sharded checkpoint index)");
        Map<String, List<String>> byShard = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = wm.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isTextual()) throw new NshapException(index + ": weight_map entry '" + e.getKey() + "' is not a file name");
            String f = e.getValue().asText();
            if (!SHARD.matcher(f).matches() || f.contains(".."))
                throw new NshapException(index + ": shard name '" + f + "' is not a plain file name in the index's directory (path traversal?)");
            byShard.computeIfAbsent(f, k -> new ArrayList<>()).add(e.getKey());
        }
        return byShard;
    }

    public static List<SourceTensor> readSafetensors(Path index) {
        Path dir = index.toAbsolutePath().getParent();
        List<SourceTensor> out = new ArrayList<>();
        Set<String> seen = new LinkedHashSet<>();
        for (Map.Entry<String, List<String>> e : shards(index).entrySet()) {
            Path shard = dir.resolve(e.getKey());
            if (!Files.isRegularFile(shard)) throw new NshapException(index + ": shard " + e.getKey() + " is missing");
            SafeTensors st = SafeTensors.open(shard);
            agree(index, e.getKey(), e.getValue(), st.names(), seen);
            for (String name : st.names())
                out.add(SourceTensor.plain(name, st.shape(name), st.dtype(name), dst -> st.readFloats(name, dst, 0)));
        }
        return out;
    }

    public static List<SourceTensor> readTorch(Path index) {
        Path dir = index.toAbsolutePath().getParent();
        List<SourceTensor> out = new ArrayList<>();
        Set<String> seen = new LinkedHashSet<>();
        for (Map.Entry<String, List<String>> e : shards(index).entrySet()) {
            Path shard = dir.resolve(e.getKey());
            if (!Files.isRegularFile(shard)) throw new NshapException(index + ": shard " + e.getKey() + " is missing");
            List<SourceTensor> ts = Converter.readTorchFile(shard);
            List<String> names = new ArrayList<>();
            for (SourceTensor t : ts) names.add(t.name());
            agree(index, e.getKey(), e.getValue(), names, seen);
            // Storage keys are per file: qualify them so views in different shards never look like aliases.
            for (SourceTensor t : ts)
                out.add(new SourceTensor(t.name(), t.shape(), t.dtype(), t.reader(), e.getKey() + ":" + t.storage(), t.begin(), t.last()));
        }
        return out;
    }

    private static void agree(Path index, String shard, List<String> listed, List<String> actual, Set<String> seen) {
        Map<String, Boolean> has = new HashMap<>();
        for (String n : actual) has.put(n, true);
        for (String n : listed)
            if (!has.containsKey(n)) throw new NshapException(index + ": weight_map puts '" + n + "' in " + shard + ", which does not hold it");
        Set<String> l = new LinkedHashSet<>(listed);
        for (String n : actual) {
            if (!l.contains(n)) throw new NshapException(index + ": shard " + shard + " holds '" + n + "', which weight_map does not list for it");
            if (!seen.add(n)) throw new NshapException(index + ": tensor '" + n + "' appears in more than one shard");
        }
    }
}
