package dev.nshap.train;

import dev.nshap.NshapException;
import dev.nshap.eval.corpus.TokenCorpus;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BaselinesAndDataTest {

    /** Counts done by hand: train = 0 1 0 1 2, V = 4. */
    @Test
    void baselinesMatchHandCounts() {
        Baselines b = new Baselines(new int[]{0, 1, 0, 1, 2}, 4);
        // unigram add-one: c = {2, 2, 1, 0}, N = 5, V = 4
        assertEquals(3.0 / 9, b.unigramProb(0), 1e-15);
        assertEquals(1.0 / 9, b.unigramProb(3), 1e-15);
        // pairs: 0->1 twice, 1->0 once, 1->2 once. After 1: c(1) = 2, T(1) = 2.
        assertEquals((1 + 2 * (2.0 / 9)) / (2 + 2), b.bigramProb(1, 2), 1e-15);
        assertEquals((0 + 2 * (1.0 / 9)) / (2 + 2), b.bigramProb(1, 3), 1e-15);
        // After 0: c(0) = 2, T(0) = 1.
        assertEquals((2 + 1 * (3.0 / 9)) / (2 + 1), b.bigramProb(0, 1), 1e-15);
        // 2 and 3 were never followed by anything: the unigram.
        assertEquals(b.unigramProb(0), b.bigramProb(2, 0), 1e-15);
        double sum = 0;
        for (int x = 0; x < 4; x++) sum += b.bigramProb(1, x);
        assertEquals(1.0, sum, 1e-12, "p(.|1) is a distribution");
        Baselines.Result r = b.score(List.of(new int[]{0, 1, 2}));
        assertEquals(2, r.pairs());
        assertEquals(-(Math.log(b.unigramProb(1)) + Math.log(b.unigramProb(2))) / 2, r.unigram(), 1e-12);
        assertEquals(-(Math.log(b.bigramProb(0, 1)) + Math.log(b.bigramProb(1, 2))) / 2, r.bigram(), 1e-12);
    }

    @Test
    void windowsAreSeededInRangeAndValidationTilesTheFile(@TempDir Path dir) throws Exception {
        char[] tr = new char[1000], va = new char[53];
        for (int i = 0; i < tr.length; i++) tr[i] = (char) (i % 97);
        for (int i = 0; i < va.length; i++) va[i] = (char) i;
        Files.write(dir.resolve("t.bin"), TokenCorpus.uint16le(tr));
        Files.write(dir.resolve("t.val.bin"), TokenCorpus.uint16le(va));
        TokenData d = TokenData.load(dir.resolve("t.bin"), 100, 10);
        Set<Integer> starts = new HashSet<>();
        for (int step = 0; step < 200; step++)
            for (int i = 0; i < 4; i++) {
                int s = TokenData.windowStart(5, step, i, d.train.length, 10);
                assertTrue(s >= 0 && s + 10 <= d.train.length);
                assertEquals(s, TokenData.windowStart(5, step, i, d.train.length, 10), "a pure function of (seed, step, i)");
                starts.add(s);
            }
        assertTrue(starts.size() > 500, "800 draws over 991 starts should mostly differ: " + starts.size());
        assertTrue(starts.stream().mapToInt(x -> x).min().getAsInt() < 20 && starts.stream().mapToInt(x -> x).max().getAsInt() > 970);
        List<int[]> b = d.batch(5, 3, 4, 10);
        assertEquals(4, b.size());
        int s0 = TokenData.windowStart(5, 3, 0, 1000, 10);
        assertEquals(10, b.get(0).length);
        for (int k = 0; k < 10; k++) assertEquals((s0 + k) % 97, b.get(0)[k]);
        // Every window at stride 9: starts 0, 9, ..., 36 (5 windows, (53 - 10) / 9 + 1), targets 1..45 each once.
        List<int[]> all = d.valWindows(0, 10);
        assertEquals(5, all.size());
        for (int w = 0; w < 5; w++) assertArrayEquals(java.util.stream.IntStream.range(w * 9, w * 9 + 10).toArray(), all.get(w));
        List<int[]> two = d.valWindows(2, 10);
        assertEquals(0, two.get(0)[0]);
        assertEquals(43, two.get(1)[0], "the last window ends at the file's end");
    }

    @Test
    void badTokenFilesAreRefusedWithTheirProblem(@TempDir Path dir) throws Exception {
        Path t = dir.resolve("t.bin");
        NshapException e = assertThrows(NshapException.class, () -> TokenData.load(t, 100, 4));
        assertTrue(e.getMessage().contains("no such token file"), e.getMessage());
        Files.write(t, new byte[]{1, 0, 2});
        Files.write(dir.resolve("t.val.bin"), new byte[]{1, 0});
        e = assertThrows(NshapException.class, () -> TokenData.load(t, 100, 4));
        assertTrue(e.getMessage().contains("odd number of bytes"), e.getMessage());
        Files.write(t, TokenCorpus.uint16le(new char[]{1, 2, 3, 4, 5, 6, 7, 200}));
        e = assertThrows(NshapException.class, () -> TokenData.load(t, 100, 4));
        assertTrue(e.getMessage().contains("token 200 at position 7"), e.getMessage());
        Files.write(t, TokenCorpus.uint16le(new char[]{1, 2, 3, 4}));
        e = assertThrows(NshapException.class, () -> TokenData.load(t, 100, 4));
        assertTrue(e.getMessage().contains("fewer than one training window"), e.getMessage());
    }
}
