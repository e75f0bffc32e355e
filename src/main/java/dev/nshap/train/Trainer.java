package dev.nshap.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.ModelInit;
import dev.nshap.model.SafeTensors;
import dev.nshap.util.Progress;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The training loop of {@code nshap train}: random windows of the token files, the mean next-token loss and its
 * gradient (the backward pass), AdamW, a warm-up + cosine schedule. Its whole state (f32 weights, both Adam moments,
 * the step, the loss history) is one safetensors file written atomically, so a run stopped anywhere resumes on the
 * same numbers: batches are a pure function of (seed, step) and every kernel sums in a fixed order.
 */
public final class Trainer {
    public static final String STATE = "state.safetensors", LOG = "train_log.json", MODEL = "model", PLOT = "loss";
    private static final String META = "nshap_train";
    /** Windows per validation forward: bounds the [windows x ctx x vocab] logits the CPU backend allocates. */
    private static final int EVAL_CHUNK = 8;

    /** The objective and its gradient: mean next-token NLL of the sequences, dLoss/dW added into {@code grads}. */
    @FunctionalInterface
    public interface LossFn { double lmLoss(List<int[]> sequences, GPT2Weights grads); }

    /** How the run is driven (none of it changes the numbers). */
    public record Options(int evalEvery, int valWindows, int checkpointEvery, int logEvery, double maxMinutes, long stopAt) {}

    public enum End { DONE, TIME_LIMIT, STOP_AT, SIGNAL }

    public final TrainConfig cfg;
    private final TokenData data;
    private final Path out;
    private final Options opt;
    private final PrintStream err;
    private final GPT2Weights weights;
    private final AdamW adam;
    private final LossFn loss;
    private long step;
    private double seconds;          // training time over all sittings
    private final ArrayNode trainCurve, valCurve;
    private volatile boolean stopRequested;
    private final List<int[]> valSet;

    private Trainer(TrainConfig cfg, TokenData data, Path out, Options opt, PrintStream err, GPT2Weights w,
                    java.util.function.Function<GPT2Weights, LossFn> lossFactory, ArrayNode train, ArrayNode val) {
        this.cfg = cfg;
        this.data = data;
        this.out = out;
        this.opt = opt;
        this.err = err;
        this.weights = w;
        this.adam = new AdamW(w, cfg.beta1(), cfg.beta2(), cfg.eps(), cfg.weightDecay(), cfg.clip());
        this.loss = lossFactory.apply(w);
        this.trainCurve = train;
        this.valCurve = val;
        this.valSet = data.valWindows(opt.valWindows(), cfg.ctx());
    }

    /** A new run from Hugging Face's initialisation under {@code cfg.seed}. */
    public static Trainer fresh(TrainConfig cfg, TokenData data, Path out, Options opt, PrintStream err,
                                java.util.function.Function<GPT2Weights, LossFn> lossFactory) {
        if (Files.exists(out.resolve(STATE)))
            throw new NshapException(out.resolve(STATE) + " exists: continue it with --resume, or choose another --out");
        GPT2Weights w = ModelInit.random(cfg.model(), cfg.seed());
        return new Trainer(cfg, data, out, opt, err, w, lossFactory, Json.MAPPER.createArrayNode(), Json.MAPPER.createArrayNode());
    }

    /** Reads the saved configuration of {@code out}'s checkpoint (for checks before loading data). */
    public static TrainConfig savedConfig(Path out) {
        return TrainConfig.fromJson(savedMeta(out).get("config"));
    }

    private static JsonNode savedMeta(Path out) {
        Path f = out.resolve(STATE);
        if (!Files.isRegularFile(f)) throw new NshapException(f + ": no checkpoint to resume");
        String m = SafeTensors.open(f).metadata().get(META);
        if (m == null) throw new NshapException(f + ": not a training checkpoint of nshap train (no " + META + " metadata)");
        try {
            return Json.MAPPER.readTree(m);
        } catch (java.io.IOException e) {
            throw new NshapException(f + ": unreadable " + META + " metadata: " + e.getMessage());
        }
    }

