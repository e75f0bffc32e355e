package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.backend.cpu.CpuGradients;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import dev.nshap.plot.Charts;
import dev.nshap.train.Baselines;
import dev.nshap.train.TokenData;
import dev.nshap.train.TrainConfig;
import dev.nshap.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/** {@code nshap train}: a GPT-2 trained from scratch on the CPU, from the token files of {@code nshap datasets tokenize}. */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Train a GPT-2 (by default GPT-2's 50,257-token vocabulary; tied unembedding) on the CPU from the token files"
                + " of `nshap datasets tokenize`: AdamW (decoupled weight decay on the Conv1D matrices only), linear warm-up"
                + " then cosine decay, global-norm gradient clipping, random windows drawn from (seed, step).",
                "OUT gets state.safetensors (the whole training state, every --checkpoint-every steps and on SIGINT/SIGTERM),"
                        + " train_log.json, loss.png/.svg and model/ (Hugging Face layout, f16) when the run ends."
                        + " --resume continues OUT's run on exactly the numbers an unbroken run would produce."})
public final class TrainCommand implements Callable<Integer> {

    @Option(names = "--tokens", required = true, paramLabel = "FILE.bin",
            description = "training tokens (uint16); FILE.val.bin beside it is the validation split")
    Path tokens;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "run folder (checkpoint, log, plot, model)")
    Path out;

    @Option(names = "--resume", description = "continue the run saved in --out (its shape and optimizer settings are kept)")
    boolean resume;

    @Option(names = "--n-layer", description = "layers (default 4)") Integer nLayer;
    @Option(names = "--n-head", description = "attention heads (default 4)") Integer nHead;
    @Option(names = "--n-embd", description = "width (default 128)") Integer nEmbd;
    @Option(names = "--ctx", description = "context = n_positions (default 128)") Integer ctx;
    @Option(names = "--vocab-size", description = "vocabulary (default 50257, GPT-2's; every token id must be below it)") Integer vocabSize;
    @Option(names = "--batch", description = "sequences per step (default 16)") Integer batch;
    @Option(names = "--micro-batch", description = "sequences per backward pass; --batch is their multiple (memory only; default 8)") Integer microBatch;
    @Option(names = "--steps", description = "steps; the cosine reaches --min-lr here (default 2000). With --resume: a new horizon")
    Long steps;
    @Option(names = "--lr", description = "peak learning rate (default 3e-3)") Double lr;
    @Option(names = "--min-lr", description = "final learning rate (default 3e-4)") Double minLr;
    @Option(names = "--warmup", description = "linear warm-up steps (default 100)") Integer warmup;
    @Option(names = "--weight-decay", description = "AdamW decoupled weight decay (default 0.1)") Double weightDecay;
    @Option(names = "--beta1", description = "Adam beta1 (default 0.9)") Double beta1;
    @Option(names = "--beta2", description = "Adam beta2 (default 0.95)") Double beta2;
    @Option(names = "--eps", description = "Adam eps (default 1e-8)") Double eps;
    @Option(names = "--clip", description = "global gradient-norm clip, 0 = none (default 1.0)") Double clip;
    @Option(names = "--seed", description = "seed of the initialisation and the windows (default 1)") Long seed;

    @Option(names = "--eval-every", defaultValue = "100", description = "validation loss every N steps, 0 = never (default: ${DEFAULT-VALUE})")
    int evalEvery;
    @Option(names = "--val-windows", defaultValue = "64", description = "validation windows per evaluation, spread over the file (default: ${DEFAULT-VALUE})")
    int valWindows;
    @Option(names = "--final-val-windows", defaultValue = "0",
            description = "windows for the final validation loss and the baselines; 0 = every non-overlapping window (default: ${DEFAULT-VALUE})")
    int finalValWindows;
    @Option(names = "--checkpoint-every", defaultValue = "50", description = "checkpoint every N steps (default: ${DEFAULT-VALUE})")
    int checkpointEvery;
    @Option(names = "--log-every", defaultValue = "10", description = "progress line every N steps (default: ${DEFAULT-VALUE})")
    int logEvery;
    @Option(names = "--max-minutes", defaultValue = "0", description = "stop (checkpoint, write the model) after this long in this sitting; 0 = no limit")
    double maxMinutes;
    @Option(names = "--stop-at", defaultValue = "0", description = "stop after this step (train in sittings; the schedule still ends at --steps)")
    long stopAt;

    @Override public Integer call() {
        if (evalEvery < 0 || valWindows < 0 || finalValWindows < 0 || checkpointEvery < 0 || logEvery < 0 || maxMinutes < 0 || stopAt < 0)
            throw new NshapException("--eval-every, --val-windows, --final-val-windows, --checkpoint-every, --log-every, --max-minutes and --stop-at must be >= 0");
        TrainConfig cfg;
        if (resume) {
            TrainConfig saved = Trainer.savedConfig(out);
            List<String> differ = new ArrayList<>();
            ObjectNode s = saved.toJson();
            Object[][] given = {{"n_layer", nLayer}, {"n_head", nHead}, {"n_embd", nEmbd}, {"ctx", ctx}, {"vocab_size", vocabSize}, {"batch", batch},
                    {"micro_batch", microBatch}, {"lr", lr}, {"min_lr", minLr}, {"warmup", warmup}, {"weight_decay", weightDecay},
                    {"beta1", beta1}, {"beta2", beta2}, {"eps", eps}, {"clip", clip}, {"seed", seed}};
            for (Object[] g : given)
                if (g[1] != null && Double.parseDouble(g[1].toString()) != s.get((String) g[0]).asDouble())
                    differ.add("--" + ((String) g[0]).replace('_', '-') + " " + g[1] + " (saved " + s.get((String) g[0]).asText() + ")");
            if (!differ.isEmpty())
                throw new NshapException("--resume keeps the saved run's settings; these differ: " + String.join(", ", differ));
            cfg = saved;
            if (steps != null && steps != saved.steps()) {
                System.err.printf(Locale.ROOT, "[train] NOTE: new horizon --steps %d (saved %d): the schedule changes from here on%n", steps, saved.steps());
                cfg = saved.withSteps(steps);
            }
        } else {
            cfg = new TrainConfig(or(nLayer, 4), or(nHead, 4), or(nEmbd, 128), or(ctx, 128),
                    or(vocabSize, dev.nshap.model.GPT2Config.GPT2_VOCAB), or(batch, 16),
                    or(microBatch, Math.min(8, or(batch, 16))), or(steps, 2000L), or(lr, 3e-3), or(minLr, 3e-4), or(warmup, 100),
                    or(weightDecay, 0.1), or(beta1, 0.9), or(beta2, 0.95), or(eps, 1e-8), or(clip, 1.0), or(seed, 1L));
        }
        dev.nshap.model.GPT2Config mc = cfg.model(); // checks the shape before any data is read
        TokenData data = TokenData.load(tokens, mc.vocabSize(), cfg.ctx());
        Trainer.Options opt = new Trainer.Options(evalEvery, valWindows, checkpointEvery, logEvery, maxMinutes, stopAt);
        try {
            Files.createDirectories(out);
        } catch (java.io.IOException e) {
            throw new NshapException("--out " + out + ": cannot create: " + e.getMessage());
        }
        Trainer t = resume ? Trainer.resume(cfg, data, out, opt, System.err, w -> new CpuGradients(w)::lmLoss)
                : Trainer.fresh(cfg, data, out, opt, System.err, w -> new CpuGradients(w)::lmLoss);
        System.err.printf(Locale.ROOT, "[train] %s: %d layers x %d, %d heads, context %d, %,d parameters (%.1f MiB f16);"
                        + " %,d train / %,d val tokens; step %d of %d, %d tokens per step%n",
                resume ? "resuming" : "new run", mc.nLayer(), mc.nEmbd(), mc.nHead(), cfg.ctx(), t.weights().parameterCount(),
                t.weights().parameterCount() * 2 / 1048576.0, data.train.length, data.val.length, t.step(), cfg.steps(), cfg.tokensPerStep());

        // SIGINT/SIGTERM: the hook asks the loop to stop after its step and waits for the checkpoint.
        CountDownLatch saved = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            t.requestStop();
            try { saved.await(10, TimeUnit.MINUTES); } catch (InterruptedException ignored) { }
        }, "nshap-train-stop");
        Runtime.getRuntime().addShutdownHook(hook);
        Trainer.End end;
        try {
            end = t.run();
        } finally {
            saved.countDown();
        }
        if (end == Trainer.End.SIGNAL) return 130;
        try { Runtime.getRuntime().removeShutdownHook(hook); } catch (IllegalStateException ignored) { }
        finish(t, data, cfg);
        return 0;
    }

    /** The model (f16), its validation loss as written, the baselines on the same windows, the log and the plot. */
    private void finish(Trainer t, TokenData data, TrainConfig cfg) {
        long t0 = System.nanoTime();
        Path dir = t.writeModel(null);
        Checkpoint.LoadedModel m = Checkpoint.load(dir);
        List<int[]> windows = data.valWindows(finalValWindows, cfg.ctx());
        System.err.printf(Locale.ROOT, "[train] final validation loss of the f16 model over %d windows...%n", windows.size());
        double val = Trainer.valLoss(m.weights(), windows);
        Baselines.Result b = new Baselines(data.train, m.config().vocabSize()).score(windows);
        ObjectNode log = t.log();
        ObjectNode fin = log.putObject("final");
        fin.put("val_loss_f16", val);
        fin.put("val_windows", windows.size());
        fin.put("val_targets", b.pairs());
        fin.put("unigram_val_loss", b.unigram());
        fin.put("bigram_val_loss", b.bigram());
        fin.put("baselines", "fitted on the training tokens, scored on the same validation targets: unigram add-one"
                + " (Laplace); bigram Witten-Bell interpolated with that unigram");
        fin.put("model_sha256", m.weightsSha256());
        Json.writeFile(out.resolve(Trainer.LOG), log);
        List<Path> plots = Charts.write(Charts.trainingCurve(log), out.resolve(Trainer.PLOT), Charts.WIDTH, Charts.HEIGHT);
        System.out.printf(Locale.ROOT, "step %d, %d tokens seen, %.0f s of training%n", t.step(), t.tokensSeen(), log.get("seconds").asDouble());
        System.out.printf(Locale.ROOT, "validation loss %.4f (f16 model, %d targets); unigram %.4f, bigram %.4f%n",
                val, b.pairs(), b.unigram(), b.bigram());
        System.out.printf(Locale.ROOT, "wrote %s, %s, %s (%.1f s)%n", dir, out.resolve(Trainer.LOG), plots.get(0), (System.nanoTime() - t0) / 1e9);
    }

    private static <T> T or(T v, T d) { return v != null ? v : d; }
}
