package dev.nshap.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.io.Json;
import dev.nshap.model.GPT2Config;

/**
 * Everything that decides a training run's numbers (the model's shape, data order, optimizer, schedule), saved in
 * each checkpoint so that {@code --resume} continues the same run. {@code steps} is the schedule's horizon.
 */
public record TrainConfig(int nLayer, int nHead, int nEmbd, int ctx, int vocab, int batch, int microBatch, long steps,
                          double lr, double minLr, int warmup, double weightDecay, double beta1, double beta2,
                          double eps, double clip, long seed) {

    public TrainConfig {
        if (batch <= 0 || microBatch <= 0) throw new NshapException("--batch and --micro-batch must be positive");
        if (batch % microBatch != 0)
            throw new NshapException("--batch " + batch + " is not a multiple of --micro-batch " + microBatch);
        if (steps <= 0) throw new NshapException("--steps must be positive, got " + steps);
        if (ctx < 1) throw new NshapException("--ctx must be positive, got " + ctx);
        if (vocab < 1 || vocab > 65536) throw new NshapException("--vocab-size must be in [1, 65536] (uint16 token files), got " + vocab);
        if (!(lr > 0) || !(minLr >= 0) || minLr > lr) throw new NshapException("need 0 <= --min-lr <= --lr and --lr > 0");
        if (warmup < 0) throw new NshapException("--warmup must be >= 0");
        if (!(weightDecay >= 0)) throw new NshapException("--weight-decay must be >= 0");
        if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) throw new NshapException("Adam betas must be in [0, 1)");
        if (!(eps > 0)) throw new NshapException("Adam eps must be positive");
    }

    public GPT2Config model() {
        return new GPT2Config(nLayer, nHead, nEmbd, ctx, vocab, 1e-5, "gelu_new");
    }

    public int tokensPerStep() { return batch * ctx; }

    /** Linear warm-up from lr/warmup to lr over {@code warmup} steps, then a cosine from lr to minLr at {@code steps}. */
    public double lrAt(long step) {
        if (step < warmup) return lr * (step + 1) / warmup;
        double frac = Math.min(1.0, (double) (step - warmup) / Math.max(1, steps - warmup));
        return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * frac));
    }

    public ObjectNode toJson() {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("n_layer", nLayer); o.put("n_head", nHead); o.put("n_embd", nEmbd); o.put("ctx", ctx); o.put("vocab_size", vocab);
        o.put("batch", batch); o.put("micro_batch", microBatch); o.put("steps", steps);
        o.put("lr", lr); o.put("min_lr", minLr); o.put("warmup", warmup); o.put("weight_decay", weightDecay);
        o.put("beta1", beta1); o.put("beta2", beta2); o.put("eps", eps); o.put("clip", clip); o.put("seed", seed);
        return o;
    }

    public static TrainConfig fromJson(JsonNode o) {
        return new TrainConfig(o.get("n_layer").asInt(), o.get("n_head").asInt(), o.get("n_embd").asInt(), o.get("ctx").asInt(),
                o.path("vocab_size").asInt(dev.nshap.model.GPT2Config.GPT2_VOCAB),
                o.get("batch").asInt(), o.get("micro_batch").asInt(), o.get("steps").asLong(), o.get("lr").asDouble(),
                o.get("min_lr").asDouble(), o.get("warmup").asInt(), o.get("weight_decay").asDouble(), o.get("beta1").asDouble(),
                o.get("beta2").asDouble(), o.get("eps").asDouble(), o.get("clip").asDouble(), o.get("seed").asLong());
    }

    public TrainConfig withSteps(long s) {
        return new TrainConfig(nLayer, nHead, nEmbd, ctx, vocab, batch, microBatch, s, lr, minLr, warmup, weightDecay, beta1, beta2, eps, clip, seed);
    }
}
