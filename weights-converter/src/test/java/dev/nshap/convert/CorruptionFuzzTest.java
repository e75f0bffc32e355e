package dev.nshap.convert;

import dev.nshap.NshapException;
import dev.nshap.model.GPT2Weights;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Random damage to each format must end in a clean refusal (NshapException: one line, exit 2) or, where the
 * damage only touched weight values, a successful read; never another exception type escaping from a reader.
 */
class CorruptionFuzzTest {
    @TempDir Path tmp;

    static void flip(byte[] b, Random r, int lo) {
        int n = 1 + r.nextInt(3);
        for (int i = 0; i < n; i++) {
            int at = lo + r.nextInt(b.length - lo);
            b[at] = r.nextInt(4) == 0 ? (byte) r.nextInt(256) : (byte) (b[at] ^ (1 << r.nextInt(8)));
        }
    }

    static int tryLoad(Path from) {
        try {
            Converter.load(from);
            return 0;
        } catch (NshapException e) {
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
            return 1;
        }
    }

    @Test void damagedPicklesAreRefusedCleanly() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 41);
        Fixtures.TorchDict d = Fixtures.torchDict(w, "F32", true);
        byte[] pickle = Fixtures.statePickle(d.entries, false);
        Path dir = Files.createDirectories(tmp.resolve("pt"));
        Files.writeString(dir.resolve("config.json"), dev.nshap.io.Json.write(w.config.toJson()));
        Random r = new Random(7);
        int refused = 0;
        for (int i = 0; i < 120; i++) {
            byte[] p = pickle.clone();
            flip(p, r, 2);
            Fixtures.writeTorchZip(dir.resolve("pytorch_model.bin"), "archive", p, d.storages);
            refused += tryLoad(dir);
        }
        assertTrue(refused > 60, "most pickle damage is structural: " + refused);
    }

    @Test void damagedLegacyFilesAreRefusedCleanly() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 42);
        Fixtures.TorchDict d = Fixtures.torchDict(w, "F32", true);
        Path dir = Files.createDirectories(tmp.resolve("legacy"));
        Files.writeString(dir.resolve("config.json"), dev.nshap.io.Json.write(w.config.toJson()));
        Path f = dir.resolve("pytorch_model.bin");
        Fixtures.writeTorchLegacy(f, d.entries, d.storages, d.elemSize);
        byte[] good = Files.readAllBytes(f);
        int pickles = good.length - d.storages.values().stream().mapToInt(b -> b.length + 8).sum();
        Random r = new Random(8);
        for (int i = 0; i < 80; i++) {
            byte[] b = good.clone();
            flip(b, r, 0);
            if (r.nextBoolean()) { // keep the damage in the pickles, where the structure is
                b = good.clone();
                byte[] head = java.util.Arrays.copyOf(b, pickles);
                flip(head, r, 0);
                System.arraycopy(head, 0, b, 0, pickles);
            }
            Files.write(f, b);
            tryLoad(dir);
        }
    }

    @Test void damagedLlmcHeadersAreRefusedCleanly() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 43);
        Path f = tmp.resolve("m.bin");
        Fixtures.writeLlmc(f, w, false, 104);
        byte[] good = Files.readAllBytes(f);
        Random r = new Random(9);
        for (int i = 0; i < 80; i++) {
            byte[] b = good.clone();
            byte[] head = java.util.Arrays.copyOf(b, 32);
            flip(head, r, 4); // keep the magic so the llm.c reader is the one tested
            System.arraycopy(head, 0, b, 0, 32);
            Files.write(f, b);
            tryLoad(f);
        }
    }

    @Test void damagedSafetensorsHeadersAreRefusedCleanly() throws Exception {
        GPT2Weights w = Fixtures.weights(Fixtures.config(), 44);
        Path dir = tmp.resolve("st");
        dev.nshap.model.Checkpoint.write(dir, w, "f32", null);
        Path f = dir.resolve("model.safetensors");
        byte[] good = Files.readAllBytes(f);
        long n = java.nio.ByteBuffer.wrap(good).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(0);
        Random r = new Random(10);
        for (int i = 0; i < 80; i++) {
            byte[] b = good.clone();
            byte[] head = java.util.Arrays.copyOf(b, (int) n + 8);
            flip(head, r, 0);
            System.arraycopy(head, 0, b, 0, head.length);
            Files.write(f, b);
            tryLoad(dir);
        }
    }
}
