package dev.nshap.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.eval.corpus.TokenCorpus;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.SafeTensors;
import dev.nshap.train.Trainer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `nshap train` end to end on a tiny model: it learns, it resumes exactly, it refuses bad input. */
class TrainCommandTest {
    @TempDir static Path dir;
    static Path tokens;

    /** A corpus a model can learn and a unigram cannot: sentences over 40 words (ids 1..40, 0 separates), the next word
     *  mostly fixed by the last; a vocabulary of 64 keeps the test in seconds. */
    @BeforeAll static void corpus() throws Exception {
        Random r = new Random(11);
        char[] train = new char[20000], val = new char[2000];
        fill(train, r);
        fill(val, r);
        tokens = dir.resolve("tok.bin");
        Files.write(tokens, TokenCorpus.uint16le(train));
        Files.write(TokenCorpus.valPath(tokens), TokenCorpus.uint16le(val));
    }

    private static void fill(char[] a, Random r) {
        int w = 0;
        for (int i = 0; i < a.length; i++) {
            if (i % 25 == 0) { a[i] = 0; continue; }
            w = r.nextInt(10) == 0 ? r.nextInt(40) : (w * 7 + 3) % 40;
            a[i] = (char) (1 + w);
        }
    }

    record Run(int code, String out, String err) {}

