package dev.nshap.cli;

import dev.nshap.io.Csv;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.backend.NeuronId;
import dev.nshap.cluster.Cluster;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.impair.Results;
import dev.nshap.inspect.NeuronCard;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

@Command(name = "neuron", mixinStandardHelpOptions = true,
        description = "Neuron card: the tokens a neuron's output direction promotes and suppresses (through the unembedding, "
                + "with and without ln_f's scale), its mean activation per dataset and its top-activating prompts. "
                + "With --cluster, the same for the cluster's summed direction and summed activation.")
public final class NeuronCommand implements Runnable {
    @Mixin ModelOptions model;

    @Parameters(index = "0", arity = "0..1", paramLabel = "NEURON", description = "blocks.L.mlp.hook_post[N]")
    String neuron;

    @Option(names = "--cluster", paramLabel = "FILE", description = "a cluster file instead of one neuron") Path cluster;
    @Option(names = "--datasets", split = ",", paramLabel = "FILE", description = "JSONL prompt sets for activations") List<Path> datasets;
    @Option(names = "--top", defaultValue = "20", description = "tokens and prompts listed (default: ${DEFAULT-VALUE})") int top;
    @Option(names = "--max-tokens", defaultValue = "8192", description = "tokens per forward batch (default: ${DEFAULT-VALUE})") int maxTokens;
    @Option(names = "--out", paramLabel = "DIR", description = "also write neuron.json + neuron.csv there") Path out;
    @Option(names = "--allow-other-weights", description = "use a cluster computed on other weights") boolean allowOtherWeights;
    @Option(names = "--direction", paramLabel = "FILE.npy", description = "logit lens of any residual-stream direction (float32, n_embd values) "
            + "instead of a neuron's") Path directionFile;
    @Option(names = "--ablate-tokens", description = "at the top-activating prompts, remove each earlier token in turn and report the change "
            + "in the activation at the max position (table; heat strip with --out)") boolean ablateTokens;

