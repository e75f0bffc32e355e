package dev.nshap.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.cli.Main;
import dev.nshap.io.Json;
import dev.nshap.io.Npy;
import dev.nshap.model.Checkpoint;
import dev.nshap.testutil.RefGpt2;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class BenchCliTest {
    record Run(int code, String out, String err) {}

    static synchronized Run run(String... args) {
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

    @Test void gemmWritesTableAndJsonWithPeakFraction(@TempDir Path dir) {
        Path json = dir.resolve("g.json");
        Run r = run("bench", "gemm", "--config", "tiny", "--m", "64", "--warmup", "0", "--reps", "2", "--json", json.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("gemm 64x64x256"), r.out());
        JsonNode j = Json.readTree(json);
        assertEquals("gemm", j.get("bench").asText());
        assertEquals("64x64x256", j.get("config").get("shape_MxKxN").asText());
        JsonNode row = j.get("results").get(0);
        double peak = j.get("peaks").get("cpu_matmul").get("value").asDouble();
        assertTrue(peak > 0);
        assertEquals(row.get("value").asDouble() / peak, row.get("fraction_of_peak").asDouble(), 1e-9);
        assertEquals(2.0 * 64 * 64 * 256 / row.get("time").get("median_s").asDouble() / 1e9, row.get("value").asDouble(), 1e-6 * row.get("value").asDouble());
        assertTrue(j.get("peaks").get("cpu_matmul").get("how").asText().contains("before"));
    }

    @Test void refusalsAreOneLineWithExitCode2() {
        String[][] bad = {
                {"bench", "gemm", "--config", "tiny", "--precision", "bf16"},
                {"bench", "gemm", "--config", "tiny", "--backend", "tpu"},
                {"bench", "forward", "--config", "tiny", "--seq", "500"},
                {"bench", "coalitions", "--config", "tiny", "--layers", "7"},
                {"bench", "coalitions", "--config", "tiny", "--keep", "1.5"},
                {"bench", "shapley", "--config", "tiny", "--evaluations", "10"},
                {"bench", "attention", "--config", "nosuch"},
        };
        for (String[] a : bad) {
            Run r = run(a);
            assertEquals(2, r.code(), String.join(" ", a) + " -> " + r.err());
            String msg = r.err().lines().filter(l -> !l.startsWith("WARNING")).reduce("", (x, y) -> x + y + "\n").strip();
            assertEquals(1, msg.lines().count(), msg);
        }
    }

    @Test void cudaWithoutGpuSaysWhyInOneLine() {
        Run r = run("bench", "forward", "--backend", "cuda", "--config", "tiny", "--no-json");
        if (dev.nshap.backend.cuda.CudaDevice.unavailableReason() == null) return; // a GPU is here: nothing to refuse
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--backend cuda"), r.err());
    }

    /** The files a reference implementation is checked against are nshap's logits for exactly the written model, tokens and masks. */
    @Test void referenceDataMatchesFloat64ModelWithTheWrittenMasks(@TempDir Path dir) {
        Path out = dir.resolve("ref");
        Run r = run("bench", "reference-data", "--config", "tiny", "--batch", "2", "--seq", "5", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        var model = Checkpoint.load(out);
        RefGpt2 ref = new RefGpt2(model.weights());
        Npy.Array tok = Npy.read(out.resolve("tokens.npy")), mask = Npy.read(out.resolve("mask.npy"));
        Npy.Array clean = Npy.read(out.resolve("logits.npy")), masked = Npy.read(out.resolve("logits_masked.npy"));
        int L = model.config().nLayer(), H = model.config().nInner(), V = model.config().vocabSize();
        assertArrayEquals(new int[]{2, L, H}, mask.shape());
        assertArrayEquals(new int[]{2, 5, V}, masked.shape());
        int keptTotal = 0;
        for (int b = 0; b < 2; b++) {
            int[] t = new int[5];
            for (int i = 0; i < 5; i++) t[i] = (int) tok.data()[b * 5 + i];
            List<Intervention> ivs = new ArrayList<>();
            for (int l = 0; l < L; l++) {
                List<Integer> drop = new ArrayList<>();
                for (int u = 0; u < H; u++) {
                    float m = mask.data()[(b * L + l) * H + u];
                    assertTrue(m == 0f || m == 1f);
                    if (m == 0f) drop.add(u); else keptTotal++;
                }
                ivs.add(Intervention.zero(HookPoint.mlpPost(l), drop.stream().mapToInt(Integer::intValue).toArray(), null));
            }
            check(ref.logSoftmax(t, List.of(), 0), clean, b, V);
            check(ref.logSoftmax(t, ivs, 0), masked, b, V);
        }
        assertTrue(keptTotal > 0 && keptTotal < 2 * L * H, "masks keep some neurons and drop others");
    }

    /** Compares log-softmax, which removes the per-row constant the logits are free to carry. */
    static void check(double[][] want, Npy.Array logits, int b, int V) {
        for (int t = 0; t < want.length; t++) {
            int o = (b * want.length + t) * V;
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int v = 0; v < V; v++) max = Math.max(max, logits.data()[o + v]);
            for (int v = 0; v < V; v++) sum += Math.exp(logits.data()[o + v] - max);
            double lse = max + Math.log(sum);
            for (int v = 0; v < V; v += 97) assertEquals(want[t][v], logits.data()[o + v] - lse, 2e-4, "seq " + b + " pos " + t + " token " + v);
        }
    }
}
