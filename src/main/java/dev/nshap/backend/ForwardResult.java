package dev.nshap.backend;

import java.util.Map;

/**
 * @param logits         per sequence, [scored positions x V] row-major; null entries where nothing was scored
 *                       or {@code wantLogits} was false
 * @param targetLogProb  per sequence, log p(target) at each scored position (null where no targets were given)
 * @param top1           per sequence, the arg-max token at each scored position (null where nothing was scored)
 * @param cache          per requested hook point, per sequence, the activations [T x width]
 */
public record ForwardResult(float[][] logits, float[][] targetLogProb, int[][] top1, Map<HookPoint, float[][]> cache) {
}
