package dev.nshap.model;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class ModelInitTest {
    @TempDir Path tmp;

    /** n_layer 4 so the residual-projection std 0.02/sqrt(8) is clearly apart from 0.02. */
    static final GPT2Config C = new GPT2Config(4, 4, 64, 64, 300, 1e-5, "gelu_new");

    private static double[] meanStd(float[]... arrays) {
        double s = 0, s2 = 0;
        long n = 0;
        for (float[] a : arrays) for (float v : a) { s += v; s2 += (double) v * v; n++; }
        double mean = s / n;
        return new double[]{mean, Math.sqrt(s2 / n - mean * mean), n};
    }

    /** The sample std of n normal draws has a standard error of about std/sqrt(2n); allow 5 of them. */
    private static void assertNormal(double wantStd, float[]... arrays) {
        double[] ms = meanStd(arrays);
        double n = ms[2];
        assertEquals(0, ms[0], 5 * wantStd / Math.sqrt(n), "mean");
        assertEquals(wantStd, ms[1], 5 * wantStd / Math.sqrt(2 * n), "std");
    }

    @Test void followsHuggingFaceInit() {
        GPT2Weights w = ModelInit.random(C, 42);
        assertNormal(0.02, w.wte);
        assertNormal(0.02, w.wpe);
        double proj = 0.02 / Math.sqrt(2 * 4);
        for (GPT2Weights.Block b : w.blocks) {
            assertNormal(0.02, b.attnW);
            assertNormal(0.02, b.fcW);
            assertNormal(proj, b.attnProjW);
            assertNormal(proj, b.projW);
            for (float[] one : new float[][]{b.ln1W, b.ln2W}) for (float v : one) assertEquals(1f, v);
            for (float[] zero : new float[][]{b.ln1B, b.ln2B, b.attnB, b.attnProjB, b.fcB, b.projB})
                for (float v : zero) assertEquals(0f, v);
        }
        for (float v : w.lnfW) assertEquals(1f, v);
        for (float v : w.lnfB) assertEquals(0f, v);
        assertTrue(w.tied());
        // Roughly 4.55% of N(0, s) draws lie beyond 2s: a check that the tails are gaussian, not uniform.
        long beyond = 0;
        for (float v : w.wte) if (Math.abs(v) > 0.04) beyond++;
        double frac = beyond / (double) w.wte.length;
        assertEquals(0.0455, frac, 0.006);
        // Different tensors draw from different streams.
        assertNotEquals(w.blocks[0].fcW[0], w.blocks[1].fcW[0]);
    }

    @Test void sameSeedSameBytesDifferentSeedDifferentBytes() throws Exception {
        GPT2Config c = new GPT2Config(2, 2, 16, 32, 50, 1e-5, "gelu_new");
        for (String dt : new String[]{"f32", "bf16"}) {
            Checkpoint.write(tmp.resolve("a" + dt), ModelInit.random(c, 7), dt, Map.of());
            Checkpoint.write(tmp.resolve("b" + dt), ModelInit.random(c, 7), dt, Map.of());
            Checkpoint.write(tmp.resolve("c" + dt), ModelInit.random(c, 8), dt, Map.of());
            byte[] a = Files.readAllBytes(tmp.resolve("a" + dt + "/model.safetensors"));
            assertArrayEquals(a, Files.readAllBytes(tmp.resolve("b" + dt + "/model.safetensors")));
            assertFalse(java.util.Arrays.equals(a, Files.readAllBytes(tmp.resolve("c" + dt + "/model.safetensors"))));
        }
    }
}
