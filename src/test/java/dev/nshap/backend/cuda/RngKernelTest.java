package dev.nshap.backend.cuda;

import dev.nshap.backend.CounterRng;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

class RngKernelTest {
    @Test void gaussianMatchesCounterRng() {
        try (Gpu g = Gpu.open()) {
            Random r = new Random(6);
            int n = 100_000;
            int[] pos = new int[n], unit = new int[n];
            for (int i = 0; i < n; i++) {
                pos[i] = i < 1000 ? i : r.nextInt(1024);
                unit[i] = i < 1000 ? 3071 - i : r.nextInt(1 << 20);
            }
            for (long seed : new long[]{0L, 1L, -1L, 0x123456789ABCDEFL, Long.MIN_VALUE}) {
                var out = g.zeros(4L * n);
                g.k.rngGaussian(out, g.up(pos), g.up(unit), n, seed);
                float[] got = g.down(out, n);
                int differ = 0;
                for (int i = 0; i < n; i++) {
                    float want = CounterRng.gaussian(seed, pos[i], unit[i]);
                    // same integers; log/cos in double may differ in the last bit, which can move the float by one ulp
                    assertTrue(Math.abs(got[i] - want) <= Math.ulp(want), "seed " + seed + " #" + i + ": " + got[i] + " vs " + want);
                    if (got[i] != want) differ++;
                }
                assertTrue(differ <= n / 1000, "too many one-ulp differences: " + differ);
            }
        }
    }
}