    @Override public void run() {
        int subjects = (neuron != null ? 1 : 0) + (cluster != null ? 1 : 0) + (directionFile != null ? 1 : 0);
        if (subjects != 1) throw new NshapException("give exactly one of NEURON, --cluster FILE or --direction FILE.npy");
        if (top < 1) throw new NshapException("--top must be at least 1");
        if (directionFile != null && (datasets != null || ablateTokens))
            throw new NshapException("--direction gives the logit lens only; --datasets and --ablate-tokens need a neuron or a cluster");
        if (ablateTokens && (datasets == null || datasets.isEmpty())) throw new NshapException("--ablate-tokens needs --datasets (it works on the top-activating prompts)");
        NeuronId id = neuron == null ? null : NeuronId.parse(neuron);
        Cluster cl = cluster == null ? null : Cluster.read(cluster);
        List<Dataset> ds = new ArrayList<>();
        if (datasets != null) for (Path p : datasets) ds.add(Dataset.load(p));
        Checkpoint.LoadedModel m = model.load();
        Map<Integer, int[]> members;
        String what;
        float[] fileDir = null;
        if (directionFile != null) {
            dev.nshap.io.Npy.Array arr = dev.nshap.io.Npy.read(directionFile);
            if (arr.data().length != m.config().nEmbd())
                throw new NshapException("--direction " + directionFile + ": " + arr.data().length + " values; the residual stream has " + m.config().nEmbd());
            for (float v : arr.data()) if (!Float.isFinite(v)) throw new NshapException("--direction " + directionFile + ": a value is not finite");
            fileDir = arr.data();
            members = new TreeMap<>();
            what = "direction " + directionFile.getFileName();
        } else if (id != null) {
            id.checkFor(m.config());
            members = new TreeMap<>(Map.of(id.layer(), new int[]{id.index()}));
            what = id.toString();
        } else {
            cl.checkFits(m.config(), allowOtherWeights ? null : m.weightsSha256(), cluster);
            members = cl.byLayer();
            what = "cluster " + cluster.getFileName() + " (" + cl.neurons().size() + " neurons, summed)";
        }
        var tok = m.tokenizer();
        modelTokenizer = tok;
        float[] dir = fileDir != null ? fileDir : NeuronCard.direction(m.weights(), members);
        double[] raw = NeuronCard.logitEffect(m.weights(), dir, false), ln = NeuronCard.logitEffect(m.weights(), dir, true);

        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("format", "nshap-neuron-card-1");
        ObjectNode c = o.putObject("config");
        ImpairOptions.describeModel(c, m, model);
        c.put("subject", what);
        if (cluster != null) c.put("cluster", cluster.toString());
        if (directionFile != null) c.put("direction_file", directionFile.toString());
        c.put("top", top);
        ArrayNode ns = o.putArray("neurons");
        members.forEach((l, xs) -> { for (int n : xs) ns.add(new NeuronId(l, n).toString()); });
        double norm = 0;
        for (float x : dir) norm += (double) x * x;
        o.put("direction_norm", Math.sqrt(norm));
        ArrayNode ablated = ablateTokens ? o.putArray("ablate_tokens") : null;
        StringBuilder csv = new StringBuilder("section,dataset,rank,token,text,value,prompt_id,position\n");
        StringBuilder txt = new StringBuilder(what + "  (|" + (fileDir != null ? "" : "c_proj ") + "direction| = " + String.format(Locale.ROOT, "%.4g", Math.sqrt(norm)) + ")\n");
        String[][] sections = {{"promotes", "true", "false"}, {"suppresses", "false", "false"}, {"promotes_ln", "true", "true"}, {"suppresses_ln", "false", "true"}};
        for (String[] s : sections) {
            var list = NeuronCard.top(s[2].equals("true") ? ln : raw, top, s[1].equals("true"), tok::decode);
            ArrayNode a = o.putArray(s[0]);
            txt.append(String.format(Locale.ROOT, "%-14s", s[0] + ":"));
            for (int r = 0; r < list.size(); r++) {
                var t = list.get(r);
                a.addObject().put("token", t.token()).put("text", t.text()).put("score", t.score());
                csv.append(s[0]).append(",,").append(r + 1).append(',').append(t.token()).append(',').append(Csv.cell(t.text()))
                        .append(',').append(t.score()).append(",,\n");
                if (r < 12) txt.append(String.format(Locale.ROOT, " %s(%.3g)", printable(t.text()), t.score()));
            }
            txt.append('\n');
        }
        if (!ds.isEmpty()) {
            ArrayNode da = o.putArray("datasets");
            try (Backend be = model.open(m.weights())) {
                for (Dataset d : ds) {
                    TokenizedDataset td = d.tokenize(tok, m.config());
                    NeuronCard.DatasetStats st = NeuronCard.activations(new Evaluator(be, td, maxTokens), members, top);
                    ObjectNode x = da.addObject();
                    x.put("name", d.name());
                    x.put("file", d.file().toString());
                    x.put("topic", d.topic());
                    Results.num(x, "mean_activation", st.meanActivation());
                    Results.num(x, "mean_activation_at_answer", st.meanAtAnswer());
                    csv.append("mean_activation,").append(Csv.cell(d.name())).append(",,,,").append(st.meanActivation()).append(",,\n");
                    csv.append("mean_activation_at_answer,").append(Csv.cell(d.name())).append(",,,,").append(st.meanAtAnswer()).append(",,\n");
                    txt.append(String.format(Locale.ROOT, "%s: mean activation %.4g (at the answer position %.4g)%n", d.name(), st.meanActivation(), st.meanAtAnswer()));
                    ArrayNode tp = x.putArray("top_prompts");
                    int r = 0;
                    for (NeuronCard.Firing f : st.top()) {
                        var pr = d.prompts().get(f.prompt());
                        tp.addObject().put("id", pr.id()).put("prompt", pr.prompt()).put("answer", pr.answer())
                                .put("activation", f.activation()).put("position", f.position()).put("token", f.token())
                                .put("token_text", tok.decode(f.token()));
                        csv.append("top_prompt,").append(Csv.cell(d.name())).append(',').append(++r).append(',').append(f.token()).append(',')
                                .append(Csv.cell(tok.decode(f.token()))).append(',').append(f.activation()).append(',').append(Csv.cell(pr.id()))
                                .append(',').append(f.position()).append('\n');
                        if (r <= 5) txt.append(String.format(Locale.ROOT, "  %.4g at '%s' in: %s%n", f.activation(), printable(tok.decode(f.token())), printable(pr.prompt())));
                    }
                    if (ablated != null) ablate(be, members, td, st.top(), ablated, csv, txt);
                }
            }
        }
        if (out != null) {
            Results.write(out.resolve("neuron.json"), o, out.resolve("neuron.csv"), csv.toString());
            txt.append("wrote ").append(out.resolve("neuron.json")).append(" and ").append(out.resolve("neuron.csv")).append('\n');
            if (ablated != null && !ablated.isEmpty())
                for (Path p : dev.nshap.plot.Charts.write(dev.nshap.plot.Charts.ablatedText(o), out.resolve("neuron-ablate-tokens"),
                        dev.nshap.plot.Charts.WIDTH, dev.nshap.plot.Charts.HEIGHT)) txt.append("wrote ").append(p).append('\n');
        }
        System.out.print(txt);
    }