    /** Continues the run saved in {@code out} with {@code cfg} (the saved one, perhaps with another horizon). */
    public static Trainer resume(TrainConfig cfg, TokenData data, Path out, Options opt, PrintStream err,
                                 java.util.function.Function<GPT2Weights, LossFn> lossFactory) {
        Path f = out.resolve(STATE);
        JsonNode meta = savedMeta(out);
        SafeTensors st = SafeTensors.open(f);
        GPT2Weights w = new GPT2Weights(cfg.model(), true);
        Trainer t = new Trainer(cfg, data, out, opt, err, w, lossFactory, (ArrayNode) meta.get("train"), (ArrayNode) meta.get("val"));
        for (AdamW.Param p : t.adam.params()) {
            st.readFloats(p.name(), p.p(), 0);
            st.readFloats("adam_m." + p.name(), p.m(), 0);
            st.readFloats("adam_v." + p.name(), p.v(), 0);
        }
        t.step = meta.get("step").asLong();
        t.seconds = meta.get("seconds").asDouble();
        t.adam.setSteps(t.step);
        return t;
    }

    public long step() { return step; }

    public GPT2Weights weights() { return weights; }

    public AdamW optimizer() { return adam; }

    public long tokensSeen() { return step * cfg.tokensPerStep(); }

    /** Asks the loop to checkpoint and stop after the step in progress (signal handlers call this). */
    public void requestStop() { stopRequested = true; }

    /** Trains until the horizon, the time limit, {@code stopAt} or a stop request; checkpoints on the way out. */
    public End run() {
        long t0 = System.nanoTime(), step0 = step;
        int micro = cfg.batch() / cfg.microBatch();
        long limit = opt.stopAt() > 0 ? Math.min(opt.stopAt(), cfg.steps()) : cfg.steps();
        double maxSecs = opt.maxMinutes() > 0 ? opt.maxMinutes() * 60 : Double.POSITIVE_INFINITY;
        long lastLog = 0;
        End end = step >= cfg.steps() ? End.DONE : null;
        while (end == null) {
            if (stopRequested) { end = End.SIGNAL; break; }
            double sitting = (System.nanoTime() - t0) / 1e9;
            if (sitting >= maxSecs) { end = End.TIME_LIMIT; break; }
            if (step >= limit) { end = step >= cfg.steps() ? End.DONE : End.STOP_AT; break; }
            long ts = System.nanoTime();
            List<int[]> batch = data.batch(cfg.seed(), step, cfg.batch(), cfg.ctx());
            adam.zeroGrads();
            double l = 0;
            for (int k = 0; k < micro; k++)
                l += loss.lmLoss(batch.subList(k * cfg.microBatch(), (k + 1) * cfg.microBatch()), adam.grads());
            l /= micro;
            adam.scaleGrads(1f / micro);
            if (!Double.isFinite(l))
                throw new NshapException("training diverged at step " + step + " (loss " + l + "): lower --lr; the last checkpoint is kept");
            double lr = cfg.lrAt(step);
            double gn = adam.step(lr);
            step++;
            seconds += (System.nanoTime() - ts) / 1e9;
            ArrayNode row = trainCurve.addArray();
            row.add(step).add(l).add(lr).add(gn);
            boolean last = step >= limit;
            if (opt.evalEvery() > 0 && (step % opt.evalEvery() == 0 || step == cfg.steps())) {
                double v = valLoss(weights, valSet);
                valCurve.addArray().add(step).add(v);
                err.printf(Locale.ROOT, "[train] step %d val loss %.4f (%d windows)%n", step, v, valSet.size());
            }
            long now = System.nanoTime();
            if (opt.logEvery() > 0 && (step % opt.logEvery() == 0 || last || now - lastLog > 30_000_000_000L)) {
                lastLog = now;
                double secs = (now - t0) / 1e9, perStep = secs / (step - step0);
                double eta = Math.min((cfg.steps() - step) * perStep, Math.max(0, maxSecs - secs));
                err.printf(Locale.ROOT, "[train] step %d/%d loss %.4f lr %.2e |g| %.3f %.0f tok/s %.2f s/step ETA %s%n",
                        step, cfg.steps(), l, lr, gn, (step - step0) * cfg.tokensPerStep() / secs, perStep,
                        Progress.formatSeconds(eta));
            }
            if (opt.checkpointEvery() > 0 && step % opt.checkpointEvery() == 0 && step < limit) checkpoint();
        }
        checkpoint();
        err.printf(Locale.ROOT, "[train] %s at step %d (%d tokens seen); checkpoint %s%n", switch (end) {
            case DONE -> "done"; case TIME_LIMIT -> "time limit reached"; case STOP_AT -> "stopped as asked";
            case SIGNAL -> "stopped by a signal"; }, step, tokensSeen(), out.resolve(STATE));
        return end;
    }

