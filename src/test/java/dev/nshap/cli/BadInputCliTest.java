package dev.nshap.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.NshapException;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.NeuronPlayers;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.io.Json;
import dev.nshap.io.OutputLock;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.JTokkitTokenizer;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The bad inputs of issue 15, each through the CLI as a user meets it: exit code 2, exactly one stderr line naming
 * the problem, nothing written. (Checkpoint-level cases live in MalformedCheckpointTest.)
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BadInputCliTest {
    final GPT2Config cfg = TestModels.tinyConfig(GPT2Config.GPT2_VOCAB);
    Path dir, model, data;

    @BeforeAll void setUp(@TempDir Path tmp) throws Exception {
        dir = tmp;
        model = dir.resolve("model");
        Checkpoint.write(model, TestModels.random(cfg, 3, 0.5f), "F32", Map.of());
        data = dir.resolve("athlete.jsonl");
        Files.writeString(data, """
                {"id":"a1","topic":"athlete","prompt":"He played for the national","answer":" team","foil":" museum"}
                {"id":"a2","topic":"athlete","prompt":"She won a gold","answer":" medal","foil":" painting"}
                """);
    }

    record Run(int code, String out, String err) {}

    static synchronized Run cli(String... args) {
        PrintStream o = System.out, e = System.err;
        ByteArrayOutputStream bo = new ByteArrayOutputStream(), be = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(bo, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(be, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Run(code, bo.toString(StandardCharsets.UTF_8), be.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
    }

    /** Exit 2 and one stderr line containing {@code expected} (after any header lines the command prints first). */
    static void refused(Run r, String expected) {
        assertEquals(2, r.code(), r.err());
        List<String> errors = r.err().lines().filter(l -> l.startsWith("nshap: ")).toList();
        assertEquals(1, errors.size(), r.err());
        assertTrue(errors.get(0).contains(expected), errors.get(0));
        assertFalse(r.err().contains("Exception") || r.err().contains("\tat "), "no stack trace: " + r.err());
    }

    static String deep(int n) { return "[".repeat(n) + "]".repeat(n); }

    @Test void jsonNestedPastTheLimitIsOneLineInEveryReader() throws Exception {
        Path game = Files.writeString(dir.resolve("deep-game.json"), "{\"type\":\"additive\",\"weights\":" + deep(100_000) + "}");
        refused(cli("shapley", "--game", game.toString(), "--estimator", "exact", "--out", dir.resolve("g").toString()), "deep-game.json: invalid JSON");
        Path cluster = Files.writeString(dir.resolve("deep-cluster.json"), deep(100_000));
        refused(cli("clusters", "show", cluster.toString()), "deep-cluster.json: invalid JSON");
        Path result = Files.writeString(dir.resolve("deep-result.json"), "{\"format\":" + deep(3000) + "}");
        refused(cli("clusters", "export", "--from", result.toString(), "--top-k", "1", "--out", dir.resolve("c.json").toString()),
                "deep-result.json: invalid JSON");
        // a checkpoint: --resume reads it
        Path okGame = Files.writeString(dir.resolve("add.json"), "{\"type\":\"additive\",\"weights\":[1,2,3]}");
        Path prefix = dir.resolve("deepck");
        Files.writeString(dir.resolve("deepck.ckpt.json"), deep(10_000));
        refused(cli("shapley", "--game", okGame.toString(), "--budget", "100", "--resume", "--out", prefix.toString()),
                "deepck.ckpt.json: invalid JSON");
        assertEquals(1, Json.MAPPER.getFactory().streamReadConstraints().getMaxNestingDepth() / Json.MAX_DEPTH);
    }

    @Test void idsAndSizesTooLargeForAnIntAreRefused() throws Exception {
        refused(cli("shapley", "--model", model.toString(), "--dataset", data.toString(), "--players",
                "blocks.0.mlp.hook_post[99999999999]", "--estimator", "exact", "--out", dir.resolve("big").toString()),
                "neuron index 99999999999 is too large");
        Path game = Files.writeString(dir.resolve("add3.json"), "{\"type\":\"additive\",\"weights\":[1,2,3]}");
        refused(cli("shapley", "--game", game.toString(), "--budget", "100", "--batch", "2147483647", "--out", dir.resolve("b").toString()),
                "--batch 2147483647 is too large");
        Path huge = Files.writeString(dir.resolve("huge.json"), "{\"type\":\"unanimity\",\"players\":2000000000,\"terms\":[{\"coalition\":[0],\"weight\":1}]}");
        refused(cli("shapley", "--game", huge.toString(), "--budget", "100", "--out", dir.resolve("h").toString()),
                "2000000000 players is more than nshap can hold");
        refused(cli("shapley", "--game", game.toString(), "--budget", "100", "--focus", "--out", dir.resolve("f").toString()),
                "--focus is for --estimator tmab");
        refused(cli("neuron", "blocks.99999999999.mlp.hook_post[1]", "--model", model.toString(), "--datasets", data.toString()),
                "layer 99999999999 is too large");
        assertFalse(Files.exists(dir.resolve("big.json")) || Files.exists(dir.resolve("b.json")) || Files.exists(dir.resolve("h.json"))
                || Files.exists(dir.resolve("f.json")));
    }

    @Test void evalEstimatorsRefusesImpossibleSurrogateSizes() {
        refused(cli("shapley", "eval-estimators", "--sizes", "200", "--reps", "1", "--surrogate-size", "300",
                "--surrogate-k", "300"), "--surrogate-k must be between 1 and --surrogate-size - 1, got 300");
        refused(cli("shapley", "eval-estimators", "--sizes", "200", "--reps", "1", "--surrogate-size", "300",
                "--surrogate-reps", "0"), "--surrogate-reps must be >= 1");
    }

    @Test void jsonlLinesMustHoldExactlyOneObject() throws Exception {
        Path two = Files.writeString(dir.resolve("two.jsonl"),
                "{\"id\":\"a\",\"topic\":\"t\",\"prompt\":\"p\",\"answer\":\" a\"} {\"id\":\"b\",\"topic\":\"t\",\"prompt\":\"q\",\"answer\":\" b\"}\n");
        NshapException e = assertThrows(NshapException.class, () -> Dataset.load(two, null));
        assertTrue(e.getMessage().contains("two.jsonl:1: invalid JSON") && e.getMessage().contains("more than one JSON value"), e.getMessage());
        Path junk = Files.writeString(dir.resolve("junk.jsonl"), "{\"id\":\"a\",\"topic\":\"t\",\"prompt\":\"p\",\"answer\":\" a\"}\n"
                + "{\"id\":\"b\",\"topic\":\"t\",\"prompt\":\"q\",\"answer\":\" b\"} trailing\n");
        refused(cli("evaluate", "--model", model.toString(), "--datasets", junk.toString()), "junk.jsonl:2: invalid JSON");
        // the corpus reader (datasets build) shares the rule
        Path corpus = Files.writeString(dir.resolve("corpus.jsonl"), "{\"text\":\"one\"}{\"text\":\"two\"}\n");
        e = assertThrows(NshapException.class, () -> dev.nshap.eval.corpus.CorpusReader.read(corpus,
                dev.nshap.eval.corpus.CorpusReader.Options.defaults()));
        assertTrue(e.getMessage().contains("corpus.jsonl:1: invalid JSON"), e.getMessage());
    }

    @Test void foilTokensOutsideTheVocabularyAreRefused() throws Exception {
        // GPT-2's tokenizer on a model with a 300-token vocabulary: prompt and answer fit, the foil does not
        GPT2Config small = new GPT2Config(1, 2, 16, 32, 300, 1e-5, "gelu_new");
        Path d = Files.writeString(dir.resolve("foil.jsonl"), "{\"id\":\"x\",\"topic\":\"t\",\"prompt\":\"a b c\",\"answer\":\" d\",\"foil\":\" museum\"}\n");
        Dataset ds = Dataset.load(d, null);
        NshapException e = assertThrows(NshapException.class, () -> ds.tokenize(JTokkitTokenizer.GPT2, small));
        assertTrue(e.getMessage().contains("foil token") && e.getMessage().contains("outside the model's vocabulary (0..299)"), e.getMessage());
        // a foil id equal to the vocabulary size would read the next position's first logit: refused by the metric too
        GPT2Weights w = TestModels.random(small, 4, 0.5f);
        TokenizedDataset td = TokenizedDataset.ofTokens(ds, new int[][]{{64, 275, 269}}, new int[][]{{2}}, new int[][]{{288}}, new int[]{300});
        try (var be = new dev.nshap.backend.cpu.CpuBackend(w)) {
            Evaluator ev = new Evaluator(be, td, 1024);
            e = assertThrows(NshapException.class, () -> ev.evaluate(List.of(dev.nshap.eval.Condition.clean(1)), new int[][]{{0}}, Metric.LOGIT_DIFF));
            assertTrue(e.getMessage().contains("foil token 300, outside the model's vocabulary of 300"), e.getMessage());
        }
    }

    @Test void aDirectoryAsAnOutputFileIsBadInput() throws Exception {
        Path d = Files.createDirectories(dir.resolve("logits-dir"));
        refused(cli("forward", "--model", model.toString(), "--prompt", "The striker scored", "--out", d.toString()), "is a directory");
    }

    @Test void errorsAreOneLineWhateverTheMessageHolds() {
        assertEquals("nshap: tensor 'a b' bad", Main.errorLine("tensor 'a\nb' bad"));
        assertEquals("nshap: x \\u001b[31m y", Main.errorLine("x \u001b[31m y"));
        // through the CLI: a safetensors header naming a tensor with a newline in it
        Path bad = dir.resolve("nlmodel");
        Checkpoint.write(bad, TestModels.random(cfg, 3, 0.5f), "F32", Map.of());
        var t = Checkpoint.tensors(TestModels.random(cfg, 3, 0.5f), "F32");
        var renamed = new java.util.LinkedHashMap<String, dev.nshap.model.SafeTensors.Tensor>();
        t.forEach((k, v) -> renamed.put(k.equals("transformer.ln_f.bias") ? "transformer.ln_f.bias\nforged line" : k, v));
        dev.nshap.model.SafeTensors.write(bad.resolve(Checkpoint.WEIGHTS), renamed, Map.of());
        Run r = cli("model", "inspect", bad.toString());
        refused(r, "unexpected tensor 'transformer.ln_f.bias forged line'");
        assertEquals(1, r.err().lines().count(), r.err());
    }

    @Test void misspelledOptionsGetASuggestionAndHelpShowsDefaults() {
        Run r = cli("shapley", "--budgt", "5");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("did you mean --budget?"), r.err());
        Run h = cli("shapley", "--help");
        assertEquals(0, h.code());
        assertTrue(h.out().contains("Default: 64") && h.out().contains("Default: 0.95"), "defaults of --batch and --confidence");
        // options whose own text names the default are not repeated
        assertFalse(h.out().contains("(default: tmc)\n                              Default: tmc"), h.out());
        Run top = cli("--help");
        assertEquals(0, top.code());
        assertEquals("", top.err(), "no picocli warning (an unescaped % in a description)");
    }

    @Test void twoRunsIntoOneOutputAreRefusedAndStaleLocksTakenOver() throws Exception {
        Path out = dir.resolve("locked");
        try (OutputLock held = OutputLock.acquire(out)) {
            NshapException e = assertThrows(NshapException.class, () -> OutputLock.acquire(out));
            assertTrue(e.getMessage().contains("is being written by another nshap run (pid " + ProcessHandle.current().pid()), e.getMessage());
            Path game = Files.writeString(dir.resolve("add4.json"), "{\"type\":\"additive\",\"weights\":[1,2,3,4]}");
            refused(cli("shapley", "--game", game.toString(), "--estimator", "exact", "--out", out.toString()), "is being written by another nshap run");
            assertFalse(Files.exists(dir.resolve("locked.json")));
            // two converts into one new --out: the second is refused while the first holds it
            refused(cli("convert", "--from", model.toString(), "--out", out.toString()), "is being written by another nshap run");
            assertFalse(Files.exists(out));
        }
        assertFalse(Files.exists(OutputLock.lockFile(out)), "released");
        // a lock left by a process that died (kill -9): its PID is gone, so the lock is taken over
        Process p = new ProcessBuilder("true").start();
        p.waitFor();
        Files.writeString(OutputLock.lockFile(out), p.pid() + " 0\n");
        try (OutputLock l = OutputLock.acquire(out)) {
            assertTrue(Files.readString(OutputLock.lockFile(out)).startsWith(ProcessHandle.current().pid() + " "));
        }
    }

    @Test void convertToF16RefusesWeightsThatWouldBecomeInfinite() throws Exception {
        GPT2Weights w = TestModels.random(cfg, 5, 0.5f);
        w.blocks[1].projW[7] = 1e5f;    // beyond f16's largest finite 65504
        Path src = dir.resolve("big-weight");
        Checkpoint.write(src, w, "F32", Map.of());
        Path out = dir.resolve("big-weight-f16");
        refused(cli("convert", "--from", src.toString(), "--out", out.toString(), "--dtype", "f16"),
                "tensor 'transformer.h.1.mlp.c_proj.weight' element 7 = 100000.0 overflows F16");
        assertFalse(Files.exists(out), "nothing half-written");
        assertEquals(0, cli("convert", "--from", src.toString(), "--out", out.toString(), "--dtype", "bf16").code());
    }

    @Test void nonFiniteWeightsAreRefusedByEveryCommandThatLoadsAModel() throws Exception {
        GPT2Weights w = TestModels.random(cfg, 6, 0.5f);
        w.wpe[5] = Float.NaN;
        Path m = dir.resolve("nan-model");
        Checkpoint.write(m, w, "F32", Map.of());
        refused(cli("forward", "--model", m.toString(), "--prompt", "hello"), "tensor 'transformer.wpe.weight' has 1 non-finite value");
        refused(cli("evaluate", "--model", m.toString(), "--datasets", data.toString()), "tensor 'transformer.wpe.weight'");
        refused(cli("model", "inspect", m.toString()), "tensor 'transformer.wpe.weight'");
        Run ok = cli("forward", "--model", m.toString(), "--prompt", "hello", "--allow-nonfinite-weights");
        assertEquals(0, ok.code(), ok.err());
        assertTrue(ok.err().contains("WARNING") && ok.err().contains("transformer.wpe.weight"), ok.err());
    }

    @Test void groupSyntaxIsAcceptedWhereverANeuronIdIs() throws Exception {
        NeuronPlayers ps = NeuronPlayers.parse("blocks.0.mlp.hook_post[4:8],blocks.1.mlp.hook_post[3]", 1, cfg);
        assertEquals(2, ps.size());
        assertEquals("blocks.0.mlp.hook_post[4:8]", ps.get(0).name());
        assertEquals(4, ps.get(0).neurons().length);
        assertEquals(7, ps.get(0).neurons()[3].index());
        // in a player file, a range and an id on one line form one group
        Path f = Files.writeString(dir.resolve("players.txt"), "blocks.1.mlp.hook_post[0:2] blocks.1.mlp.hook_post[9]\nblocks.0.mlp.hook_post[10:12]\n");
        NeuronPlayers fp = NeuronPlayers.parse(f.toString(), 1, cfg);
        assertEquals(2, fp.size());
        assertEquals(3, fp.get(0).neurons().length);
        assertEquals("blocks.0.mlp.hook_post[10:12]", fp.get(1).name());
        assertThrows(NshapException.class, () -> NeuronPlayers.parse("blocks.0.mlp.hook_post[8:4]", 1, cfg));
        assertThrows(NshapException.class, () -> NeuronPlayers.parse("blocks.0.mlp.hook_post[120:130]", 1, cfg)); // past d_mlp 128
        // a cluster file naming a group: each neuron a member with the group's numbers
        Path c = Files.writeString(dir.resolve("group-cluster.json"), """
                {"schema_version":1,"topic":"t","metric":"loss","model":{"name":"m","weights_sha256":"","n_layer":2,"d_mlp":128},
                 "neurons":[{"id":"blocks.1.mlp.hook_post[4:7]","value":0.5,"stderr":0.1,"ciLow":0.3,"ci_high":0.7}]}
                """);
        var cl = dev.nshap.cluster.Cluster.read(c);
        assertEquals(3, cl.neurons().size());
        assertEquals(6, cl.neurons().get(2).id().index());
        assertEquals(0.3, cl.neurons().get(2).ciLow(), 0, "an older file's ciLow is still read");
        assertEquals(0.7, cl.neurons().get(2).ciHigh(), 0);
        // and the CLI takes it as --players
        Run r = cli("shapley", "--model", model.toString(), "--dataset", data.toString(), "--players",
                "blocks.0.mlp.hook_post[0:2],blocks.1.mlp.hook_post[5:8]", "--estimator", "exact", "--out", dir.resolve("grp").toString());
        assertEquals(0, r.code(), r.err());
        JsonNode res = Json.readTree(dir.resolve("grp.json"));
        assertEquals(2, res.get("players").asInt());
    }

    /** A GPT-2 neuron result as 'nshap shapley' writes it, with the given per-player rows. */
    Path neuronResult(String name, String estimator, String rows) throws Exception {
        return Files.writeString(dir.resolve(name), "{\"format\":\"nshap-shapley-result-1\",\"estimator\":\"" + estimator + "\",\"evaluations\":2048,"
                + "\"game\":{\"game\":\"gpt2-neurons\",\"n_layer\":2,\"d_mlp\":128,\"topic\":\"athlete\",\"metric\":\"loss\"},"
                + "\"results\":[" + rows + "]}");
    }

    @Test void clustersExportRefusesPlayersWithoutIntervalsAndCountsUnsettledOnes() throws Exception {
        // --budget 2048 over 1024 players: one permutation, values but no standard errors
        Path thin = neuronResult("thin.json", "tmc", """
                {"rank":1,"name":"blocks.0.mlp.hook_post[1]","mean":0.5,"stderr":null,"samples":1,"ciLow":null,"ciHigh":null,"settled":false},
                {"rank":2,"name":"blocks.0.mlp.hook_post[2]","mean":0.4,"stderr":null,"samples":1,"ciLow":null,"ciHigh":null,"settled":false}""");
        Path out = dir.resolve("thin-cluster.json");
        refused(cli("clusters", "export", "--from", thin.toString(), "--top-k", "2", "--out", out.toString()),
                "2 of the 2 players chosen have no standard error or interval (e.g. blocks.0.mlp.hook_post[1], 1 sample)");
        assertFalse(Files.exists(out));
        // a TMAB run: the export says how many of its players are not yet settled (old and new field names alike)
        Path tmab = neuronResult("tmab.json", "tmab", """
                {"rank":1,"name":"blocks.0.mlp.hook_post[1]","mean":0.5,"stderr":0.1,"samples":9,"ci_low":0.3,"ci_high":0.7,"settled":true},
                {"rank":2,"name":"blocks.1.mlp.hook_post[4:6]","mean":0.4,"stderr":0.1,"samples":9,"ciLow":0.2,"ciHigh":0.6,"settled":false},
                {"rank":3,"name":"blocks.0.mlp.hook_post[3]","mean":0.1,"stderr":0.1,"samples":9,"ciLow":-0.1,"ciHigh":0.3,"settled":true}""");
        Run r = cli("clusters", "export", "--from", tmab.toString(), "--top-k", "2", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("1 of the 2 players exported are unsettled"), r.out());
        var c = dev.nshap.cluster.Cluster.read(out);
        assertEquals(3, c.neurons().size(), "the group counts as its two neurons");
        assertEquals(0.2, c.neurons().get(1).ciLow(), 0);
    }
}
