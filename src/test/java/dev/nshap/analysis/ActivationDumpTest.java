package dev.nshap.analysis;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.io.Json;
import dev.nshap.io.Npy;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class ActivationDumpTest {
    @TempDir Path dir;

    @Test void dumpsEqualTheBackendsOwnCacheWhateverTheBatching() throws Exception {
        GPT2Config c = TestModels.tinyConfig(97);
        GPT2Weights w = TestModels.random(c, 5, 0.3f);
        CpuBackend b = new CpuBackend(w);
        TokenizedDataset d = SteerScanTest.prompts(9, 4);
        List<HookPoint> hooks = HookPoint.parseList("blocks.*.mlp.hook_post,blocks.1.hook_resid_pre", c);
        assertEquals(3, hooks.size());
        // 7 tokens a batch: most batches hold one or two prompts
        JsonNode m = ActivationDump.run(b, d, hooks, 7, dir, Json.MAPPER.createObjectNode(), () -> Json.MAPPER.createObjectNode());
        ForwardRequest all = new ForwardRequest();
        for (int[] s : d.sequences) all.add(s, null, null);
        all.cache.addAll(hooks);
        ForwardResult want = b.forward(all);
        assertEquals(d.tokenCount(), m.get("rows").asLong());
        assertEquals(d.size(), m.get("prompts").size());
        for (HookPoint hp : hooks) {
            Npy.Array a = Npy.read(dir.resolve(ActivationDump.fileName(hp)));
            int width = hp.width(c);
            assertArrayEquals(new int[]{(int) d.tokenCount(), width}, a.shape());
            for (int p = 0; p < d.size(); p++) {
                int r0 = m.get("prompts").get(p).get("row_start").asInt();
                float[] got = java.util.Arrays.copyOfRange(a.data(), r0 * width, (r0 + d.sequences[p].length) * width);
                assertArrayEquals(want.cache().get(hp)[p], got, 1e-6f, hp + " prompt " + p);
            }
        }
        assertTrue(Files.readString(dir.resolve("index.csv")).startsWith("prompt,id,row_start,length,tokens\np0,"
                .replace("p0,", "0,p0,")));
        try (var files = Files.list(dir)) {
            assertTrue(files.noneMatch(f -> f.getFileName().toString().endsWith(".tmp")), "no temp file left behind");
        }
    }

    @Test void aStreamLeftUncommittedLeavesNothing() throws Exception {
        Path f = dir.resolve("x.npy");
        try (Npy.Stream s = new Npy.Stream(f, 2, 3)) {
            s.append(new float[]{1, 2, 3}, 0, 3);
            assertThrows(IllegalStateException.class, s::commit, "only half the values");
        }
        try (var files = Files.list(dir)) { assertEquals(0, files.count()); }
        try (Npy.Stream s = new Npy.Stream(f, 2, 3)) {
            s.append(new float[]{9, 1, 2, 3, 4, 5, 6}, 1, 6);
            s.commit();
        }
        Npy.Array a = Npy.read(f);
        assertArrayEquals(new int[]{2, 3}, a.shape());
        assertArrayEquals(new float[]{1, 2, 3, 4, 5, 6}, a.data());
    }
}
