package dev.nshap.cli;

import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.RefGpt2;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `model loss --check` against losses computed by the independent float64 reference. */
class ModelLossCommandTest {
    @Test void reproducesReferenceLossAndFlagsAWrongOne(@TempDir Path dir) throws Exception {
        GPT2Config c = TestModels.tinyConfig(101);
        GPT2Weights w = TestModels.random(c, 3, 0.3f);
        Path model = dir.resolve("m");
        Checkpoint.write(model, w, "F32", Map.of());
        RefGpt2 ref = new RefGpt2(w);
        Random r = new Random(1);
        StringBuilder json = new StringBuilder("{\"sequences\":[");
        double[] losses = new double[3];
        for (int s = 0; s < 3; s++) {
            int[] t = TestModels.randomTokens(r, 6 + 5 * s, 101);
            double[][] lp = ref.logSoftmax(java.util.Arrays.copyOf(t, t.length - 1), null, 0);
            double nll = 0;
            for (int k = 0; k + 1 < t.length; k++) nll -= lp[k][t[k + 1]];
            losses[s] = nll / (t.length - 1);
            json.append(s > 0 ? "," : "").append("{\"tokens\":").append(java.util.Arrays.toString(t)).append(",\"loss\":%s}");
        }
        json.append("]}");
        Path good = dir.resolve("good.json"), bad = dir.resolve("bad.json");
        Files.writeString(good, String.format(java.util.Locale.ROOT, json.toString(), losses[0], losses[1], losses[2]));
        Files.writeString(bad, String.format(java.util.Locale.ROOT, json.toString(), losses[0], losses[1] + 0.01, losses[2]));
        StringWriter out = new StringWriter();
        CommandLine cl = new CommandLine(new ModelLossCommand());
        cl.setOut(new PrintWriter(out));
        assertEquals(0, cl.execute("--model", model.toString(), "--backend", "cpu", "--check", good.toString()));
        assertEquals(1, new CommandLine(new ModelLossCommand()).execute("--model", model.toString(), "--backend", "cpu", "--check", bad.toString()));
        Files.writeString(bad, "{\"sequences\":[{\"tokens\":[1]}]}");
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        java.io.PrintStream old = System.err;
        System.setErr(new java.io.PrintStream(err, true));
        int rc;
        try {
            rc = Main.run("model", "loss", "--model", model.toString(), "--backend", "cpu", "--check", bad.toString());
        } finally {
            System.setErr(old);
        }
        assertEquals(2, rc, "a one-token sequence is bad input");
        assertTrue(err.toString().contains("needs at least 2 tokens"), err.toString());
    }
}
