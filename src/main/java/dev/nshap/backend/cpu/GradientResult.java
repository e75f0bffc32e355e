package dev.nshap.backend.cpu;

import dev.nshap.backend.HookPoint;

import java.util.Map;

/**
 * @param value       the objective, computed by the differentiated (intervened) forward pass
 * @param activations per asked hook, per sequence, the activations [T x width] after that hook's interventions
 *                    (the layout of {@code ForwardResult.cache})
 * @param grads       per asked hook, per sequence, d value / d activation [T x width], the activation taken after
 *                    that hook's interventions (so a zeroed unit still has the gradient of what reads it)
 */
public record GradientResult(double value, Map<HookPoint, float[][]> activations, Map<HookPoint, float[][]> grads) {
}
