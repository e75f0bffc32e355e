package dev.nshap.shapley;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** TMAB's focus: which players a round leaves out, and that leaving them out never touches the certificate. */
class FocusTest {
    @TempDir Path dir;

    /** Four samples m + d, m - d, m + d, m - d: mean m, unbiased variance 4 d^2 / 3. */
    static void four(SufficientStats st, int p, double m, double var) {
        double d = Math.sqrt(3 * var / 4);
        for (int j = 0; j < 4; j++) st.add(p, j % 2 == 0 ? m + d : m - d);
    }

    static BitSet all(int n) {
        BitSet b = new BitSet(n);
        b.set(0, n);
        return b;
    }

    /**
     * A hand-built case, k = 2, z = 2. Means of the players with two samples or more: 20, 10, 9, 8.7, 6, 0, 0, 0,
     * -30, -10, so the boundary is (10 + 9) / 2 = 9.5. The floor is the median variance of the 2k = 4 highest means
     * (1, 1, 0.01, 1 for 20, 10, 9, 8.7): 1, so with c = 4 the plausible half-width is 2 sqrt(1 / 4) = 1 for
     * everyone. So 10 and 9 (0.5 away) and 8.7 (0.8) stay; 6, 0 and -30 are parked. Player 8's own variance is
     * 0.01: without the floor it would be parked too. Player 9's four samples are equal: not parked however far.
     */
    @Test
    void parksOnlyPlayersClearOfTheBoundary() {
        assertEquals(2, TopK.FOCUS_Z, "the case below is worked out for z = 2");
        SufficientStats st = new SufficientStats(10);
        four(st, 0, 20, 1);
        four(st, 1, 10, 1);
        four(st, 2, 6, 0.01);
        four(st, 3, 8.7, 1);
        four(st, 4, 0, 0.01);
        four(st, 5, 0, 1);
        four(st, 6, -30, 1);
        st.add(7, 0);
        st.add(7, 0);                        // two samples: below the focus's minimum
        four(st, 8, 9, 0.01);
        four(st, 9, -10, 0);
        String[] status = new String[10];
        Arrays.fill(status, TopK.OPEN);
        status[0] = TopK.IN;                 // settled players are the bandit's, never parked
        BitSet parked = TopK.parked(st, all(10), status, 2);
        assertEquals(List.of(2, 4, 5, 6), parked.stream().boxed().toList());

        // every OPEN player would be parked: then none is, so the round still samples the OPEN ones
        status[1] = status[3] = status[7] = status[8] = status[9] = TopK.AMBIGUOUS;
        assertTrue(TopK.parked(st, all(10), status, 2).isEmpty());

        // not more than k players with two samples: no boundary yet
        SufficientStats few = new SufficientStats(10);
        four(few, 0, 5, 1);
        four(few, 1, -5, 1);
        Arrays.fill(status, TopK.OPEN);
        assertTrue(TopK.parked(few, all(10), status, 2).isEmpty());
    }

    /** The selection behind every round's boundary, against a sort, with many ties and -inf. */
    @Test
    void kthLargestEqualsTheSortedValue() {
        var rng = new java.util.Random(4);
        for (int t = 0; t < 300; t++) {
            int n = 1 + rng.nextInt(200);
            double[] a = new double[n];
            for (int i = 0; i < n; i++)
                a[i] = rng.nextInt(4) == 0 ? 0 : rng.nextInt(9) == 0 ? Double.NEGATIVE_INFINITY : rng.nextInt(7) - 3.5 * rng.nextDouble();
            double[] sorted = a.clone();
            Arrays.sort(sorted);
            int k = 1 + rng.nextInt(n);
            assertEquals(sorted[n - k], Metrics.kthLargest(a.clone(), k), "n " + n + " k " + k);
        }
    }

    /** The benchmark's heavy-tailed game at n = 400, noise sd {@code noise} x the 10th largest |value|. */
    static IndexedUnanimity game(double noise) {
        IndexedUnanimity g = IndexedUnanimity.heavyTailed(400, 1.0, EstimatorEval.ORDERS, 0, 11);
        double[] abs = Arrays.stream(g.exactValues()).map(Math::abs).toArray();
        return g.withNoise(noise * abs[Metrics.topK(abs, 10)[9]]);
    }

    static ShapleyConfig.Builder cfg(boolean focus) {
        return ShapleyConfig.builder(Estimator.TMAB).seed(3).topK(10).bound(TopK.NORMAL).round(2).batch(32)
                .budget(600_000).focus(focus);
    }

    static ShapleyResult run(Game g, ShapleyConfig c) {
        return new ShapleyRunner(g, c).progress(false).handleSignals(false).run();
    }

