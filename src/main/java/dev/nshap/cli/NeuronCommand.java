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

    @Override public void run() {
        if ((neuron == null) == (cluster == null)) throw new NshapException("give exactly one of NEURON or --cluster FILE");
        if (top < 1) throw new NshapException("--top must be at least 1");
        NeuronId id = neuron == null ? null : NeuronId.parse(neuron);
        Cluster cl = cluster == null ? null : Cluster.read(cluster);
        List<Dataset> ds = new ArrayList<>();
        if (datasets != null) for (Path p : datasets) ds.add(Dataset.load(p));
        Checkpoint.LoadedModel m = model.load();
        Map<Integer, int[]> members;
        String what;
        if (id != null) {
            id.checkFor(m.config());
            members = new TreeMap<>(Map.of(id.layer(), new int[]{id.index()}));
            what = id.toString();
        } else {
            cl.checkFits(m.config(), allowOtherWeights ? null : m.weightsSha256(), cluster);
            members = cl.byLayer();
            what = "cluster " + cluster.getFileName() + " (" + cl.neurons().size() + " neurons, summed)";
        }
        var tok = m.tokenizer();
        float[] dir = NeuronCard.direction(m.weights(), members);
        double[] raw = NeuronCard.logitEffect(m.weights(), dir, false), ln = NeuronCard.logitEffect(m.weights(), dir, true);

        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("format", "nshap-neuron-card-1");
        ObjectNode c = o.putObject("config");
        ImpairOptions.describeModel(c, m, model);
        c.put("subject", what);
        if (cluster != null) c.put("cluster", cluster.toString());
        c.put("top", top);
        ArrayNode ns = o.putArray("neurons");
        members.forEach((l, xs) -> { for (int n : xs) ns.add(new NeuronId(l, n).toString()); });
        double norm = 0;
        for (float x : dir) norm += (double) x * x;
        o.put("direction_norm", Math.sqrt(norm));
        StringBuilder csv = new StringBuilder("section,dataset,rank,token,text,value,prompt_id,position\n");
        StringBuilder txt = new StringBuilder(what + "  (|c_proj direction| = " + String.format(Locale.ROOT, "%.4g", Math.sqrt(norm)) + ")\n");
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
                }
            }
        }
        if (out != null) {
            Results.write(out.resolve("neuron.json"), o, out.resolve("neuron.csv"), csv.toString());
            txt.append("wrote ").append(out.resolve("neuron.json")).append(" and ").append(out.resolve("neuron.csv")).append('\n');
        }
        System.out.print(txt);
    }

    private static String printable(String s) {
        return s.replace("\n", "\\n").replace("\t", "\\t");
    }

}
