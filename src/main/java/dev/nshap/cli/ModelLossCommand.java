package dev.nshap.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Reproduces a reference implementation's loss on given token sequences: the check that a trained model
 * means the same thing to nshap's backends as it did to PyTorch.
 */
@Command(name = "loss", mixinStandardHelpOptions = true,
        description = "Mean next-token loss of token sequences; with --check FILE (val_check.json from the training script) compares with PyTorch's numbers.")
public final class ModelLossCommand implements java.util.concurrent.Callable<Integer> {
    @Mixin ModelOptions modelOptions;

    @Option(names = "--check", required = true, paramLabel = "FILE.json",
            description = "{\"sequences\":[{\"tokens\":[...],\"loss\":L}]}: loss = mean NLL of tokens[1..] given the prefix.")
    Path check;

    @Option(names = "--tolerance", defaultValue = "1e-3", description = "Largest |nshap - reference| allowed (default: ${DEFAULT-VALUE}).")
    double tolerance;

    /** 0 when every sequence matches within the tolerance, 1 when one does not. */
    @Override public Integer call() {
        JsonNode root = Json.readTree(check);
        JsonNode seqs = root.get("sequences");
        if (seqs == null || !seqs.isArray() || seqs.isEmpty()) throw new NshapException(check + ": no \"sequences\" array");
        Checkpoint.LoadedModel m = modelOptions.load();
        List<int[]> toks = new ArrayList<>();
        List<Double> ref = new ArrayList<>();
        int i = 0;
        for (JsonNode s : seqs) {
            i++;
            JsonNode t = s.get("tokens");
            if (t == null || !t.isArray() || t.size() < 2) throw new NshapException(check + ": sequence " + i + " needs at least 2 tokens");
            if (t.size() - 1 > m.config().nPositions())
                throw new NshapException(check + ": sequence " + i + " is longer than the model's context of " + m.config().nPositions());
            int[] a = new int[t.size()];
            for (int k = 0; k < a.length; k++) {
                if (!t.get(k).canConvertToInt()) throw new NshapException(check + ": sequence " + i + " has a non-integer token");
                a[k] = t.get(k).asInt();
            }
            toks.add(a);
            ref.add(s.hasNonNull("loss") ? s.get("loss").asDouble() : Double.NaN);
        }
        double worst = 0, sumN = 0, sumR = 0;
        try (Backend b = modelOptions.open(m.weights())) {
            ForwardRequest req = new ForwardRequest();
            req.wantLogits = false;
            for (int[] a : toks) {
                int n = a.length - 1;
                int[] in = java.util.Arrays.copyOf(a, n), pos = new int[n], tg = new int[n];
                for (int k = 0; k < n; k++) { pos[k] = k; tg[k] = a[k + 1]; }
                req.add(in, pos, tg);
            }
            ForwardResult r = b.forward(req);
            System.out.printf(Locale.ROOT, "model %s, %s backend (%s)%n%4s %8s %12s %12s %10s%n", m.dir(), b.name(), modelOptions.precision,
                    "seq", "tokens", "nshap", "reference", "|diff|");
            for (int s = 0; s < toks.size(); s++) {
                double nll = 0;
                for (float lp : r.targetLogProb()[s]) nll -= lp;
                nll /= r.targetLogProb()[s].length;
                double d = Math.abs(nll - ref.get(s));
                if (!Double.isNaN(d)) worst = Math.max(worst, d);
                sumN += nll;
                sumR += ref.get(s);
                System.out.printf(Locale.ROOT, "%4d %8d %12.6f %12.6f %10.2e%n", s, toks.get(s).length - 1, nll, ref.get(s), d);
            }
        }
        System.out.printf(Locale.ROOT, "mean %21.6f %12.6f   max |diff| %.2e (tolerance %.1e)%n", sumN / toks.size(), sumR / toks.size(), worst, tolerance);
        if (worst > tolerance) {
            System.out.printf(Locale.ROOT, "MISMATCH: nshap's loss differs from the reference by %.2e > %.1e%n", worst, tolerance);
            return 1;
        }
        System.out.println("OK: nshap reproduces the reference loss");
        return 0;
    }
}