    static synchronized Run cli(String... args) {
        PrintStream oldOut = System.out, oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    private static String[] tiny(Path out, String... more) {
        List<String> a = new java.util.ArrayList<>(List.of("train", "--tokens", tokens.toString(), "--out", out.toString(),
                "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--ctx", "16", "--vocab-size", "64", "--batch", "4", "--micro-batch", "2",
                "--lr", "1e-2", "--min-lr", "1e-3", "--warmup", "5", "--eval-every", "20", "--val-windows", "8",
                "--final-val-windows", "16", "--checkpoint-every", "7", "--log-every", "0", "--seed", "3"));
        a.addAll(List.of(more));
        return a.toArray(new String[0]);
    }

    @Test void lossFallsBelowTheUnigramBaseline() throws Exception {
        Path out = dir.resolve("learn");
        Run r = cli(tiny(out, "--steps", "60"));
        assertEquals(0, r.code(), r.err());
        JsonNode log = Json.readTree(out.resolve(Trainer.LOG));
        JsonNode train = log.get("train"), fin = log.get("final");
        assertEquals(60, train.size());
        double first = train.get(0).get(1).asDouble();
        assertEquals(Math.log(64), first, 0.3, "a fresh model is near uniform over the vocabulary");
        double val = fin.get("val_loss_f16").asDouble();
        // The unigram of this corpus is about ln 40 = 3.7; learning the word-to-word rule goes below it.
        assertTrue(val < fin.get("unigram_val_loss").asDouble(), "val " + val + " vs unigram " + fin.get("unigram_val_loss"));
        assertTrue(fin.get("bigram_val_loss").asDouble() < fin.get("unigram_val_loss").asDouble());
        assertTrue(Files.isRegularFile(out.resolve("loss.png")));
        Checkpoint.LoadedModel m = Checkpoint.load(out.resolve(Trainer.MODEL));
        assertEquals(16, m.config().nEmbd());
        assertEquals("F16", SafeTensors.open(out.resolve(Trainer.MODEL).resolve(Checkpoint.WEIGHTS)).dtype("transformer.wte.weight"));
        assertTrue(m.weights().tied());
        assertTrue(r.out().contains("validation loss"), r.out());
    }

    @Test void resumedRunEqualsAnUnbrokenOneBitForBit() throws Exception {
        Path a = dir.resolve("unbroken"), b = dir.resolve("broken");
        assertEquals(0, cli(tiny(a, "--steps", "24")).code());
        // Stop at 10 (between checkpoints at 7 and 14: the stop itself checkpoints), then again at 17, then finish.
        Run r1 = cli(tiny(b, "--steps", "24", "--stop-at", "10"));
        assertEquals(0, r1.code(), r1.err());
        assertEquals(0, cli("train", "--tokens", tokens.toString(), "--out", b.toString(), "--resume", "--stop-at", "17",
                "--checkpoint-every", "7", "--eval-every", "20", "--val-windows", "8", "--final-val-windows", "16", "--log-every", "0").code());
        Run r3 = cli("train", "--tokens", tokens.toString(), "--out", b.toString(), "--resume",
                "--checkpoint-every", "7", "--eval-every", "20", "--val-windows", "8", "--final-val-windows", "16", "--log-every", "0");
        assertEquals(0, r3.code(), r3.err());
        JsonNode la = Json.readTree(a.resolve(Trainer.LOG)), lb = Json.readTree(b.resolve(Trainer.LOG));
        assertEquals(24, la.get("train").size());
        for (int i = 0; i < 24; i++)
            for (int k = 0; k < 4; k++)
                assertEquals(Double.doubleToLongBits(la.get("train").get(i).get(k).asDouble()),
                        Double.doubleToLongBits(lb.get("train").get(i).get(k).asDouble()), "step " + (i + 1) + " column " + k);
        assertEquals(la.get("val"), lb.get("val"));
        assertEquals(la.get("final").get("val_loss_f16").asDouble(), lb.get("final").get("val_loss_f16").asDouble(), 0.0);
        SafeTensors sa = SafeTensors.open(a.resolve(Trainer.STATE)), sb = SafeTensors.open(b.resolve(Trainer.STATE));
        assertEquals(sa.names(), sb.names());
        for (String n : sa.names()) assertArrayEquals(sa.readFloats(n), sb.readFloats(n), 0f, n);
        assertArrayEquals(Files.readAllBytes(a.resolve("model/model.safetensors")), Files.readAllBytes(b.resolve("model/model.safetensors")));
    }

    @Test void badInputIsOneLineAndExitTwo() throws Exception {
        Path out = dir.resolve("bad");
        String[][] cases = {
                {"train", "--tokens", dir.resolve("missing.bin").toString(), "--out", out.toString()},
                {"train", "--tokens", tokens.toString(), "--out", out.toString(), "--batch", "5", "--micro-batch", "2"},
                {"train", "--tokens", tokens.toString(), "--out", out.toString(), "--n-embd", "15", "--n-head", "2"},
                {"train", "--tokens", tokens.toString(), "--out", dir.resolve("nothing-here").toString(), "--resume"},
                {"train", "--tokens", tokens.toString(), "--out", out.toString(), "--max-minutes", "-1"},
        };
        String[] expect = {"no such token file", "not a multiple of --micro-batch", "not a multiple of n_head",
                "no checkpoint to resume", "must be >= 0"};
        for (int i = 0; i < cases.length; i++) {
            Run r = cli(cases[i]);
            assertEquals(2, r.code(), Arrays.toString(cases[i]) + "\n" + r.err());
            assertEquals(1, r.err().strip().lines().count(), r.err());
            assertTrue(r.err().contains(expect[i]), r.err());
            assertFalse(Files.exists(out.resolve(Trainer.STATE)), "nothing written for bad input");
        }
        Path odd = dir.resolve("odd.bin");
        Files.write(odd, new byte[]{1, 2, 3});
        Files.write(TokenCorpus.valPath(odd), new byte[]{1, 2});
        Run r = cli("train", "--tokens", odd.toString(), "--out", out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("odd number of bytes"), r.err());
        // A finished run is not silently overwritten by a new one.
        Path done = dir.resolve("done");
        assertEquals(0, cli(tiny(done, "--steps", "2")).code());
        Run again = cli(tiny(done, "--steps", "2"));
        assertEquals(2, again.code());
        assertTrue(again.err().contains("--resume"), again.err());
        Run changed = cli("train", "--tokens", tokens.toString(), "--out", done.toString(), "--resume", "--lr", "0.5");
        assertEquals(2, changed.code());
        assertTrue(changed.err().contains("--lr 0.5 (saved 0.01)"), changed.err());
    }
}
