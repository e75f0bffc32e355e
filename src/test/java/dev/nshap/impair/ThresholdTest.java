package dev.nshap.impair;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.eval.Metric;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class ThresholdTest {
    @Test void crossingIsInterpolatedBetweenTheLevelsAroundIt() {
        // loss over levels given out of order: 2 -> 4, 0 -> 1, 1 -> 2 (both prompts alike): crosses 3 at 1.5
        Sweep.Values v = new Sweep.Values(Metric.LOSS, new double[]{2, 0, 1}, new double[]{1, 1},
                new double[][][]{{{4, 4}, {1, 1}, {2, 2}}});
        JsonNode c = Threshold.crossing(v, 3, 0, 1);
        assertEquals(1.5, c.get("level").asDouble(), 1e-12);
        assertEquals(1.5, c.get("ci_low").asDouble(), 1e-12, "no spread over prompts, no spread in the interval");
        assertEquals(1.5, c.get("ci_high").asDouble(), 1e-12);
        assertEquals(1.0, c.get("bootstrap_crossed_fraction").asDouble());
        // accuracy falls: mean 1, 0.5, 0 over levels 0, 1, 2; T = 0.75 is crossed at 0.5
        Sweep.Values a = new Sweep.Values(Metric.ACCURACY, new double[]{0, 1, 2}, new double[]{1, 1},
                new double[][][]{{{1, 1}, {1, 0}, {0, 0}}});
        JsonNode ca = Threshold.crossing(a, 0.75, 0, 1);
        assertEquals(0.5, ca.get("level").asDouble(), 1e-12);
        // resampling the two prompts: the crossing moves (prompt 2 alone crosses at 0.25, prompt 1 alone at 1.25)
        assertTrue(ca.get("ci_low").asDouble() <= 0.5 && ca.get("ci_high").asDouble() >= 0.5);
        assertTrue(ca.get("ci_high").asDouble() - ca.get("ci_low").asDouble() > 0.1);
        // already at the threshold on the first level: that level
        assertEquals(0.0, Threshold.crossing(a, 1.0, 0, 1).get("level").asDouble(), 1e-12);
        // scale mode: impairment grows from 1 down to 0, so loss 1, 2, 4 at scales 1, 0.5, 0 crosses 3 at 0.25
        Sweep.Values sc = new Sweep.Values(Metric.LOSS, new double[]{0, 1, 0.5}, new double[]{1, 1},
                new double[][][]{{{4, 4}, {1, 1}, {2, 2}}});
        assertEquals(0.25, Threshold.crossing(sc, 3, 1, 1).get("level").asDouble(), 1e-12);
        // never crosses: null, no interval
        JsonNode never = Threshold.crossing(v, 10, 0, 1);
        assertTrue(never.get("level").isNull());
        assertTrue(never.get("ci_low").isNull());
        assertEquals(0.0, never.get("bootstrap_crossed_fraction").asDouble());
    }
}
