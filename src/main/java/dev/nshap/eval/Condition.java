package dev.nshap.eval;

import dev.nshap.backend.Intervention;

import java.util.ArrayList;
import java.util.List;

/**
 * One way of running the model (a coalition, an impairment level, the clean model...). The evaluator packs
 * many conditions x prompts into each batch and asks every condition for its interventions on the batch
 * sequences that evaluate it.
 */
public interface Condition {
    /**
     * @param sequences the batch indices that evaluate this condition
     * @param prompts   for each of those sequences, the prompt index in the dataset (e.g. for per-prompt noise seeds)
     */
    List<Intervention> interventions(int[] sequences, int[] prompts);

    /** The first layer any intervention touches; layers before it are the same as in the clean run. */
    int firstLayer();

    /** The clean model. */
    static Condition clean(int nLayer) {
        return new Condition() {
            @Override public List<Intervention> interventions(int[] s, int[] p) { return List.of(); }
            @Override public int firstLayer() { return nLayer; }
        };
    }

    /** Fixed interventions (their own {@code sequences} are ignored), re-targeted at this condition's sequences. */
    static Condition of(List<Intervention> templates, int nLayer) {
        int first = nLayer;
        for (Intervention iv : templates) first = Math.min(first, iv.hook().layer());
        final int f = first;
        return new Condition() {
            @Override public List<Intervention> interventions(int[] s, int[] p) {
                List<Intervention> out = new ArrayList<>(templates.size());
                for (Intervention iv : templates)
                    out.add(iv.withSequences(s));
                return out;
            }
            @Override public int firstLayer() { return f; }
        };
    }
}
