package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.analysis.SteerScan;
import dev.nshap.analysis.SteerScanJson;
import dev.nshap.backend.Backend;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.impair.Levels;
import dev.nshap.impair.Results;
import dev.nshap.io.Json;
import dev.nshap.io.Npy;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.plot.Charts;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

@Command(name = "steer", mixinStandardHelpOptions = true, description = "Activation steering.",
        subcommands = {SteerCommand.Scan.class})
public final class SteerCommand implements Runnable {
    @Override public void run() { new picocli.CommandLine(this).usage(System.out); }

    @Command(name = "scan", mixinStandardHelpOptions = true,
            description = "Add coefficient x a steering vector at a hook of each chosen layer; every (layer, coefficient) cell in one "
                    + "packed set of batches. Per cell: the metrics, and each component's contribution to the logit difference "
                    + "(embeddings, each layer's attention and MLP, the steering itself); the components clustered by the shape "
                    + "of their curves.")
    public static final class Scan implements Runnable {
        @Mixin ModelOptions model;

        @Option(names = "--dataset", required = true, paramLabel = "FILE.jsonl", description = "prompts the steered model is scored on")
        Path dataset;

        @Option(names = "--hook", defaultValue = "hook_resid_pre",
                description = "where the vector is added in each chosen layer: hook_resid_pre|hook_attn_out|hook_resid_mid|mlp.hook_pre|"
                        + "mlp.hook_post|hook_mlp_out|hook_resid_post (default: ${DEFAULT-VALUE})")
        String hook;

        @Option(names = "--layers", defaultValue = "*", description = "comma-separated layers, or * for every layer (default: ${DEFAULT-VALUE})")
        String layers;

        @Option(names = "--pair", arity = "2", paramLabel = "TEXT", description = "steering vector: activation of the first prompt minus the second's "
                + "at their last token (the shorter left-padded with <|endoftext|> to equal length)")
        List<String> pair;

        @Option(names = "--from-datasets", split = ",", paramLabel = "FILE.jsonl", description = "steering vector: mean activation at the last prompt "
                + "token over the first dataset minus that over the second (two files)")
        List<Path> fromDatasets;

        @Option(names = "--vector", paramLabel = "FILE.npy", description = "steering vector from a float32 .npy of the hook's width (every layer)")
        Path vectorFile;

        @Option(names = "--coefficients", defaultValue = "-10:10:1", description = "start:stop:step (stop included) or a comma list (default: ${DEFAULT-VALUE})")
        String coefficients;

        @Option(names = "--positions", defaultValue = "all", description = "all | from:P (positions >= P) | last (default: ${DEFAULT-VALUE})")
        String positions;

        @Option(names = "--metric", split = ",", defaultValue = "loss,accuracy,kl",
                description = "accuracy|loss|logit-diff|kl (default: ${DEFAULT-VALUE}; logit-diff needs a foil in every prompt)")
        List<String> metricNames;

        @Option(names = "--contrast", split = ",", paramLabel = "TEXT", description = "two texts: the logit-difference direction is the first's "
                + "first token minus the second's, for every prompt (default: each prompt's answer minus its foil)")
        List<String> contrast;

        @Option(names = "--clusters", defaultValue = "3", description = "k of the k-means over curve shapes (default: ${DEFAULT-VALUE})")
        int clusters;

        @Option(names = "--seed", defaultValue = "1", description = "seed of the k-means (default: ${DEFAULT-VALUE})")
        long seed;

        @Option(names = "--max-tokens", defaultValue = "8192", description = "tokens per forward batch (default: ${DEFAULT-VALUE})")
        int maxTokens;

        @Option(names = "--out", required = true, paramLabel = "DIR", description = "output directory")
        Path out;

        @Option(names = "--no-plot", description = "skip the PNG/SVG charts")
        boolean noPlot;

