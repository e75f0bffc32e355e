package dev.nshap.impair;

import dev.nshap.backend.CounterRng;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.eval.Condition;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** One target impaired one way; {@link #condition} gives one level x noise seed as an evaluator condition. */
public record Impairment(Target target, Mode mode) {

    /**
     * The noise seed of one prompt at one layer for run seed {@code seed}: every prompt gets its own draw (so a CI
     * over prompts also covers the noise) and layers get independent noise, whatever the batch layout.
     */
    public static long noiseSeed(long seed, int prompt, int layer) {
        return CounterRng.mix64(CounterRng.mix64(CounterRng.mix64(seed) + prompt) + 0x632BE59BD9B4E019L * (layer + 1));
    }

    public Condition condition(double level, long seed) {
        final float amount = (float) level;
        final int first = target.firstLayer();
        return new Condition() {
            @Override public List<Intervention> interventions(int[] sequences, int[] prompts) {
                List<Intervention> out = new ArrayList<>();
                for (Map.Entry<Integer, int[]> e : target.units().entrySet()) {
                    HookPoint hp = new HookPoint(e.getKey(), target.kind());
                    int[] units = e.getValue();
                    switch (mode) {
                        case SCALE -> out.add(Intervention.scale(hp, units, sequences, amount));
                        case NOISE, NEGATIVE_NOISE -> {
                            for (int i = 0; i < sequences.length; i++) {
                                long s = noiseSeed(seed, prompts[i], e.getKey());
                                int[] one = {sequences[i]};
                                out.add(mode == Mode.NOISE ? Intervention.noise(hp, units, one, amount, s)
                                        : Intervention.negativeNoise(hp, units, one, amount, s));
                            }
                        }
                    }
                }
                return out;
            }

            @Override public int firstLayer() { return first; }
        };
    }
}