    /**
     * A parked player gets no sample in the round that parks it (the listener recomputes the focus from the
     * statistics after each round, as the runner does), the focus does park players, and the run still ends with
     * everyone settled against the boundary by the bandit's own intervals.
     */
    @Test
    void parkedPlayersAreNotSampledAndTheRunStillSettles() {
        IndexedUnanimity g = game(0.25);
        ShapleyConfig c = cfg(true).budget(2_000_000).build();
        int n = g.players();
        List<long[]> counts = new ArrayList<>();
        List<BitSet> parks = new ArrayList<>();
        ShapleyResult r = new ShapleyRunner(g, c).progress(false).handleSignals(false).listener((evals, st, settled) -> {
            long[] cnt = new long[n];
            for (int i = 0; i < n; i++) cnt[i] = st.count(i);
            counts.add(cnt);
            String[] status = TopK.classify(st, all(n), c.topK(), c.delta(), st.observedRange(),
                    TopK.epsilon(st, all(n), 0), true);
            parks.add(TopK.parked(st, all(n), status, c.topK()));
        }).run();
        assertEquals("settled", r.stopReason());
        long parkedPlayerRounds = 0;
        for (int t = 0; t + 1 < counts.size(); t++) {
            BitSet p = parks.get(t);
            parkedPlayerRounds += p.cardinality();
            for (int i = p.nextSetBit(0); i >= 0; i = p.nextSetBit(i + 1))
                assertEquals(counts.get(t)[i], counts.get(t + 1)[i], "player " + i + " parked after round " + t + " was sampled");
        }
        assertTrue(parkedPlayerRounds > 10L * n, "the focus parked players: " + parkedPlayerRounds + " player-rounds");
        double[] m = r.means();
        int[] top = Metrics.topK(m, 11);
        double theta = 0.5 * (m[top[9]] + m[top[10]]);
        for (PlayerEstimate p : r.estimates()) {
            assertTrue(p.settled(), "player " + p.player() + " ends settled");
            if (p.status().equals(TopK.IN)) assertTrue(p.banditLow() > theta);
            else if (p.status().equals(TopK.OUT)) assertTrue(p.banditHigh() < theta);
            else assertEquals(TopK.AMBIGUOUS, p.status());
        }
        assertTrue(Metrics.precisionAtK(m, g.exactValues(), 10) >= 0.9);
    }

    /** The evaluations after which precision@10 stays >= 0.9 to the end of the run. */
    static long reach(Game g, ShapleyConfig c) {
        double[] exact = g.exactValues();
        long[] first = {-1};
        new ShapleyRunner(g, c).progress(false).handleSignals(false).listener((evals, st, settled) -> {
            double[] m = new double[st.players()];
            for (int i = 0; i < m.length; i++) m[i] = st.count(i) == 0 ? 0 : st.mean(i);
            boolean ok = Metrics.precisionAtK(m, exact, 10) >= 0.9;
            if (!ok) first[0] = -1;
            else if (first[0] < 0) first[0] = evals;
        }).run();
        return first[0];
    }

    /**
     * What the focus is for: on a noisy game the players near the boundary get the samples, so the top-k is right
     * sooner: 2.0-2.7x fewer evaluations on these three seeds, asked for at least 1.5x each. On the noiseless game
     * it gains 1.3x here; asked for no loss.
     */
    @Test
    void focusFindsTheTopKSooner() {
        for (double noise : new double[]{0.5, 0}) {
            IndexedUnanimity g = game(noise);
            for (int s = 0; s < 3; s++) {
                long plain = reach(g, cfg(false).seed(20 + s).budget(120_000).build());
                long focus = reach(g, cfg(true).seed(20 + s).budget(120_000).build());
                assertTrue(plain > 0 && focus > 0, "noise " + noise + " seed " + s + ": never reached");
                if (noise > 0) assertTrue(1.5 * focus <= plain, "seed " + s + ": " + focus + " vs " + plain);
                else assertTrue(focus <= plain, "noiseless seed " + s + ": " + focus + " vs " + plain);
            }
        }
    }

    /** Same seed, same numbers whatever the batch size; and a run stopped anywhere resumes to the unbroken result. */
    @Test
    void batchSizeAndResumeNeverChangeAFocusedRun() throws Exception {
        IndexedUnanimity g = game(0.5);
        ShapleyResult ref = run(g, cfg(true).budget(40_000).build());
        for (int batch : new int[]{1, 7, 500}) {
            ShapleyResult r = run(g, cfg(true).budget(40_000).batch(batch).build());
            ResumeAndShardTest.assertSame(ref, r, "batch " + batch);
        }
        for (long stopAt : new long[]{1, 5_000, 23_456}) {
            Path prefix = dir.resolve("focus" + stopAt);
            var first = new ShapleyRunner(g, cfg(true).budget(40_000).out(prefix).build())
                    .progress(false).handleSignals(false).stopWhen(done -> done >= stopAt);
            assertThrows(ShapleyRunner.Interrupted.class, first::run);
            ShapleyResult got = new ShapleyRunner(g, cfg(true).budget(40_000).batch(13).out(prefix).resume(true).build())
                    .progress(false).handleSignals(false).run();
            ResumeAndShardTest.assertSame(ref, got, "stopped at " + stopAt);
        }
        assertTrue(!run(g, cfg(false).budget(40_000).build()).stats().sameAs(ref.stats()), "--focus changes the sampling");

        // a checkpoint whose parked players are not players is refused by name, not with an index error
        Path prefix = dir.resolve("bad");
        var first = new ShapleyRunner(g, cfg(true).budget(40_000).out(prefix).build())
                .progress(false).handleSignals(false).stopWhen(done -> done >= 5_000);
        assertThrows(ShapleyRunner.Interrupted.class, first::run);
        // and a focused run is not continued without the focus
        var off = assertThrows(dev.nshap.NshapException.class, () -> run(g, cfg(false).budget(40_000).out(prefix).resume(true).build()));
        assertTrue(off.getMessage().contains("focus is true there but not set now"), off.getMessage());
        Path ck = prefix.resolveSibling("bad.ckpt.json");
        var o = (com.fasterxml.jackson.databind.node.ObjectNode) dev.nshap.io.Json.readTree(ck);
        o.putArray("parked").add(3).add(400);
        java.nio.file.Files.writeString(ck, o.toString());
        var e = assertThrows(dev.nshap.NshapException.class, () -> run(g, cfg(true).budget(40_000).out(prefix).resume(true).build()));
        assertTrue(e.getMessage().contains("parked holds 400, not a player"), e.getMessage());
    }
}
