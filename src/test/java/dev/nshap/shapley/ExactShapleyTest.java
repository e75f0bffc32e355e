package dev.nshap.shapley;

import dev.nshap.NshapException;
import org.junit.jupiter.api.Test;

import java.util.BitSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ExactShapleyTest {

    static double[] exact(Game g) {
        ShapleyConfig cfg = ShapleyConfig.builder(Estimator.EXACT).batch(37).build();
        return new ShapleyRunner(g, cfg).progress(false).handleSignals(false).run().means();
    }

    @Test
    void handComputedVotingGame() {
        // quota 3, weights 2,1,1: player 0 is pivotal in 4 of 6 orders -> 2/3; the others 1/6 each
        var g = new SyntheticGames.Voting(3, new long[]{2, 1, 1});
        double[] want = {2.0 / 3, 1.0 / 6, 1.0 / 6};
        assertArrayEquals(want, exact(g), 1e-15);
        assertArrayEquals(want, g.exactValues(), 1e-15);
    }

    @Test
    void handComputedUnanimityGame() {
        // v = 6 u_{0,1} + 3 u_{2}: phi = (3, 3, 3, 0)
        var g = new SyntheticGames.Unanimity(4, new int[][]{{0, 1}, {2}}, new double[]{6, 3});
        assertArrayEquals(new double[]{3, 3, 3, 0}, exact(g), 1e-14);
    }

    @Test
    void enumerationEqualsClosedFormOfRandomUnanimityGames() {
        for (long seed = 1; seed <= 5; seed++) {
            var g = SyntheticGames.randomUnanimity(11, 2, 11, 15, 5, seed);
            double[] closed = g.exactValues(), enumerated = exact(g);
            assertArrayEquals(closed, enumerated, 1e-12, "seed " + seed);
            double total = 0;
            for (double x : closed) total += x;
            BitSet all = new BitSet();
            all.set(0, 11);
            double vN = g.values(List.of(new Coalition(all, 0, 0)))[0];
            assertEquals(vN, total, 1e-12, "efficiency");
        }
    }

    @Test
    void enumerationEqualsDynamicProgrammeOfRandomVotingGames() {
        for (long seed = 1; seed <= 5; seed++) {
            var g = SyntheticGames.randomVoting(13, 3, seed);
            double[] dp = g.exactValues(), enumerated = exact(g);
            assertArrayEquals(dp, enumerated, 1e-12, "seed " + seed);
            double sum = 0;
            for (double x : dp) sum += x;
            assertEquals(1.0, sum, 1e-12, "a voting game's values sum to v(N) = 1");
        }
    }

    @Test
    void votingWithZeroWeightsAndUnreachableQuota() {
        var g = new SyntheticGames.Voting(5, new long[]{3, 0, 2, 1});
        assertArrayEquals(exact(g), g.exactValues(), 1e-14);
        assertEquals(0, g.exactValues()[1], 0, "a zero-weight voter is never pivotal");
        var never = new SyntheticGames.Voting(100, new long[]{3, 2, 1});
        assertArrayEquals(new double[3], exact(never), 0);
        assertArrayEquals(new double[3], never.exactValues(), 0);
    }

    @Test
    void additiveGame() {
        var g = new SyntheticGames.Additive(new double[]{0.5, -2, 3.25, 0});
        assertArrayEquals(new double[]{0.5, -2, 3.25, 0}, exact(g), 1e-14);
    }

    @Test
    void refusesMoreThanTwentyPlayers() {
        var g = new SyntheticGames.Additive(new double[21]);
        NshapException e = assertThrows(NshapException.class, () -> exact(g));
        assertTrue(e.getMessage().contains("21 players") && e.getMessage().contains("at most 20"), e.getMessage());
    }
}