        @Override public void run() {
            long t0 = System.nanoTime();
            int sources = (pair != null ? 1 : 0) + (fromDatasets != null ? 1 : 0) + (vectorFile != null ? 1 : 0);
            if (sources != 1) throw new NshapException("give exactly one steering vector source: --pair A B, --from-datasets A,B or --vector FILE.npy");
            if (fromDatasets != null && fromDatasets.size() != 2) throw new NshapException("--from-datasets needs exactly two files");
            if (contrast != null && contrast.size() != 2) throw new NshapException("--contrast needs exactly two texts");
            if (clusters < 1) throw new NshapException("--clusters must be at least 1");
            if (maxTokens < 1) throw new NshapException("--max-tokens must be positive");
            HookPoint.Kind kind = HookPoint.Kind.ofSuffix(hook.trim());
            if (kind == null) throw new NshapException("unknown --hook '" + hook + "' (expected e.g. hook_resid_pre or mlp.hook_post)");
            double[] coefs;
            try {
                coefs = Levels.parse(coefficients);
            } catch (NshapException e) {
                throw new NshapException(e.getMessage().replace("--levels", "--coefficients"));
            }
            int from = parsePositions(positions);
            List<Metric> metrics = new ArrayList<>();
            for (String s : metricNames) {
                Metric x = Metric.parse(s);
                if (metrics.contains(x)) throw new NshapException("--metric " + s + " is listed twice");
                metrics.add(x);
            }
            Dataset d = Dataset.load(dataset);
            Checkpoint.LoadedModel m = model.load();
            GPT2Config cfg = m.config();
            int[] ls = parseLayers(layers, cfg);
            TokenizedDataset data = d.tokenize(m.tokenizer(), cfg);
            int n = data.size();
            int[] dirA = new int[n], dirB = new int[n];
            if (contrast != null) {
                int a = firstToken(m, contrast.get(0)), b = firstToken(m, contrast.get(1));
                if (a == b) throw new NshapException("--contrast: both texts start with the same token");
                java.util.Arrays.fill(dirA, a);
                java.util.Arrays.fill(dirB, b);
            } else {
                for (int p = 0; p < n; p++) {
                    if (data.foils[p] < 0)
                        throw new NshapException(dataset + ": prompt '" + d.prompts().get(p).id() + "' has no foil; give --contrast A,B for the logit-difference direction");
                    dirA[p] = data.answers[p][0];
                    dirB[p] = data.foils[p];
                }
            }
            int width = kind.width(cfg);
            ObjectNode o = Json.MAPPER.createObjectNode();
            o.put("format", SteerScanJson.FORMAT);
            ObjectNode c = o.putObject("config");
            ImpairOptions.describeModel(c, m, model);
            c.put("dataset", dataset.toString());
            c.put("prompts", n);
            c.put("hook", "blocks.L." + kind.suffix);
            ArrayNode la = c.putArray("layers");
            for (int l : ls) la.add(l);
            ArrayNode ca = c.putArray("coefficients");
            for (double x : coefs) ca.add(x);
            c.put("positions", from == 0 ? "all" : from == Intervention.LAST ? "last" : "from:" + from);
            ArrayNode ma = c.putArray("metrics");
            for (Metric x : metrics) ma.add(x.cliName);
            c.put("direction", contrast != null ? "first token of '" + contrast.get(0) + "' minus '" + contrast.get(1) + "'" : "answer minus foil, per prompt");
            c.put("clusters", clusters);
            c.put("seed", seed);
            c.put("max_tokens", maxTokens);
            c.put("ci", "95% Student-t over prompts");
            try (Backend be = model.open(m.weights())) {
                float[][] vectors;
                ObjectNode vs = c.putObject("vector");
                if (vectorFile != null) {
                    Npy.Array arr = Npy.read(vectorFile);
                    if (arr.data().length != width)
                        throw new NshapException("--vector " + vectorFile + ": " + arr.data().length + " values; blocks.L." + kind.suffix + " has width " + width);
                    for (float v : arr.data()) if (!Float.isFinite(v)) throw new NshapException("--vector " + vectorFile + ": a value is not finite");
                    vectors = new float[ls.length][];
                    for (int i = 0; i < ls.length; i++) vectors[i] = arr.data().clone();
                    vs.put("source", "file");
                    vs.put("file", vectorFile.toString());
                } else if (pair != null) {
                    vectors = pairVectors(be, m, pair.get(0), pair.get(1), kind, ls);
                    vs.put("source", "pair");
                    vs.put("plus", pair.get(0));
                    vs.put("minus", pair.get(1));
                } else {
                    TokenizedDataset a = Dataset.load(fromDatasets.get(0)).tokenize(m.tokenizer(), cfg);
                    TokenizedDataset b = Dataset.load(fromDatasets.get(1)).tokenize(m.tokenizer(), cfg);
                    float[][] ma2 = meanAtLastPromptToken(be, a, kind, ls, maxTokens), mb = meanAtLastPromptToken(be, b, kind, ls, maxTokens);
                    vectors = new float[ls.length][width];
                    for (int i = 0; i < ls.length; i++) for (int k = 0; k < width; k++) vectors[i][k] = ma2[i][k] - mb[i][k];
                    vs.put("source", "datasets");
                    vs.put("plus", fromDatasets.get(0).toString());
                    vs.put("minus", fromDatasets.get(1).toString());
                }
                ArrayNode norms = vs.putArray("l2_norm_per_layer");
                for (float[] v : vectors) {
                    double s = 0;
                    for (float x : v) s += (double) x * x;
                    norms.add(Math.sqrt(s));
                }
                Evaluator ev = new Evaluator(be, data, maxTokens);
                SteerScan.Result r = SteerScan.run(ev, m.weights(), kind, ls, vectors, coefs, from, metrics, dirA, dirB);
                double wall = (System.nanoTime() - t0) / 1e9;
                o.set("provenance", Results.provenance(wall, ev.forwardPasses()));
                SteerScanJson.fill(o, r, cfg, ls, coefs, clusters, seed);
            }
            Path json = out.resolve("steer-scan.json"), csv = out.resolve("steer-scan.csv");
            Results.write(json, o, csv, SteerScanJson.csv(o));
            System.out.println("wrote " + json + " and " + csv);
            if (!noPlot) for (Path p : Charts.plot(o, out.resolve("steer-scan"), Charts.WIDTH, Charts.HEIGHT)) System.out.println("wrote " + p);
            System.out.println(SteerScanJson.summary(o));
        }
    }

