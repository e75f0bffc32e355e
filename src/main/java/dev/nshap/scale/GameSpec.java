package dev.nshap.scale;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.cli.NeuronGameOptions;
import dev.nshap.eval.Dataset;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import dev.nshap.shapley.Coalition;
import dev.nshap.shapley.Game;
import dev.nshap.shapley.SyntheticGames;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * What a worker needs to build the driver's game, as JSON: a synthetic game by its definition, or the GPT-2
 * neuron game by its options, the SHA-256 of the weights the driver uses, and the dataset itself (prompt sets are
 * small, so workers need no shared file system), with its SHA-256. A worker builds the game with the same code as a
 * single process, so its values are the same bits (on the same backend).
 */
public final class GameSpec {
    private GameSpec() {}

    /** A synthetic game; {@code sleepMicros} per coalition stands in for a model's evaluation cost (benchmarks). */
    public static byte[] synthetic(Game g, long sleepMicros) {
        if (!(g instanceof SyntheticGames.Synthetic s))
            throw new NshapException("this game cannot be sent to workers (only synthetic and GPT-2 neuron games can)");
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("kind", "synthetic");
        o.set("game", s.toJson());
        o.put("sleep_us", sleepMicros);
        return bytes(o);
    }

    public static byte[] neurons(NeuronGameOptions opt, String weightsSha256) {
        byte[] data;
        try {
            data = Files.readAllBytes(opt.dataset);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("kind", "gpt2-neurons");
        o.put("weights_sha256", weightsSha256);
        Path name = opt.dataset.getFileName();
        o.put("dataset_name", name == null ? "dataset.jsonl" : name.toString());
        o.put("dataset_sha256", sha256(data));
        o.put("dataset", Base64.getEncoder().encodeToString(data));
        if (opt.topic != null) o.put("topic", opt.topic);
        o.put("players", opt.players);
        o.put("group_size", opt.groupSize);
        o.put("metric", opt.metric);
        o.put("ablation", opt.ablation);
        o.put("subsample", opt.subsample);
        o.put("max_tokens", opt.maxTokens);
        return bytes(o);
    }

    static byte[] bytes(ObjectNode o) {
        try {
            return Json.MAPPER.writeValueAsBytes(o);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The id tasks name the game by: the SHA-256 of its spec. */
    static String id(byte[] spec) { return sha256(spec); }

    static String summary(JsonNode spec) {
        return switch (spec.path("kind").asText()) {
            case "synthetic" -> "synthetic " + spec.path("game").path("type").asText() + " game";
            case "gpt2-neurons" -> "GPT-2 neuron game on " + spec.path("dataset_name").asText() + " ("
                    + spec.path("players").asText() + ", metric " + spec.path("metric").asText() + ")";
            default -> "unknown game";
        };
    }

    /** On a worker: the game the spec describes, refused (one line) when the worker's model is not the driver's. */
    static Game build(JsonNode spec, Worker w) {
        switch (spec.path("kind").asText()) {
            case "synthetic" -> {
                Game g = SyntheticGames.parse(spec.path("game"));
                long us = spec.path("sleep_us").asLong();
                return us > 0 ? new Slow(g, us) : g;
            }
            case "gpt2-neurons" -> {
                byte[] data = Base64.getDecoder().decode(spec.path("dataset").asText());
                String name = spec.path("dataset_name").asText();
                if (!sha256(data).equals(spec.path("dataset_sha256").asText()))
                    throw new NshapException("dataset " + name + " arrived damaged: its SHA-256 is not the driver's");
                Checkpoint.LoadedModel model = w.model();
                String want = spec.path("weights_sha256").asText();
                if (!model.weightsSha256().equals(want))
                    throw new NshapException("model mismatch: this worker's weights (" + model.dir() + ") have SHA-256 "
                            + model.weightsSha256() + ", the driver's " + want);
                NeuronGameOptions o = new NeuronGameOptions();
                o.topic = spec.hasNonNull("topic") ? spec.get("topic").asText() : null;
                o.players = spec.path("players").asText();
                o.groupSize = spec.path("group_size").asInt();
                o.metric = spec.path("metric").asText();
                o.ablation = spec.path("ablation").asText();
                o.subsample = spec.path("subsample").asInt();
                o.maxTokens = spec.path("max_tokens").asInt();
                Path dir = null;
                try {
                    dir = Files.createTempDirectory("nshap-worker");
                    o.dataset = dir.resolve(name.replaceAll("[^A-Za-z0-9._-]", "_"));
                    Files.write(o.dataset, data);
                    Dataset d = Dataset.load(o.dataset, o.topic);
                    return o.build(d, model, weights -> w.backend());
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                } finally {
                    if (dir != null) {
                        try {
                            Files.deleteIfExists(o.dataset);
                            Files.deleteIfExists(dir);
                        } catch (IOException ignored) { }
                    }
                }
            }
            default -> throw new NshapException("unknown game kind '" + spec.path("kind").asText() + "'");
        }
    }

    /** A game that also sleeps a fixed time per coalition: a stand-in for a model's cost in benchmarks and tests. */
    public static final class Slow implements Game {
        private final Game g;
        private final long micros;

        public Slow(Game g, long micros) {
            this.g = g;
            this.micros = micros;
        }

        @Override public int players() { return g.players(); }

        @Override public double[] values(List<Coalition> cs) {
            long ns = micros * 1000L * cs.size();
            long end = System.nanoTime() + ns;
            try {
                while (true) {
                    long left = end - System.nanoTime();
                    if (left <= 0) break;
                    Thread.sleep(left / 1_000_000, (int) (left % 1_000_000));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return g.values(cs);
        }

        @Override public String playerName(int i) { return g.playerName(i); }
        @Override public Map<String, Object> describe() { return g.describe(); }
        @Override public double[] exactValues() { return g.exactValues(); }
    }

    static String sha256(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static String utf8(byte[] b) { return new String(b, StandardCharsets.UTF_8); }
}