    /** Mean next-token NLL over every position of the windows (CPU forward, f32). */
    public static double valLoss(GPT2Weights w, List<int[]> windows) {
        try (CpuBackend b = new CpuBackend(w)) {
            return valLoss(b, windows);
        }
    }

    private static double valLoss(CpuBackend b, List<int[]> windows) {
        double sum = 0;
        long count = 0;
        for (int i = 0; i < windows.size(); i += EVAL_CHUNK) {
            ForwardRequest req = new ForwardRequest();
            req.wantLogits = false;
            for (int[] win : windows.subList(i, Math.min(windows.size(), i + EVAL_CHUNK))) {
                int n = win.length - 1;
                int[] in = java.util.Arrays.copyOf(win, n), pos = new int[n], tg = new int[n];
                for (int k = 0; k < n; k++) { pos[k] = k; tg[k] = win[k + 1]; }
                req.add(in, pos, tg);
            }
            ForwardResult r = b.forward(req);
            for (float[] lps : r.targetLogProb()) {
                for (float lp : lps) sum -= lp;
                count += lps.length;
            }
        }
        return sum / count;
    }

    /** The run's record: configuration, curves, tokens seen, time. */
    public ObjectNode log() {
        ObjectNode j = Json.MAPPER.createObjectNode();
        j.set("config", cfg.toJson());
        j.put("step", step);
        j.put("tokens_seen", tokensSeen());
        j.put("tokens_per_step", cfg.tokensPerStep());
        j.put("seconds", seconds);
        j.put("parameters", weights.parameterCount());
        j.put("train_file", data.trainFile.getFileName().toString());
        j.put("train_tokens", data.train.length);
        j.put("val_tokens", data.val.length);
        j.put("val_windows_during_training", valSet.size());
        j.put("windows", "training windows: " + cfg.ctx() + " contiguous tokens (targets: all but the first) from uniform random starts,"
                + " a pure function of (seed, step, index) (counter-based RNG)");
        j.put("train_columns", "step, loss (mean of the step's batch), lr, gradient L2 norm before clipping");
        j.set("train", trainCurve);
        j.set("val", valCurve);
        return j;
    }

    /** Writes weights, moments, step and history as one file, atomically (a reader never sees half a checkpoint). */
    public void checkpoint() {
        LinkedHashMap<String, SafeTensors.Tensor> t = Checkpoint.tensors(weights, "F32");
        t.putAll(adam.stateTensors());
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "pt");
        try {
            meta.put(META, Json.MAPPER.writer().without(com.fasterxml.jackson.databind.SerializationFeature.INDENT_OUTPUT)
                    .writeValueAsString(log()));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        SafeTensors.write(out.resolve(STATE), t, meta);
        Json.writeFile(out.resolve(LOG), log());
        // A usable model at every checkpoint, not only at the end: a long run's early model can be put to work.
        writeModel(null);
    }

    /** Writes the model (Hugging Face layout, f16) as {@code out/model}; returns its directory. */
    public Path writeModel(Map<String, String> extraMeta) {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("nshap_trained_by", "nshap train");
        meta.put("nshap_train_step", Long.toString(step));
        meta.put("nshap_train_tokens_seen", Long.toString(tokensSeen()));
        if (extraMeta != null) meta.putAll(extraMeta);
        Path dir = out.resolve(MODEL);
        Checkpoint.write(dir, weights, "F16", meta);
        return dir;
    }

    public GPT2Config modelConfig() { return weights.config; }
}