    static int parsePositions(String s) {
        String t = s.trim().toLowerCase(Locale.ROOT);
        if (t.equals("all")) return 0;
        if (t.equals("last")) return Intervention.LAST;
        if (t.startsWith("from:")) {
            try {
                int p = Integer.parseInt(t.substring(5).trim());
                if (p < 0) throw new NumberFormatException();
                return p;
            } catch (NumberFormatException e) {
                throw new NshapException("--positions '" + s + "': from:P needs a position P >= 0");
            }
        }
        throw new NshapException("--positions '" + s + "' (expected all, from:P or last)");
    }

    static int[] parseLayers(String s, GPT2Config c) {
        if (s.trim().equals("*")) return java.util.stream.IntStream.range(0, c.nLayer()).toArray();
        Set<Integer> out = new LinkedHashSet<>();
        for (String x : s.split(",", -1)) {
            int l;
            try {
                l = Integer.parseInt(x.trim());
            } catch (NumberFormatException e) {
                throw new NshapException("--layers '" + s + "': '" + x.trim() + "' is not a layer number");
            }
            if (l < 0 || l >= c.nLayer()) throw new NshapException("--layers: layer " + l + " outside 0.." + (c.nLayer() - 1));
            if (!out.add(l)) throw new NshapException("--layers: layer " + l + " is listed twice");
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    static int firstToken(Checkpoint.LoadedModel m, String text) {
        int[] t = m.tokenizer().encode(text);
        if (t.length == 0) throw new NshapException("--contrast: '" + text + "' encodes to no tokens");
        if (t[0] >= m.config().vocabSize()) throw new NshapException("--contrast: '" + text + "' starts with a token outside the model's vocabulary");
        return t[0];
    }

    /** The pair's activation difference at their last token, per layer; the shorter is left-padded with <|endoftext|>. */
    static float[][] pairVectors(Backend be, Checkpoint.LoadedModel m, String plus, String minus, HookPoint.Kind kind, int[] ls) {
        int[] a = m.tokenizer().encode(plus), b = m.tokenizer().encode(minus);
        if (a.length == 0 || b.length == 0) throw new NshapException("--pair: a prompt encodes to no tokens");
        int T = Math.max(a.length, b.length), eot = m.tokenizer().eotToken();
        if (a.length != b.length && (eot < 0 || eot >= m.config().vocabSize()))
            throw new NshapException("--pair: the prompts differ in length and the vocabulary has no <|endoftext|> to pad with");
        if (T > m.config().nPositions()) throw new NshapException("--pair: a prompt is longer than the model's context of " + m.config().nPositions());
        ForwardRequest req = new ForwardRequest();
        req.wantLogits = false;
        req.add(leftPad(a, T, eot), null, null).add(leftPad(b, T, eot), null, null);
        for (int l : ls) req.cache.add(new HookPoint(l, kind));
        ForwardResult r = be.forward(req);
        int width = kind.width(m.config());
        float[][] v = new float[ls.length][width];
        for (int i = 0; i < ls.length; i++) {
            float[][] per = r.cache().get(new HookPoint(ls[i], kind));
            for (int k = 0; k < width; k++) v[i][k] = per[0][(T - 1) * width + k] - per[1][(T - 1) * width + k];
        }
        return v;
    }

    static int[] leftPad(int[] t, int T, int pad) {
        int[] o = new int[T];
        java.util.Arrays.fill(o, pad);
        System.arraycopy(t, 0, o, T - t.length, t.length);
        return o;
    }

    /** Per layer, the clean activation at each prompt's last prompt token (its first scored position), averaged. */
    static float[][] meanAtLastPromptToken(Backend be, TokenizedDataset d, HookPoint.Kind kind, int[] ls, int maxTokens) {
        int width = kind.width(be.config());
        double[][] sum = new double[ls.length][width];
        int from = 0;
        while (from < d.size()) {
            ForwardRequest req = new ForwardRequest();
            req.wantLogits = false;
            for (int l : ls) req.cache.add(new HookPoint(l, kind));
            int tokens = 0, to = from;
            while (to < d.size() && (to == from || tokens + d.sequences[to].length <= maxTokens)) {
                req.add(d.sequences[to], null, null);
                tokens += d.sequences[to].length;
                to++;
            }
            ForwardResult r = be.forward(req);
            for (int i = 0; i < ls.length; i++) {
                float[][] per = r.cache().get(new HookPoint(ls[i], kind));
                for (int p = from; p < to; p++) {
                    int t = d.scorePositions[p][0];
                    for (int k = 0; k < width; k++) sum[i][k] += per[p - from][t * width + k];
                }
            }
            from = to;
        }
        float[][] out = new float[ls.length][width];
        for (int i = 0; i < ls.length; i++) for (int k = 0; k < width; k++) out[i][k] = (float) (sum[i][k] / d.size());
        return out;
    }
}
