package dev.nshap.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.analysis.LayerLens;
import dev.nshap.backend.Backend;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.impair.Results;
import dev.nshap.impair.Stats;
import dev.nshap.inspect.NeuronCard;
import dev.nshap.io.Csv;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.plot.Charts;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

@Command(name = "lens", mixinStandardHelpOptions = true,
        description = "Layer-difference lens: the tokens the residual-stream difference between two layers promotes and suppresses "
                + "(at the first answer position, through ln_f's scale and the unembedding), and per layer the effect on KL and "
                + "loss of skipping its attention, its MLP or both. One table (JSON + CSV), one plot.")
public final class LensCommand implements Runnable {
    @Mixin ModelOptions model;

    @Option(names = "--dataset", required = true, paramLabel = "FILE.jsonl", description = "prompt set")
    Path dataset;

    @Option(names = "--pairs", paramLabel = "I:J,...", description = "residual positions to difference, 0..n_layer (n_layer = the final "
            + "residual); default: every layer's own I:I+1")
    String pairs;

    @Option(names = "--top", defaultValue = "10", description = "tokens listed per pair and side (default: ${DEFAULT-VALUE})")
    int top;

    @Option(names = "--max-tokens", defaultValue = "8192", description = "tokens per forward batch (default: ${DEFAULT-VALUE})")
    int maxTokens;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "output directory")
    Path out;

    @Option(names = "--no-plot", description = "skip the PNG/SVG chart")
    boolean noPlot;

    @Override public void run() {
        long t0 = System.nanoTime();
        if (top < 1) throw new NshapException("--top must be at least 1");
        if (maxTokens < 1) throw new NshapException("--max-tokens must be positive");
        Dataset d = Dataset.load(dataset);
        Checkpoint.LoadedModel m = model.load();
        GPT2Config c = m.config();
        List<int[]> ps = parsePairs(pairs, c);
        TokenizedDataset data = d.tokenize(m.tokenizer(), c);
        List<Metric> metrics = List.of(Metric.KL, Metric.LOSS);
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("format", "nshap-layer-lens-1");
        ObjectNode cfg = o.putObject("config");
        ImpairOptions.describeModel(cfg, m, model);
        cfg.put("dataset", dataset.toString());
        cfg.put("prompts", data.size());
        cfg.put("top", top);
        cfg.put("position", "each prompt's first answer position");
        cfg.put("residual_index", "i < n_layer: blocks.i.hook_resid_pre; i = n_layer: the final hook_resid_post");
        cfg.put("skip", "the layer's hook_attn_out and/or hook_mlp_out zeroed");
        cfg.put("ci", "95% Student-t over prompts");
        StringBuilder csv = new StringBuilder("section,from,to,layer,skip,rank,token,text,value,ci_low,ci_high\n");
        StringBuilder txt = new StringBuilder();
        long passes;
        try (Backend be = model.open(m.weights())) {
            Evaluator ev = new Evaluator(be, data, maxTokens);
            ArrayNode lens = o.putArray("lens");
            for (int[] pr : ps) {
                double[] sc = LayerLens.lens(m.weights(), LayerLens.meanDifference(ev, pr[0], pr[1]));
                ObjectNode e = lens.addObject();
                e.put("from", pr[0]);
                e.put("to", pr[1]);
                txt.append(String.format(Locale.ROOT, "r%d - r%d:", pr[1], pr[0]));
                for (boolean up : new boolean[]{true, false}) {
                    ArrayNode a = e.putArray(up ? "promotes" : "suppresses");
                    var list = NeuronCard.top(sc, top, up, m.tokenizer()::decode);
                    txt.append(up ? " promotes" : "  suppresses");
                    for (int r = 0; r < list.size(); r++) {
                        var t = list.get(r);
                        a.addObject().put("token", t.token()).put("text", t.text()).put("score", t.score());
                        csv.append(up ? "promotes" : "suppresses").append(',').append(pr[0]).append(',').append(pr[1]).append(",,,").append(r + 1)
                                .append(',').append(t.token()).append(',').append(Csv.cell(t.text())).append(',').append(t.score()).append(",,\n");
                        if (r < 5) txt.append(' ').append(t.text().replace("\n", "\\n"));
                    }
                }
                txt.append('\n');
            }
            List<double[]> clean = ev.clean(List.of(Metric.LOSS));
            double[][][] v = LayerLens.skipEffects(ev, metrics);
            ArrayNode skips = o.putArray("skips");
            for (int l = 0; l < c.nLayer(); l++)
                for (LayerLens.Skip s : LayerLens.Skip.values()) {
                    int ci = l * 3 + s.ordinal();
                    ObjectNode e = skips.addObject();
                    e.put("layer", l);
                    e.put("skip", s.name().toLowerCase(Locale.ROOT));
                    double[] dl = new double[data.size()];
                    for (int p = 0; p < dl.length; p++) dl[p] = v[1][ci][p] - clean.get(0)[p];
                    Stats kl = Stats.of(v[0][ci]), dls = Stats.of(dl);
                    put(e, "kl", kl);
                    put(e, "loss_change", dls);
                    for (Object[] q : new Object[][]{{"kl", kl}, {"loss_change", dls}}) {
                        Stats st = (Stats) q[1];
                        csv.append(q[0]).append(",,,").append(l).append(',').append(e.get("skip").asText()).append(",,,,").append(d(st.mean()))
                                .append(',').append(d(st.ciLow())).append(',').append(d(st.ciHigh())).append('\n');
                    }
                    txt.append(String.format(Locale.ROOT, "skip layer %d %-4s: KL %.4g  loss %+.4g%n", l, e.get("skip").asText(), kl.mean(), dls.mean()));
                }
            passes = ev.forwardPasses();
        }
        o.set("provenance", Results.provenance((System.nanoTime() - t0) / 1e9, passes));
        Path json = out.resolve("layer-lens.json"), csvf = out.resolve("layer-lens.csv");
        Results.write(json, o, csvf, csv.toString());
        System.out.print(txt);
        System.out.println("wrote " + json + " and " + csvf);
        if (!noPlot) for (Path p : Charts.plot(o, out.resolve("layer-lens"), Charts.WIDTH, Charts.HEIGHT)) System.out.println("wrote " + p);
    }

    private static String d(double x) { return Double.isFinite(x) ? Double.toString(x) : ""; }

    private static void put(ObjectNode e, String k, Stats s) {
        ObjectNode x = e.putObject(k);
        Results.num(x, "mean", s.mean());
        Results.num(x, "ci_low", s.ciLow());
        Results.num(x, "ci_high", s.ciHigh());
    }

    static List<int[]> parsePairs(String s, GPT2Config c) {
        List<int[]> out = new ArrayList<>();
        if (s == null) {
            for (int l = 0; l < c.nLayer(); l++) out.add(new int[]{l, l + 1});
            return out;
        }
        for (String part : s.split(",", -1)) {
            String[] ij = part.trim().split(":", -1);
            if (ij.length != 2) throw new NshapException("--pairs '" + s + "': expected I:J,...");
            int[] p = new int[2];
            for (int k = 0; k < 2; k++) {
                try {
                    p[k] = Integer.parseInt(ij[k].trim());
                } catch (NumberFormatException e) {
                    throw new NshapException("--pairs '" + s + "': '" + ij[k].trim() + "' is not a layer number");
                }
                if (p[k] < 0 || p[k] > c.nLayer()) throw new NshapException("--pairs: " + p[k] + " outside 0.." + c.nLayer());
            }
            if (p[0] == p[1]) throw new NshapException("--pairs: " + part.trim() + " is the difference of a layer with itself");
            out.add(p);
        }
        return out;
    }
}