    /** Ablated text at a dataset's top-activating prompts: JSON rows, CSV rows, and a table on stdout. */
    private void ablate(Backend be, Map<Integer, int[]> members, TokenizedDataset td, List<NeuronCard.Firing> top, ArrayNode json,
                        StringBuilder csv, StringBuilder txt) {
        java.util.function.IntFunction<String> tok = t -> printable(modelTokenizer.decode(t));
        List<int[]> seqs = new ArrayList<>();
        int[] at = new int[top.size()];
        for (int i = 0; i < top.size(); i++) { seqs.add(td.sequences[top.get(i).prompt()]); at[i] = top.get(i).position(); }
        double[][] d = NeuronCard.ablateTokens(be, members, seqs, at, maxTokens);
        for (int i = 0; i < top.size(); i++) {
            var pr = td.dataset.prompts().get(top.get(i).prompt());
            ObjectNode row = json.addObject();
            row.put("dataset", td.dataset.name()).put("id", pr.id()).put("position", at[i]).put("activation", d[i][0]);
            ArrayNode ts = row.putArray("tokens");
            StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "  ablate %s (%.4g at %d):", pr.id(), d[i][0], at[i]));
            for (int j = 0; j <= at[i]; j++) {
                int t = seqs.get(i)[j];
                ObjectNode x = ts.addObject().put("position", j).put("token", t).put("text", modelTokenizer.decode(t));
                if (j < at[i]) {
                    x.put("delta", d[i][1 + j]);
                    line.append(String.format(Locale.ROOT, " %s(%+.3g)", tok.apply(t), d[i][1 + j]));
                } else {
                    x.putNull("delta");
                    line.append(" [").append(tok.apply(t)).append(']');
                }
                csv.append("ablate_token,").append(Csv.cell(td.dataset.name())).append(',').append(j).append(',').append(t).append(',')
                        .append(Csv.cell(modelTokenizer.decode(t))).append(',').append(j < at[i] ? Double.toString(d[i][1 + j]) : "")
                        .append(',').append(Csv.cell(pr.id())).append(',').append(at[i]).append('\n');
            }
            txt.append(line).append('\n');
        }
    }

    private dev.nshap.model.Tokenizer modelTokenizer;

    private static String printable(String s) {
        return s.replace("\n", "\\n").replace("\t", "\\t");
    }

}
