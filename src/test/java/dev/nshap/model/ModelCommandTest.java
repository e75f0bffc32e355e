package dev.nshap.model;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.io.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;

import static org.junit.jupiter.api.Assertions.*;

class ModelCommandTest {
    @TempDir Path tmp;

    private Path configFile() throws Exception {
        Path f = tmp.resolve("cfg.json");
        Files.writeString(f, "{\"n_layer\": 3, \"n_head\": 2, \"n_embd\": 16, \"n_positions\": 24, \"vocab_size\": 40,"
                + " \"layer_norm_epsilon\": 1e-5, \"activation_function\": \"gelu_new\"}");
        return f;
    }

    @Test void initWritesALoadableSeededCheckpointAndInspectDescribesIt() throws Exception {
        Path out = tmp.resolve("m");
        Cli r = Cli.run("model", "init", "--config", configFile().toString(), "--seed", "5", "--out", out.toString(), "--dtype", "bf16");
        assertEquals(0, r.code(), r.err());
        Checkpoint.LoadedModel m = Checkpoint.load(out);
        assertEquals(new GPT2Config(3, 2, 16, 24, 40, 1e-5, "gelu_new"), m.config());
        assertTrue(m.dtypes().values().stream().allMatch("BF16"::equals));
        String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(out.resolve("model.safetensors"))));
        assertTrue(r.out().contains(sha), r.out());
        // The weights are ModelInit's for seed 5, stored as bf16.
        GPT2Weights want = ModelInit.random(m.config(), 5);
        for (int i = 0; i < want.wte.length; i++)
            assertEquals(SafeTensors.bf16ToFloat(SafeTensors.floatToBf16(want.wte[i])), m.weights().wte[i]);

        Cli again = Cli.run("model", "init", "--config", configFile().toString(), "--seed", "5", "--out", tmp.resolve("m2").toString(), "--dtype", "bf16");
        assertEquals(0, again.code());
        assertArrayEquals(Files.readAllBytes(out.resolve("model.safetensors")), Files.readAllBytes(tmp.resolve("m2/model.safetensors")));

        Cli i = Cli.run("model", "inspect", out.toString());
        assertEquals(0, i.code(), i.err());
        // C=16, H=64, L=3, V=40, P=24: V*C + P*C + L*(12C^2 + 13C) + 2C
        long params = 40 * 16 + 24 * 16 + 3 * (12 * 16 * 16 + 13 * 16) + 2 * 16;
        assertTrue(i.out().contains("parameters   " + params), i.out());
        assertTrue(i.out().contains("neurons      192 (3 layers x 64)"), i.out());
        assertTrue(i.out().contains("BF16 x 40"), i.out());
        assertTrue(i.out().contains("sha256       " + sha), i.out());
        assertTrue(i.out().contains("n_layer=3 n_head=2 n_embd=16 n_positions=24 vocab_size=40"), i.out());

        Cli j = Cli.run("model", "inspect", "--json", out.toString());
        JsonNode n = Json.MAPPER.readTree(j.out());
        assertEquals(params, n.get("parameters").asLong());
        assertEquals(192, n.get("neurons").asLong());
        assertEquals(sha, n.get("sha256").asText());
        assertEquals(40, n.get("dtypes").get("BF16").asInt());
        assertEquals(3, n.get("config").get("n_layer").asInt());
    }

    @Test void presetTinyMatchesItsConfig() throws Exception {
        Path out = tmp.resolve("tiny");
        assertEquals(0, Cli.run("model", "init", "--config", "tiny", "--seed", "1", "--out", out.toString()).code());
        assertEquals(GPT2Config.preset("tiny"), Checkpoint.load(out).config());
    }

    @Test void badArgumentsExitWithCode2AndOneLine() throws Exception {
        Cli r = Cli.run("model", "init", "--config", "huge", "--seed", "1", "--out", tmp.resolve("x").toString());
        assertEquals(2, r.code());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().contains("'huge' is neither"), r.err());
        assertFalse(Files.exists(tmp.resolve("x")));
        r = Cli.run("model", "init", "--config", "tiny", "--seed", "1", "--out", tmp.resolve("y").toString(), "--dtype", "int8");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown dtype 'int8'"), r.err());
        assertFalse(Files.exists(tmp.resolve("y")));
    }
}
