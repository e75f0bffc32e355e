package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.io.Npy;
import dev.nshap.model.Checkpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Locale;
import java.util.stream.IntStream;

@Command(name = "forward", mixinStandardHelpOptions = true,
        description = "Run the model on a prompt and print the most likely next tokens.")
public final class ForwardCommand implements Runnable {
    @Mixin ModelOptions modelOptions;

    @Option(names = "--prompt", required = true, description = "The text to run.")
    String prompt;

    @Option(names = "--top", defaultValue = "10", description = "How many next tokens to print (default: ${DEFAULT-VALUE}).")
    int top;

    @Option(names = "--out", paramLabel = "FILE.npy", description = "Also write float32 logits [T, V] for every position as .npy.")
    Path out;

    @Override public void run() {
        if (top < 1) throw new NshapException("--top must be at least 1");
        if (out != null) dev.nshap.io.AtomicFiles.requireFileTarget(out);
        Checkpoint.LoadedModel m = modelOptions.load();
        int[] toks = m.tokenizer().encode(prompt);
        if (toks.length == 0) throw new NshapException("--prompt encodes to no tokens");
        if (toks.length > m.config().nPositions())
            throw new NshapException("--prompt is " + toks.length + " tokens; the model's context is " + m.config().nPositions());
        int v = m.config().vocabSize();
        try (Backend b = modelOptions.open(m.weights())) {
            int[] positions = out != null ? IntStream.range(0, toks.length).toArray() : new int[]{toks.length - 1};
            ForwardResult r = b.forward(new ForwardRequest().add(toks, positions, null));
            float[] logits = r.logits()[0];
            int last = (positions.length - 1) * v;
            double max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < v; i++) max = Math.max(max, logits[last + i]);
            double sum = 0;
            for (int i = 0; i < v; i++) sum += Math.exp(logits[last + i] - max);
            final double lse = max + Math.log(sum);
            Integer[] order = IntStream.range(0, v).boxed().toArray(Integer[]::new);
            java.util.Arrays.sort(order, (a, c) -> Float.compare(logits[last + c], logits[last + a]));
            System.out.printf(Locale.ROOT, "model %s%s (%s backend), %d prompt tokens%n", m.dir(),
                    ModelOptions.isRandomInit(m.dir()) ? " [RANDOM-INIT]" : "", b.name(), toks.length);
            System.out.printf(Locale.ROOT, "%4s  %-20s %8s %10s%n", "rank", "token", "id", "prob");
            for (int i = 0; i < Math.min(top, v); i++) {
                int t = order[i];
                System.out.printf(Locale.ROOT, "%4d  %-20s %8d %10.6f%n", i + 1, quote(m.tokenizer().decode(t)), t,
                        Math.exp(logits[last + t] - lse));
            }
            if (out != null) {
                Npy.write(out, logits, toks.length, v);
                System.out.println("wrote logits [" + toks.length + ", " + v + "] to " + out);
            }
        }
    }

    static String quote(String s) {
        return "'" + s.replace("\n", "\\n").replace("\t", "\\t") + "'";
    }
}
