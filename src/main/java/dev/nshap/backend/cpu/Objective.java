package dev.nshap.backend.cpu;

import dev.nshap.NshapException;

import java.util.List;
import java.util.Objects;

/**
 * The scalar a backward pass differentiates, over a request's scored positions and targets
 * ({@code ForwardRequest.scorePositions} / {@code targets}):
 * ANSWER_NLL = mean over every scored position of -log p(target) (the evaluator's "loss");
 * ANSWER_LOGPROB = mean log p(target); LOGIT_DIFF = mean of logit[target] - logit[foil], with a foil per scored
 * position in {@code foils} (same shape as the targets); LM_LOSS = mean over every position t < T-1 of every
 * sequence of -log p(tokens[t+1]) (the request's scored positions are then ignored).
 */
public record Objective(Kind kind, List<int[]> foils) {
    public enum Kind { ANSWER_NLL, ANSWER_LOGPROB, LOGIT_DIFF, LM_LOSS }

    public Objective {
        Objects.requireNonNull(kind, "kind");
        if (kind == Kind.LOGIT_DIFF && foils == null)
            throw new NshapException("objective logit-diff needs a foil token for every scored position");
    }

    public static Objective answerNll() { return new Objective(Kind.ANSWER_NLL, null); }
    public static Objective answerLogProb() { return new Objective(Kind.ANSWER_LOGPROB, null); }
    public static Objective logitDiff(List<int[]> foils) { return new Objective(Kind.LOGIT_DIFF, foils); }
    public static Objective lmLoss() { return new Objective(Kind.LM_LOSS, null); }
}
