package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.bench.BackwardBench;
import dev.nshap.bench.BenchReport;
import dev.nshap.model.GPT2Weights;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.Locale;

@Command(name = "backward", mixinStandardHelpOptions = true,
        description = {"CPU backward pass next to the forward of the same batch (random-init model, random tokens): "
                + "lmLoss (the training step's loss and weight gradients) against a forward scoring every position, "
                + "and an attribution backward (answer NLL at the last position, gradients at every mlp.hook_post, "
                + "no weight gradients) against a forward scoring the last position."})
public final class BenchBackwardCommand implements Runnable {
    @Mixin BenchCommand.Common o;
    @Option(names = "--batch", defaultValue = "8") int batch;
    @Option(names = "--seq", defaultValue = "64") int seq;

    @Override public void run() {
        o.check();
        if (o.cuda()) throw new NshapException("bench backward: the backward pass runs on the CPU only (--backend cpu)");
        BenchCommand.positive("--batch and --seq", batch, seq);
        if (seq < 2) throw new NshapException("--seq must be at least 2 (the LM loss predicts the next token)");
        if (seq > o.cfg.nPositions()) throw new NshapException("--seq " + seq + " exceeds the model's context of " + o.cfg.nPositions());
        BenchReport r = o.report("backward", null);
        r.config.put("batch", batch);
        r.config.put("seq", seq);
        GPT2Weights w = o.weights();
        System.err.println("timing lmLoss, the attribution backward and the forwards...");
        BackwardBench.Result res = BackwardBench.run(w, batch, seq, o.warmup, o.reps, o.seed);
        double tokens = (double) batch * seq;
        r.row("lmLoss tokens/s (forward + backward, weight grads)", res.lmLoss(), tokens / res.lmLoss().median(), "tokens/s", null);
        r.row("forward tokens/s, every position scored", res.forwardAll(), tokens / res.forwardAll().median(), "tokens/s", null);
        r.row("lmLoss / forward (every position)", null, res.lmLoss().median() / res.forwardAll().median(), "ratio", null);
        r.row("attribution backward tokens/s (last position, mlp.hook_post grads)", res.atp(), tokens / res.atp().median(), "tokens/s", null);
        r.row("forward tokens/s, last position scored", res.forwardLast(), tokens / res.forwardLast().median(), "tokens/s", null);
        r.row("attribution backward / forward (last position)", null, res.atp().median() / res.forwardLast().median(), "ratio", null);
        double[] s = res.lmLossSplit();
        double total = 0;
        for (int i = 0; i < 6; i++) total += s[i];
        r.notes.add(String.format(Locale.ROOT, "lmLoss split: layer forward %.0f%%, logits %.0f%%, softmax %.0f%%, head dX %.0f%%, "
                        + "head dW %.0f%%, layer backward %.0f%% (attention %.0f%%)", 100 * s[0] / total, 100 * s[1] / total,
                100 * s[2] / total, 100 * s[3] / total, 100 * s[4] / total, 100 * s[5] / total, 100 * s[6] / total));
        r.notes.add(String.format(Locale.ROOT, "activations kept: lmLoss %.1f MiB, attribution backward %.1f MiB",
                res.lmLossBytes() / 1048576.0, res.atpBytes() / 1048576.0));
        r.method.put("ratio", "median time of the backward call over the median time of the forward of the same batch");
        o.finish(r, "CPU backward, GPT-2 " + o.config + " (random init), batch " + batch + " x " + seq + " tokens");
    }
}
