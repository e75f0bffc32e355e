package dev.nshap.scale;

import dev.nshap.shapley.Coalition;
import org.junit.jupiter.api.Test;

import java.io.PrintStream;
import java.io.ByteArrayOutputStream;
import java.util.BitSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The wire format and its signatures, without a cluster. */
class NshapTaskTest {
    final Secret secret = Secret.random();

    static BitSet bits(int... on) {
        BitSet b = new BitSet();
        for (int i : on) b.set(i);
        return b;
    }

    @Test void coalitionsSurviveTheEncodingBitForBit() {
        List<Coalition> cs = List.of(new Coalition(bits(0, 63, 64, 129), 7, -3), new Coalition(bits(), 8, Long.MAX_VALUE),
                new Coalition(bits(129), -1, 42));
        NshapTask.Evaluate e = NshapTask.readEvaluate(NshapTask.evaluateBody(5, "abc", 130, cs));
        assertEquals(5, e.taskId());
        assertEquals("abc", e.specId());
        assertEquals(130, e.players());
        assertEquals(cs, e.coalitions());
    }

    @Test void aCoalitionNamingAPlayerBeyondTheGameIsMalformed() {
        byte[] body = NshapTask.evaluateBody(1, "x", 10, List.of(new Coalition(bits(12), 0, 0)));
        assertThrows(IllegalArgumentException.class, () -> NshapTask.readEvaluate(body));
    }

    @Test void repliesVerifyOnlyUnderTheirSecret() {
        byte[] ok = NshapTask.Reply.ok(9, new double[]{1.5, -0.0, Double.MIN_VALUE}, secret);
        NshapTask.Reply r = NshapTask.Reply.parse(ok, secret);
        assertEquals(9, r.taskId());
        assertArrayEquals(new double[]{1.5, -0.0, Double.MIN_VALUE}, r.values(), 0.0);
        assertEquals(Double.doubleToRawLongBits(-0.0), Double.doubleToRawLongBits(r.values()[1]));
        assertNull(NshapTask.Reply.parse(ok, Secret.random()), "another secret");
        byte[] tampered = ok.clone();
        tampered[12] ^= 1;
        assertNull(NshapTask.Reply.parse(tampered, secret), "a flipped bit");
        assertNull(NshapTask.Reply.parse(NshapTask.Reply.unsigned(9, "no"), secret), "unsigned");
        assertEquals("busy", NshapTask.Reply.parse(NshapTask.Reply.refused(3, "busy", secret), secret).refusal());
    }

    @Test void aWorkerRefusesATaskSignedWithAnotherSecretOrTampered() {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        Worker w = new Worker(secret, null, new PrintStream(log, true));
        byte[] spec = GameSpec.synthetic(dev.nshap.shapley.SyntheticGames.topKGame(6, 2, 3, 1.0, 1), 0);
        NshapTask forged = new NshapTask(NshapTask.PREPARE, NshapTask.prepareBody(1, spec), Secret.random());
        assertNull(NshapTask.Reply.parse(w.handle(forged), secret));
        NshapTask good = new NshapTask(NshapTask.PREPARE, NshapTask.prepareBody(2, spec), secret);
        good.body[good.body.length - 2] ^= 1;                 // tampered after signing
        assertNull(NshapTask.Reply.parse(w.handle(good), secret));
        assertTrue(log.toString().contains("refused a task not signed with this cluster's secret"));
        NshapTask fine = new NshapTask(NshapTask.PREPARE, NshapTask.prepareBody(3, spec), secret);
        NshapTask.Reply r = NshapTask.Reply.parse(w.handle(fine), secret);
        assertNull(r.refusal());
        assertEquals(6, (int) r.values()[0]);
        // and evaluates the game it prepared: the unanimity game's own values
        var game = dev.nshap.shapley.SyntheticGames.topKGame(6, 2, 3, 1.0, 1);
        List<Coalition> cs = List.of(new Coalition(bits(0, 1, 2, 3, 4, 5), 0, 0), new Coalition(bits(1), 0, 0));
        NshapTask ev = new NshapTask(NshapTask.EVALUATE, NshapTask.evaluateBody(4, GameSpec.id(spec), 6, cs), secret);
        assertArrayEquals(game.values(cs), NshapTask.Reply.parse(w.handle(ev), secret).values(), 0.0);
    }

    @Test void theClusterNameDependsOnTheSecret() {
        Secret a = Secret.from("a-long-secret"), b = Secret.from("another-secret");
        assertEquals(a.clusterName(), Secret.from("a-long-secret").clusterName());
        assertNotEquals(a.clusterName(), b.clusterName());
        assertFalse(a.clusterName().contains("a-long-secret"));
        assertThrows(dev.nshap.NshapException.class, () -> Secret.from("short"));
    }
}
