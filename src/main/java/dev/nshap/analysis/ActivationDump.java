package dev.nshap.analysis;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.backend.Backend;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.io.AtomicFiles;
import dev.nshap.io.Csv;
import dev.nshap.io.Json;
import dev.nshap.io.Npy;
import dev.nshap.util.Progress;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;

/**
 * Clean-run activations at chosen hooks, written as one float32 .npy per hook in a packed layout: [rows, width], where
 * the rows are every token of every prompt, prompt after prompt (prompt p's rows start at {@code row_start[p]}; the
 * manifest and index.csv give them). Batches of at most {@code maxTokens} tokens are streamed to the files as they
 * come back, so memory holds one batch whatever the dataset's size.
 */
public final class ActivationDump {
    public static final String FORMAT = "nshap-activations-1";

    private ActivationDump() {}

    /** File name of a hook's array: the hook's name with dots kept, e.g. blocks.0.mlp.hook_post.npy. */
    public static String fileName(HookPoint hp) { return hp.name() + ".npy"; }

    /** Runs the dump; returns the manifest (also written as DIR/manifest.json, after every array is in place). */
    public static ObjectNode run(Backend b, TokenizedDataset data, List<HookPoint> hooks, int maxTokens, Path out,
                                 ObjectNode config, java.util.function.Supplier<ObjectNode> provenance) {
        int n = data.size();
        long rows = data.tokenCount();
        if (rows > Integer.MAX_VALUE) throw new dev.nshap.NshapException("cache: " + rows + " token rows is more than one .npy row index holds");
        List<Npy.Stream> files = new ArrayList<>();
        long forward = 0;
        Progress progress = new Progress("cache", n);
        try {
            for (HookPoint hp : hooks) files.add(new Npy.Stream(out.resolve(fileName(hp)), (int) rows, hp.width(b.config())));
            int from = 0;
            while (from < n) {
                ForwardRequest req = new ForwardRequest();
                req.cache.addAll(new LinkedHashSet<>(hooks));
                req.wantLogits = false;
                int tokens = 0, to = from;
                while (to < n && (to == from || tokens + data.sequences[to].length <= maxTokens)) {
                    req.add(data.sequences[to], null, null);
                    tokens += data.sequences[to].length;
                    to++;
                }
                ForwardResult r = b.forward(req);
                forward++;
                for (int h = 0; h < hooks.size(); h++) {
                    float[][] per = r.cache().get(hooks.get(h));
                    for (float[] a : per) files.get(h).append(a, 0, a.length);
                }
                from = to;
                progress.update(from);
            }
            for (Npy.Stream f : files) f.commit();
        } finally {
            for (Npy.Stream f : files) f.close();
        }

        ObjectNode m = Json.MAPPER.createObjectNode();
        m.put("format", FORMAT);
        m.set("config", config);
        m.put("layout", "packed: [rows, units], rows = every token of every prompt in order; prompt p is rows row_start .. row_start + length");
        m.put("rows", rows);
        ArrayNode hs = m.putArray("hooks");
        for (HookPoint hp : hooks) {
            ObjectNode o = hs.addObject();
            o.put("hook", hp.name());
            o.put("file", fileName(hp));
            o.put("dtype", "float32");
            o.putArray("shape").add(rows).add(hp.width(b.config()));
        }
        StringBuilder csv = new StringBuilder("prompt,id,row_start,length,tokens\n");
        ArrayNode ps = m.putArray("prompts");
        long r0 = 0;
        for (int p = 0; p < n; p++) {
            ObjectNode o = ps.addObject();
            String id = data.dataset.prompts().get(p).id();
            o.put("id", id);
            o.put("row_start", r0);
            o.put("length", data.sequences[p].length);
            ArrayNode t = o.putArray("tokens");
            StringBuilder ts = new StringBuilder();
            for (int tok : data.sequences[p]) { t.add(tok); ts.append(ts.length() > 0 ? " " : "").append(tok); }
            csv.append(p).append(',').append(Csv.cell(id)).append(',').append(r0).append(',').append(data.sequences[p].length)
                    .append(',').append(ts).append('\n');
            r0 += data.sequences[p].length;
        }
        ObjectNode prov = provenance.get();
        prov.put("forward_passes", forward);
        m.set("provenance", prov);
        AtomicFiles.writeString(out.resolve("index.csv"), csv.toString());
        AtomicFiles.writeString(out.resolve("manifest.json"), Json.write(m));
        return m;
    }
}
